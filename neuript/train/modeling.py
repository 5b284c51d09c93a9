"""Where the training loops meet the model and the stores: building, saving and loading models for runs.

A *saved model* is a directory with ``model.safetensors`` + ``config.json`` (the model's constructor
arguments, written by the model layer) + ``neuript.json`` (run metadata: preprocessing, labels, channel
layout, seed, versions, data fingerprint). Everything :mod:`neuript.train.inference` needs to run the model on a
new recording is in that directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neuript.train.checkpoint import write_json_atomic
from neuript.train.common import fingerprint

__all__ = [
    "preset_config",
    "build_pretrain_model",
    "FinetuneData",
    "load_finetune_data",
    "build_classifier_for",
    "save_classifier",
    "load_classifier",
    "is_saved_model",
    "store_fingerprint",
]

META = "neuript.json"


# ---------------------------------------------------------------------------------------------- presets
def preset_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encoder hyperparameters of a named preset, with overrides applied."""
    from neuript.model.presets import PRESETS

    name = preset.removeprefix("neuript_")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {['neuript_' + p for p in PRESETS]}")
    cfg = dict(PRESETS[name])
    cfg.update(overrides or {})
    return cfg


def store_fingerprint(path: str | Path) -> str:
    """Stable fingerprint of a store: its build config and its window table."""
    from neuript.data.store import WindowStore

    st = WindowStore.open(path)
    table = int(pd.util.hash_pandas_object(st.windows, index=False).sum() % (2**63))
    return fingerprint({"config": st.config, "n": len(st), "table": table})


# ---------------------------------------------------------------------------------------------- pretraining
def build_pretrain_model(preset: str, overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """The encoder + decoder pretraining model of a preset."""
    from neuript.model.pretrain import NeurIPTPretrain

    return NeurIPTPretrain(**preset_config(preset, overrides))


def model_config(model: torch.nn.Module) -> dict[str, Any]:
    cfg = getattr(model, "config", None)
    return dict(cfg) if cfg is not None else {}


def make_masker(masking: str, *, ratios, generator: torch.Generator):
    """The AAMP (paper) or random masker, drawing from ``generator``."""
    from neuript.model.pretrain import AAMPMasker, RandomMasker

    if masking not in ("aamp", "random"):
        raise ValueError(f"masking must be 'aamp' or 'random', got {masking!r}")
    return (AAMPMasker if masking == "aamp" else RandomMasker)(ratios=tuple(ratios), generator=generator)


def draw_mask(x: torch.Tensor, *, masking: str, ratios, generator: torch.Generator) -> torch.Tensor:
    """Boolean mask (B, C, T) for a whole (global) batch, computed on the CPU from ``generator`` so that it is
    the same on every rank and on every device type."""
    return make_masker(masking, ratios=ratios, generator=generator)(x.detach().cpu())


def pretrain_forward(model, x, positions, *, mask=None, masking: str = "aamp", ratios=(0.5,),
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """One pretraining forward; draws a mask when none is given."""
    if mask is None:
        mask = draw_mask(x, masking=masking, ratios=ratios, generator=generator)
    return model(x, positions, mask=mask.to(x.device))


def save_pretrain_export(model: torch.nn.Module, directory: Path, *, meta: dict[str, Any]) -> Path:
    """Final pretrained weights (safetensors + config.json) plus the run metadata."""
    model.save_pretrained(directory)
    write_json_atomic(Path(directory) / META, meta)
    return Path(directory)


def load_pretrained_encoder(path: str | Path):
    """The pretraining model saved by a pretraining run (its directory or its ``model/`` export)."""
    from neuript.model.pretrain import NeurIPTPretrain

    path = Path(path)
    if (path / "model" / "config.json").is_file():
        path = path / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} is not a pretraining run or model export (no config.json). Point --pretrained at the run "
            "directory written by `neuript pretrain`."
        )
    return NeurIPTPretrain.from_pretrained(path)


@torch.no_grad()
def plot_pretrain_example(model, dataset, path: Path, *, cfg, device) -> Path:
    """PNG of masked vs reconstructed signals for one held-out window."""
    from neuript.data.loader import make_loader
    from neuript.evaluate.plots import plot_reconstruction

    model.eval()
    batch = next(iter(make_loader(dataset, batch_size=1, shuffle=False, seed=0)))
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    out = pretrain_forward(model, batch["x"].to(device), batch["positions"].to(device), masking=cfg.masking,
                           ratios=(max(cfg.mask_ratios),), generator=gen)
    model.train()
    return plot_reconstruction(
        batch["x"][0].numpy(), out["pred"][0].float().cpu().numpy(), out["mask"][0].cpu().numpy(), path,
        ch_names=batch["ch_names"], sfreq=dataset.sfreq,
    )


# ---------------------------------------------------------------------------------------------- fine-tuning
@dataclass
class FinetuneData:
    train: Any
    val: Any
    test: Any
    label_names: dict[int, str]
    n_classes: int
    n_outputs: int
    prior: np.ndarray
    ch_names: list[str]
    positions: np.ndarray
    sfreq: float
    n_times: int
    preprocessing: dict[str, Any]
    fingerprint: str


def load_finetune_data(cfg) -> FinetuneData:
    """Datasets of the train/val/test splits of ``cfg.stores`` and what the model needs to know about them."""
    import warnings

    from neuript.data.loader import WindowDataset

    if not cfg.stores:
        raise ValueError("give at least one store to fine-tune on")
    train = WindowDataset(list(cfg.stores), split=cfg.train_split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty test split is reported by the evaluation
        val = WindowDataset(list(cfg.stores), split=cfg.val_split)
        test = WindowDataset(list(cfg.stores), split=cfg.test_split)
    if len(train) == 0:
        raise ValueError(f"split {cfg.train_split!r} of {list(cfg.stores)} has no windows")
    if len(val) == 0:
        raise ValueError(
            f"split {cfg.val_split!r} of {list(cfg.stores)} has no windows; early stopping needs a validation "
            "split (check that the validation subjects are in the source folder)"
        )
    labels = train.labels
    if (labels < 0).any():
        raise ValueError(f"{int((labels < 0).sum())} training windows have no label (-1); "
                         "fine-tuning needs a labelled store (e.g. `neuript prepare eegmat`)")
    label_names = {}
    for st in train.stores:
        label_names.update(st.label_names)
    n_classes = max(len(label_names), int(labels.max()) + 1)
    label_names = {i: label_names.get(i, str(i)) for i in range(n_classes)}
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if (counts == 0).any():
        missing = [label_names[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"classes {missing} have no training windows")
    montages = train.montages
    if len(montages) != 1:
        raise ValueError(
            f"fine-tuning data mixes {len(montages)} montages ({montages}); the IILP head needs one channel layout. "
            "Prepare the stores with the same montage (e.g. --set montage=tcp)."
        )
    info = train.montage_info(montages[0])
    preprocessing = train.stores[0].config
    return FinetuneData(
        train=train, val=val, test=test if len(test) else None, label_names=label_names, n_classes=n_classes,
        n_outputs=1 if n_classes == 2 else n_classes, prior=counts / counts.sum(), ch_names=info["ch_names"],
        positions=info["positions"], sfreq=train.sfreq, n_times=train.n_times, preprocessing=preprocessing,
        fingerprint=fingerprint([store_fingerprint(s.path) for s in train.stores]),
    )


def build_classifier_for(cfg, data: FinetuneData) -> torch.nn.Module:
    """A fresh classifier for ``data``: the pretrained encoder when ``cfg.pretrained`` is set, else random."""
    from neuript.model import NeurIPT

    common = dict(n_outputs=data.n_outputs, n_chans=len(data.ch_names), n_times=data.n_times, sfreq=data.sfreq,
                  ch_names=data.ch_names, positions=np.asarray(data.positions).tolist(), groups=cfg.groups)
    if cfg.pretrained:
        pre = load_pretrained_encoder(cfg.pretrained)
        enc = pre.encoder.cfg.to_dict()
        # only regularisation-type settings may differ from the pretrained encoder
        for key in ("dropout", "attn_dropout", "grad_checkpointing", "gate_noise"):
            if key in cfg.model_overrides:
                enc[key] = cfg.model_overrides[key]
        model = NeurIPT(**common, **enc)
        model.encoder.load_state_dict(pre.encoder.state_dict())
        return model
    return NeurIPT(**common, **preset_config(cfg.preset, cfg.model_overrides))


def aux_loss_of(model: torch.nn.Module) -> torch.Tensor:
    """The model's MoE auxiliary loss of its last forward, *unweighted by the model* (the loop weights it)."""
    inner = model.module if hasattr(model, "module") else model
    w = getattr(inner, "aux_loss_weight", 1.0) or 1.0
    return inner.aux_loss / w


def save_classifier(model: torch.nn.Module, directory: Path, *, meta: dict[str, Any]) -> Path:
    directory = Path(directory)
    model.save_pretrained(directory)
    write_json_atomic(directory / META, meta)
    return directory


def is_saved_model(directory: Path) -> bool:
    d = Path(directory)
    return all((d / f).is_file() for f in ("model.safetensors", "config.json", META))


def resolve_model_dir(path: str | Path) -> Path:
    """A seed's ``model/`` folder from a fine-tuning run, a seed folder or the model folder itself."""
    path = Path(path)
    for cand in (path, path / "model"):
        if is_saved_model(cand):
            return cand
    seeds = sorted(p / "model" for p in path.glob("seed*") if is_saved_model(p / "model"))
    if seeds:
        return seeds[0]
    raise FileNotFoundError(
        f"no fine-tuned model in {path}: expected model.safetensors + config.json + {META} there, in {path}/model "
        f"or in {path}/seed<k>/model. Run `neuript finetune` first."
    )


def load_classifier(directory: str | Path, *, device: torch.device | str = "cpu"):
    """Load a saved classifier and its run metadata (``neuript.json``)."""
    from neuript.model import NeurIPT

    directory = resolve_model_dir(directory)
    model = NeurIPT.from_pretrained(directory).to(device)
    model.eval()
    meta = json.loads((directory / META).read_text())
    return model, meta
