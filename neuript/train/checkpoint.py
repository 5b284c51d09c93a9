"""Training checkpoints: safetensors for every tensor, JSON for everything else, written atomically.

A training checkpoint is a directory::

    checkpoint/
        model.safetensors       model weights
        optimizer.safetensors   optimizer tensors (AdamW moments, step counts) + RNG states
        state.json              optimizer hyperparameters, scheduler state, loop position, run config

It is written to a temporary sibling directory and swapped in with ``os.replace``, so a run killed at any
moment leaves either the previous complete checkpoint or the new one — never a half-written one.
Nothing is ever unpickled: loading only parses safetensors and JSON.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neuript._atomic import atomic_directory
from neuript._atomic import atomic_write_json as write_json_atomic

__all__ = ["save_training_state", "load_training_state", "has_checkpoint", "write_json_atomic", "CheckpointError"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match the model it is loaded into."""


def _optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    return {"state": state, "param_groups": meta["param_groups"]}


def has_checkpoint(directory: str | os.PathLike) -> bool:
    """True when ``directory`` holds a complete training checkpoint."""
    d = Path(directory)
    return all((d / name).is_file() for name in ("model.safetensors", "optimizer.safetensors", "state.json"))


def save_training_state(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any | None,
    state: dict[str, Any],
    generators: dict[str, torch.Generator] | None = None,
) -> Path:
    """Save everything needed to resume training, atomically.

    Parameters
    ----------
    directory
        Target checkpoint directory; replaced as a whole.
    model
        The (unwrapped) model; its ``state_dict`` is stored.
    optimizer, scheduler
        Stored when given (``scheduler.state_dict()`` must be JSON-serialisable, as PyTorch's LR schedulers are).
    state
        JSON-serialisable loop position and run metadata (epoch, step, best metric, config ...).
    generators
        Named ``torch.Generator`` objects whose state must survive a restart (e.g. the masking generator).
        The global torch RNG state is always stored.
    """
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        extra: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
        for name, gen in (generators or {}).items():
            extra[f"rng.{name}"] = gen.get_state()
        meta: dict[str, Any] = {"state": state}
        if optimizer is not None:
            otensors, ometa = _optimizer_to_flat(optimizer)
            extra.update(otensors)
            meta["optimizer"] = ometa
        if scheduler is not None:
            meta["scheduler"] = scheduler.state_dict()
        save_file(extra, str(tmp / "optimizer.safetensors"))
        write_json_atomic(tmp / "state.json", meta)
    return directory


def load_training_state(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    generators: dict[str, torch.Generator] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_training_state`; returns its ``state`` dict.

    Raises
    ------
    CheckpointError
        When files are missing or the stored weights do not fit ``model`` (the message lists the keys).
    """
    directory = Path(directory)
    if not has_checkpoint(directory):
        raise CheckpointError(
            f"{directory} is not a complete training checkpoint (expected model.safetensors, "
            "optimizer.safetensors and state.json). Start without --resume, or point at the run directory."
        )
    weights = load_file(str(directory / "model.safetensors"))
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        lines = [f"checkpoint {directory} does not match the model:"]
        if missing:
            lines.append(f"  missing in checkpoint: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            lines.append(f"  not in model: {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
        for k in wrong[:10]:
            lines.append(f"  {k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}")
        lines.append("  Was it written with another model config? Use the config.json stored with the run.")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(weights)
    meta = json.loads((directory / "state.json").read_text())
    extra = load_file(str(directory / "optimizer.safetensors"))
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(_optimizer_from_flat(extra, meta["optimizer"]))
    if scheduler is not None and "scheduler" in meta:
        scheduler.load_state_dict(meta["scheduler"])
    if restore_rng:
        torch.set_rng_state(extra["rng.torch"])
        for name, gen in (generators or {}).items():
            key = f"rng.{name}"
            if key in extra:
                gen.set_state(extra[key])
    return meta["state"]
