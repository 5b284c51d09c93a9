"""Safe checkpoint I/O: safetensors weights + JSON config, atomic writes, clear mismatch errors.

Never uses pickle / ``torch.load``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import load_file, save_file

from neuript._atomic import atomic_path, atomic_write_json

__all__ = ["CheckpointMismatchError", "save_checkpoint", "load_checkpoint", "check_state_dict", "load_model"]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not match the model built from its config."""


def save_checkpoint(directory: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], config: dict) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (each atomically)."""
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(directory / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_json(directory / CONFIG_NAME, config, sort_keys=True)
    return directory


def load_checkpoint(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    directory = Path(directory)
    cfg_path, w_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: expected a directory written by save_pretrained()")
    config = json.loads(cfg_path.read_text())
    return load_file(str(w_path)), config


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` listing missing, unexpected and wrongly shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: {source} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or shapes:
        lines = [f"{source} does not match the model:"]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                lines.append(f"  {title} ({len(items)}):")
                lines += [f"    {k}" for k in items[:50]]
                if len(items) > 50:
                    lines.append(f"    ... and {len(items) - 50} more")
        raise CheckpointMismatchError("\n".join(lines))


def load_model(cls, directory: str | os.PathLike, **overrides):
    """Rebuild ``cls`` from a :func:`save_checkpoint` directory written for that class (its config's
    ``model_type``); ``overrides`` replace config entries. Raises ``ValueError`` for a checkpoint of another
    class and :class:`CheckpointMismatchError` (listing every key) when the tensors do not fit."""
    state, config = load_checkpoint(directory)
    kind = config.pop("model_type", cls.__name__)
    if kind != cls.__name__:
        raise ValueError(f"{directory} holds a {kind!r} checkpoint, not {cls.__name__!r}")
    config.update(overrides)
    model = cls(**config)
    check_state_dict(model, state, source=str(directory))
    model.load_state_dict(state)
    return model
