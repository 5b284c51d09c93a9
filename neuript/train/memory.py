"""Estimate the memory a training run will need before it starts, and refuse runs that cannot fit.

A training step holds, at its peak, what the process already holds (libraries, data, the model), the
weights' gradients and the optimizer state, and the activations the forward pass keeps for the backward pass,
which grow linearly with the micro-batch. The activations are *measured*, not modelled: one forward pass at
micro-batch 1 and one at 2 (train mode, the run's precision, random input of the run's shape) under
:func:`torch.autograd.graph.saved_tensors_hooks` count the bytes of every distinct storage saved for backward.
Their difference is the cost of one window; the rest is per-step overhead. With activation checkpointing the
hooks see only the checkpointed inputs, so the recomputation of the largest block's sub-layer in the backward
pass is added (measured the same way with checkpointing off). The backward pass needs a further fraction of
the saved activations for the gradients in flight (``BACKWARD_FACTOR``, calibrated against peak RSS in
``benchmarks/memory_estimate.py``).

On a CPU the budget is the machine's available memory (``MemAvailable``, and the cgroup limit of a container
if lower); on a CUDA device, the device's free memory. :func:`check_training_memory` raises
:class:`~neuript.runtime.OptionError` with the largest batch (or micro-batch) that fits and the switches that
reduce memory, instead of letting the run swap or be killed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from neuript.runtime import OptionError

__all__ = ["MemoryEstimate", "estimate_training_memory", "available_memory", "check_training_memory",
           "current_rss", "parse_bytes", "set_malloc_mmap_threshold", "allocator_in_use",
           "release_freed_activations"]

log = logging.getLogger(__name__)

#: peak of the backward pass over the saved activations (gradients of the activations in flight, the
#: largest temporaries); calibrated on CPU for the small presets (benchmarks/memory_estimate.py)
BACKWARD_FACTOR = 1.5
GiB = 2**30


@dataclass
class MemoryEstimate:
    """Estimated peak memory of one training step (bytes)."""

    batch_size: int
    micro_batch_size: int
    process_bytes: int  # what the process holds now (RSS on CPU, allocated on CUDA)
    state_bytes: int  # gradients + optimizer state (the weights are part of process_bytes)
    per_window_bytes: int  # activations per window of a micro-batch, backward included
    overhead_bytes: int  # activations that do not grow with the micro-batch, backward included
    device: str = "cpu"

    def step_bytes(self, micro_batch_size: int | None = None) -> int:
        m = self.micro_batch_size if micro_batch_size is None else micro_batch_size
        return self.overhead_bytes + m * self.per_window_bytes

    @property
    def total_bytes(self) -> int:
        return self.process_bytes + self.state_bytes + self.step_bytes()

    def largest_micro_batch(self, budget: int) -> int:
        """Largest micro-batch whose step fits in ``budget`` bytes (0 if none)."""
        room = budget - self.process_bytes - self.state_bytes - self.overhead_bytes
        return max(0, int(room // max(self.per_window_bytes, 1)))

    def describe(self) -> str:
        return (f"{self.total_bytes / GiB:.2f} GiB (process {self.process_bytes / GiB:.2f}, gradients + optimizer "
                f"{self.state_bytes / GiB:.2f}, activations {self.step_bytes() / GiB:.2f} for a micro-batch of "
                f"{self.micro_batch_size} = {self.per_window_bytes / 2**20:.0f} MiB per window)")


def current_rss() -> int:
    """Resident memory of this process now (bytes; Linux ``/proc/self/statm``, else the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak * (1 if os.uname().sysname == "Darwin" else 1024)


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            used = None
            for upath in ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"):
                try:
                    used = int(Path(upath).read_text().strip())
                    break
                except (OSError, ValueError):
                    continue
            return int(text) - (used or 0) + current_rss()
    return None


def parse_bytes(text: str) -> int:
    """``"3.5G"``, ``"512M"``, ``"2GiB"`` or a plain number of bytes -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if scale > 1 else t) * scale)
    except ValueError:
        raise OptionError(f"NEURIPT_MAX_MEMORY={text!r} is not a size; write e.g. 3.5G or 512M") from None


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes a training process on ``device`` may still use, counting its own resident memory as usable:
    on a CPU the machine's ``MemAvailable`` plus this process's RSS (capped by a container's cgroup limit), on
    CUDA the device's free memory plus what this process has allocated; ``NEURIPT_MAX_MEMORY`` (e.g. ``6G``)
    caps it further. None where it cannot be told."""
    cap = os.environ.get("NEURIPT_MAX_MEMORY", "").strip()
    avail = _available(torch.device(device))
    if cap:
        avail = parse_bytes(cap) if avail is None else min(avail, parse_bytes(cap))
    return avail


def _available(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_allocated(device))
    if device.type != "cpu":
        return None
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024 + current_rss()
                break
    except OSError:
        return None
    limit = _cgroup_limit()
    if avail is not None and limit is not None:
        avail = min(avail, limit)
    return avail


def _saved_bytes(run: Callable[[], torch.Tensor]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``run()`` builds its graph."""
    seen: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen.setdefault((storage.data_ptr(), t.device.type), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # tensor subclasses without a storage
            seen.setdefault((id(t),), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = run()
    del out
    return sum(seen.values())


def _set_checkpointing(model: torch.nn.Module, enable: bool) -> bool:
    """Switch activation checkpointing of every encoder in ``model``; returns whether it was on."""
    was = False
    for mod in model.modules():
        if hasattr(mod, "set_grad_checkpointing") and hasattr(mod, "blocks"):
            was = was or bool(mod.grad_checkpointing)
            mod.set_grad_checkpointing(enable)
    return was


def _probe(model: torch.nn.Module, loss_of: Callable[[int], torch.Tensor]) -> tuple[int, int]:
    """Saved-activation bytes (per window, per step) of the forward pass, checkpointing recomputation included."""
    s1, s2 = _saved_bytes(lambda: loss_of(1)), _saved_bytes(lambda: loss_of(2))
    per_window, overhead = max(s2 - s1, 0), max(2 * s1 - s2, 0)
    if _set_checkpointing(model, False):  # add the recomputation of the largest sub-layer
        try:
            full = _saved_bytes(lambda: loss_of(1))
            n_sub = sum(4 for m in model.modules() if hasattr(m, "time_attn") and hasattr(m, "ffn1"))
            # most activations are at full resolution, in the first block: one of its sub-layers is
            # recomputed (and its gradients held) at a time
            per_window += int(2 * full / max(n_sub, 1))
        finally:
            _set_checkpointing(model, True)
    return per_window, overhead


def estimate_training_memory(
    model: torch.nn.Module,
    loss_of: Callable[[int], torch.Tensor],
    *,
    batch_size: int,
    micro_batch_size: int | None = None,
    optimizer_state: str = "fp32",
    device: torch.device | str = "cpu",
) -> MemoryEstimate:
    """Estimate the peak memory of a training step of ``model``.

    Parameters
    ----------
    model : nn.Module
        The model as it will train (on its device, with its checkpointing setting).
    loss_of : callable
        ``loss_of(n)`` runs the run's forward pass (precision, masking, ...) on ``n`` random windows of the run's
        shape and returns the loss; it is called at ``n = 1`` and ``n = 2`` with gradients enabled. The random
        state is restored afterwards, so the run draws the same numbers as without the estimate.
    batch_size, micro_batch_size : int
        The run's batch and micro-batch (None: the batch).
    optimizer_state : {"fp32", "bf16"}
        Precision of the two AdamW moments.
    device : torch.device or str
        Where the run trains.

    Returns
    -------
    MemoryEstimate
    """
    device = torch.device(device)
    micro = min(micro_batch_size or batch_size, batch_size)
    params = [p for p in model.parameters() if p.requires_grad]
    moment_bytes = 2 if optimizer_state == "bf16" else 4
    state = sum(p.numel() * (p.element_size() + 2 * moment_bytes) for p in params)
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            per_window, overhead = _probe(model, loss_of)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    process = int(torch.cuda.memory_allocated(device)) if device.type == "cuda" else current_rss()
    return MemoryEstimate(batch_size=batch_size, micro_batch_size=micro, process_bytes=process, state_bytes=state,
                          device=str(device),
                          per_window_bytes=int(per_window * BACKWARD_FACTOR),
                          overhead_bytes=int(overhead * BACKWARD_FACTOR))


def check_training_memory(estimate: MemoryEstimate, *, command: str, available: int | None = None,
                          fraction: float = 0.9) -> None:
    """Refuse a run whose estimated peak exceeds ``fraction`` of the available memory.

    The message gives the estimate, the budget, the largest ``--batch-size`` (and ``--micro-batch``) that fits
    and the switches that lower the activation memory. ``NEURIPT_SKIP_MEMORY_CHECK=1`` turns the check off.
    """
    if os.environ.get("NEURIPT_SKIP_MEMORY_CHECK", "") not in ("", "0"):
        return
    budget = available_memory(estimate.device) if available is None else available
    if budget is None:
        return
    budget = int(budget * fraction)
    if estimate.total_bytes <= budget:
        return
    fit = estimate.largest_micro_batch(budget)
    hints = []
    if fit >= 1:
        hints.append(f"--micro-batch {fit} (keeps --batch-size {estimate.batch_size}, same update)")
        if fit < estimate.batch_size:
            hints.append(f"or --batch-size {fit}")
    hints.append("--model-set grad_checkpointing=true (several times less activation memory)")
    hints.append("--optimizer-state bf16")
    raise OptionError(
        f"{command} needs about {estimate.describe()}, more than the {budget / GiB:.2f} GiB this machine can give "
        f"it ({fraction:.0%} of the available memory{', capped by NEURIPT_MAX_MEMORY' if os.environ.get('NEURIPT_MAX_MEMORY') else ''}); it would swap or be killed. Use "
        + "; ".join(hints) + ". (NEURIPT_SKIP_MEMORY_CHECK=1 runs it anyway.)"
    )


_M_MMAP_THRESHOLD = -3


def set_malloc_mmap_threshold(nbytes: int = 65536) -> bool:
    """Fix glibc's mmap threshold to ``nbytes`` for this process (same as ``MALLOC_MMAP_THRESHOLD_`` in the
    environment): allocations of at least ``nbytes`` are served by ``mmap`` and unmapped when freed.

    Returns True on success, False where it does not apply (not Linux/glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes)))
    except (OSError, AttributeError):
        return False


def allocator_in_use() -> str:
    """``"tcmalloc"``, ``"jemalloc"`` or ``"glibc"``: the malloc this process runs on (Linux: from its memory
    maps; elsewhere ``"unknown"``)."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for name in ("tcmalloc", "jemalloc"):
        if f"lib{name}" in maps:
            return name
    return "glibc" if sys.platform.startswith("linux") else "unknown"


def release_freed_activations(device: torch.device | str, *, grad_checkpointing: bool) -> bool:
    """With activation checkpointing on a Linux CPU under glibc, make freed tensors go back to the OS.

    Checkpointing frees and re-allocates every sub-layer's activations in the backward pass; glibc's dynamic mmap
    threshold then serves them from a heap it does not shrink, and the process's peak RSS overstates what is live
    by up to 2x (tiny pretraining, batch 64 x 64 x 256: 5.1 GiB by default, 2.6 GiB with a fixed 1 MiB threshold, at about
    half the speed;
    BENCHMARKS.md). The user who turned checkpointing on asked for memory over speed, so the threshold is fixed
    at ``MMAP_THRESHOLD`` bytes (``NEURIPT_MALLOC=default`` keeps glibc's behaviour; tcmalloc needs nothing).
    Returns whether the threshold was set."""
    if not grad_checkpointing or torch.device(device).type != "cpu":
        return False
    if os.environ.get("NEURIPT_MALLOC", "").lower() == "default" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    if allocator_in_use() != "glibc":
        return False
    done = set_malloc_mmap_threshold(MMAP_THRESHOLD)
    if done:
        log.info("activation checkpointing on a CPU: glibc's mmap threshold fixed at %d KiB so that freed "
                 "activations return to the OS (NEURIPT_MALLOC=default to keep glibc's default: faster, more memory)",
                 MMAP_THRESHOLD // 1024)
    return done


#: fixed glibc mmap threshold used by :func:`release_freed_activations`
MMAP_THRESHOLD = 2**20
