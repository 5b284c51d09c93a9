"""Small helpers shared by the layers (data, training, inference, CLI): devices, autocast and precision, seeding,
provenance (versions, fingerprints, timestamps) and the one style of option validation.

Nothing here imports another neuript module, so data, model, training, inference and the CLI can all use it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import math
import platform
import random
import sys
from typing import Any, Iterator, Sequence

import numpy as np
import torch

__all__ = [
    "now_iso", "seed_everything", "versions", "fingerprint", "resolve_device", "PRECISIONS", "check_precision",
    "resolve_precision", "native_cpu_bf16",
    "autocast", "check_choice", "check_positive", "OptionError", "tensorboard_writer",
]


class OptionError(ValueError):
    """A user-supplied option has a value it cannot take (the CLI prints it as one line)."""


def _flag(name: str) -> str:
    return name if name.startswith("-") else "--" + name.replace("_", "-")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else :class:`OptionError` ``"--name must be one of a, b; got 'x'"``."""
    if value not in choices:
        raise OptionError(f"{_flag(name)} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_positive(name: str, value: Any, *, allow_none: bool = False, integer: bool = False,
                   allow_zero: bool = False) -> Any:
    """``value`` if it is a positive (``allow_zero``: non-negative) finite number, else :class:`OptionError`
    ``"--name must be a positive number; got -1"``."""
    if value is None and allow_none:
        return value
    what = ("a non-negative " if allow_zero else "a positive ") + ("integer" if integer else "number")
    try:
        ok = math.isfinite(float(value)) and (float(value) >= 0 if allow_zero else float(value) > 0)
        ok = ok and (not integer or float(value) == int(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise OptionError(f"{_flag(name)} must be {what}; got {value!r}")
    return value


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    """Versions of everything that can change a result, recorded with every run."""
    import mne  # local: only needed for provenance

    import neuript

    out = {
        "neuript": neuript.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mne": mne.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    if torch.cuda.is_available():
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def fingerprint(obj: Any) -> str:
    """A short, stable SHA-256 of a JSON-serialisable object (configs, window tables, file lists)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_device(device: str | None = None, *, local_rank: int = 0) -> torch.device:
    """``"auto"``/``None`` → the rank's CUDA device when available, else CPU."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OptionError(f"--device must be auto, cpu, cuda or cuda:N (or another torch device type such as mps); "
                          f"got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"--device {device}: no CUDA GPU is available here (torch {torch.__version__}); use "
                          "--device cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise OptionError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                          f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return dev


PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: str) -> None:
    """Reject a ``--precision`` other than auto / fp32 / bf16."""
    check_choice("precision", precision, PRECISIONS)


@functools.cache
def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (AVX512-BF16 or AMX).

    Without them (AVX2 CPUs: most AMD and older Intel laptops and servers) bf16 autocast is *emulated* and a
    ``neuript_tiny`` training step runs ~4x slower than in fp32 (BENCHMARKS.md, cpu_speed)."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # private helpers; a torch without them: assume no native bf16
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision ``"auto"`` means on ``device``: ``"bf16"`` on a GPU that supports it and on a CPU with
    native bf16 (:func:`native_cpu_bf16`), else ``"fp32"``. ``"fp32"`` and ``"bf16"`` are returned unchanged."""
    check_precision(precision)
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if native_cpu_bf16() else "fp32"
    return "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast region for ``precision`` in {"auto", "fp32", "bf16"} on CPU or GPU (``"auto"``: see
    :func:`resolve_precision`)."""
    precision = resolve_precision(precision, device)
    if precision == "fp32":
        yield
        return
    # no weight-cast cache: every weight is used once per forward here, so the cache (a bf16 copy of all weights,
    # held until the region ends) only costs memory
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=False):
        yield


def tensorboard_writer(logdir):
    """A TensorBoard ``SummaryWriter`` for ``logdir``; a missing package is an ``ImportError`` that gives the
    install command (TensorBoard is an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("--tensorboard needs the tensorboard package: pip install 'neuript[tensorboard]' "
                          "(the CSV logs are written without it)") from None
    return SummaryWriter(str(logdir))
