"""The model artifact and safe checkpoint I/O: safetensors weights + JSON, atomic writes, clear mismatch errors.

A *model artifact* (format ``neuript-model``, version 2) is a directory::

    model.safetensors   the weights (never pickle / ``torch.load``)
    config.json         the model's constructor arguments (``model_type`` + hyperparameters, channel names and
                        positions, groups)
    neuript.json        what running the model needs beyond its weights: ``format``, ``format_version``,
                        ``model_type``, ``kind``, braindecode's ``n_chans / n_outputs / n_times / sfreq /
                        input_window_seconds``, ``ch_names`` and ``positions`` (metres), ``label_names``,
                        ``preprocessing`` (the :class:`neuript.data.preprocess.PreprocessConfig` fields the
                        training data were built with; ``null`` = the paper's defaults at the model's rate and
                        window), ``input_transform`` (``{"name": "alaw", "A": 0.25}``), ``provenance`` (training
                        config, data fingerprint, versions, seed, pretrained-from), ``metrics``
    README.md           model card (written by :func:`push_to_hub`)

Fine-tuning, the pretraining export and ``save_pretrained`` all write it; ``from_pretrained``, ``neuript
predict / embed`` and the streaming predictor read it. The model layer treats ``preprocessing`` as opaque JSON
(it never imports :mod:`neuript.data`). Directories written by release 0.1.0 (``neuript.json`` without
``format``) are upgraded when read (:func:`upgrade_metadata`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load_file, save_file

from neuript._atomic import atomic_path, atomic_write_json

__all__ = [
    "CheckpointMismatchError", "save_checkpoint", "load_checkpoint", "check_state_dict", "load_model",
    "save_artifact", "seed_model_dirs", "read_metadata", "upgrade_metadata", "locate_artifact", "is_artifact", "push_to_hub",
    "model_card", "chs_info_of", "artifact_fields", "artifact_metadata", "ARTIFACT_FORMAT", "ARTIFACT_VERSION", "DEFAULT_INPUT_TRANSFORM",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
META_NAME = "neuript.json"
ARTIFACT_FORMAT = "neuript-model"
ARTIFACT_VERSION = 2
#: the input transform of spec §1 (A-law companding of µV with A = 0.25)
DEFAULT_INPUT_TRANSFORM = {"name": "alaw", "A": 0.25}
#: constructor arguments of release 0.1.0 that no longer exist (the MoE loss weight moved to training)
_RETIRED_CONFIG_KEYS = ("aux_loss_weight",)


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
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointMismatchError(f"{cfg_path} is not readable JSON ({e}); restore it from the run or "
                                      "re-export the model") from None
    if not isinstance(config, dict):
        raise CheckpointMismatchError(f"{cfg_path} does not hold a JSON object of model settings")
    try:
        weights = load_file(str(w_path))
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) for damaged files
        raise CheckpointMismatchError(
            f"{w_path} is not a readable safetensors file ({type(e).__name__}: {e}): it is truncated, damaged or "
            "not a neuript model. Copy it again, or rerun the training that wrote it."
        ) from None
    return weights, config


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
        n = len(missing) + len(unexpected) + len(shapes)
        cause = ("the checkpoint is of another model size or montage (compare d_model, n_heads, merge factors "
                 "and the head's groups in its config.json)" if shapes else
                 "the checkpoint is of another model kind or release")
        lines = [f"{source} does not match the model: {n} tensor(s) differ; likely cause: {cause}."]
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
    for key in _RETIRED_CONFIG_KEYS:
        config.pop(key, None)
    config.update(overrides)
    try:
        model = cls(**config)
    except TypeError as e:  # unknown or missing constructor settings: another program's or version's config
        raise CheckpointMismatchError(f"{Path(directory) / CONFIG_NAME} does not describe a {cls.__name__} ({e}); "
                                      "it was written by another program or a newer neuript") from None
    check_state_dict(model, state, source=str(directory))
    model.load_state_dict(state)
    model.metadata = read_metadata(directory, model=model)
    return model


# ------------------------------------------------------------------------------------------------ artifact
def chs_info_of(ch_names, positions) -> list[dict] | None:
    """MNE-style ``chs_info`` (``ch_name``, ``loc`` (12,) with the position in metres, ``kind``) of a model."""
    if ch_names is None:
        return None
    pos = positions.tolist() if hasattr(positions, "tolist") else positions
    out = []
    for i, name in enumerate(ch_names):
        loc = [float("nan")] * 12
        if pos is not None and len(pos) > i:
            loc[:3] = [float(v) for v in pos[i]]
        out.append({"ch_name": name, "loc": loc, "kind": "eeg"})
    return out


def artifact_fields(model) -> dict[str, Any]:
    """The artifact fields a model itself knows: format, type, braindecode attributes, channels."""
    pos = getattr(model, "positions", None)
    n_times, sfreq = getattr(model, "n_times", None), getattr(model, "sfreq", None)
    return {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "model_type": type(model).__name__,
        "n_chans": getattr(model, "n_chans", None),
        "n_outputs": getattr(model, "n_outputs", None),
        "n_times": n_times,
        "sfreq": sfreq,
        "input_window_seconds": n_times / sfreq if n_times and sfreq else None,
        "ch_names": list(model.ch_names) if getattr(model, "ch_names", None) is not None else None,
        "positions": pos.tolist() if pos is not None and pos.numel() else None,
    }


def _default_metadata() -> dict[str, Any]:
    """``neuript.json`` of a model nobody described: no labels, no preprocessing record, the paper's A-law."""
    return {"format": ARTIFACT_FORMAT, "format_version": ARTIFACT_VERSION, "kind": None, "label_names": None,
            "preprocessing": None, "input_transform": dict(DEFAULT_INPUT_TRANSFORM), "provenance": {}, "metrics": {}}


def artifact_metadata(model) -> dict[str, Any]:
    """The ``neuript.json`` of ``model`` as :func:`save_artifact` writes it: the defaults, then its
    :attr:`metadata` (entries that are set), then what the model itself knows (:func:`artifact_fields`)."""
    meta = _default_metadata()
    meta.update({k: v for k, v in (getattr(model, "metadata", None) or {}).items() if v is not None})
    meta.update(artifact_fields(model))
    if meta.get("label_names") is not None:
        meta["label_names"] = {str(k): str(v) for k, v in dict(meta["label_names"]).items()}
    return meta


def save_artifact(model, directory: str | os.PathLike) -> Path:
    """Write ``model`` as a model artifact (weights, constructor config, :func:`artifact_metadata` as
    ``neuript.json``); every file atomically. Returns the directory."""
    directory = Path(directory)
    save_checkpoint(directory, model.state_dict(), model.config)
    atomic_write_json(directory / META_NAME, artifact_metadata(model), sort_keys=True)
    return directory


def upgrade_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """``neuript.json`` of any release → the current layout (release 0.1.0 wrote run metadata flat)."""
    if meta.get("format") == ARTIFACT_FORMAT:
        if int(meta.get("format_version", 0)) > ARTIFACT_VERSION:
            raise ValueError(f"model artifact format version {meta['format_version']} is newer than this neuript "
                             f"understands ({ARTIFACT_VERSION}); upgrade neuript")
        return dict(meta)
    known = {"kind", "label_names", "ch_names", "positions", "sfreq", "n_times", "preprocessing", "transform"}
    out = {
        "format": ARTIFACT_FORMAT, "format_version": ARTIFACT_VERSION, "kind": meta.get("kind"),
        "label_names": meta.get("label_names"), "ch_names": meta.get("ch_names"), "positions": meta.get("positions"),
        "sfreq": meta.get("sfreq"), "n_times": meta.get("n_times"),
        "input_transform": {"name": meta.get("transform", "alaw"), "A": DEFAULT_INPUT_TRANSFORM["A"]},
        "provenance": {k: v for k, v in meta.items() if k not in known},
        "metrics": {},
        "upgraded_from": "0.1.0",
    }
    pp = meta.get("preprocessing")
    if isinstance(pp, dict) and "preprocess" in pp:  # 0.1.0 stored the whole store config
        out["provenance"]["store_config"] = {k: v for k, v in pp.items() if k != "preprocess"}
        pp = pp["preprocess"]
    out["preprocessing"] = pp
    return out


def read_metadata(directory: str | os.PathLike, *, model=None) -> dict[str, Any]:
    """The artifact metadata of ``directory`` (upgraded to the current layout). A directory with only weights
    and ``config.json`` (what ``save_checkpoint`` alone writes) gives metadata derived from the model."""
    path = Path(directory) / META_NAME
    if path.is_file():
        try:
            meta = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not readable JSON ({e}); restore it from the run or re-export the model")
        if not isinstance(meta, dict):
            raise ValueError(f"{path} does not hold a JSON object; restore it from the run or re-export the model")
        meta = upgrade_metadata(meta)
    else:
        meta = _default_metadata()
    if model is not None:
        for key, value in artifact_fields(model).items():
            if meta.get(key) is None:
                meta[key] = value
    return meta


def is_artifact(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds model weights and a config (a model artifact or a bare checkpoint)."""
    d = Path(directory)
    return (d / WEIGHTS_NAME).is_file() and (d / CONFIG_NAME).is_file()


def seed_model_dirs(run: str | os.PathLike) -> list[Path]:
    """The ``seed<k>/model`` directories of a fine-tuning run that hold a model, by seed number."""
    seeds = sorted((p for p in Path(run).glob("seed*") if is_artifact(p / "model")),
                   key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)
    return [p / "model" for p in seeds]


def _run_candidates(path: Path) -> list[Path]:
    """Model directories inside a run directory: ``model/`` (pretraining), ``seed<k>/model`` (fine-tuning)."""
    return [path / "model"] * is_artifact(path / "model") + seed_model_dirs(path)


def locate_artifact(path: str | os.PathLike, *, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                    local_files_only: bool = False) -> Path:
    """The model directory for ``path``: a model artifact, a run directory (``model/`` or the first
    ``seed<k>/model``), or a Hugging Face Hub repository id ``owner/name`` (downloaded into the hub cache, or
    taken from it with ``local_files_only``)."""
    p = Path(path)
    if p.exists():
        if is_artifact(p):
            return p
        found = _run_candidates(p) if p.is_dir() else []
        if found:
            return found[0]
        folds = sorted(d for f in p.glob("fold-*") for d in seed_model_dirs(f)) if p.is_dir() else []
        if folds:
            raise FileNotFoundError(
                f"{p} is a cross-validation run: it holds {len(folds)} models, one per fold and seed, each trained "
                f"without its fold's subjects, and none of them is *the* model of the run. Point at one of them "
                f"(e.g. {folds[0]}), or fine-tune one model on all subjects without --cv for predictions."
            )
        raise FileNotFoundError(
            f"no model in {p}: expected {WEIGHTS_NAME} + {CONFIG_NAME} there, in {p}/model or in "
            f"{p}/seed<k>/model. Point at a directory written by `neuript finetune`, `neuript pretrain` or "
            "save_pretrained()."
        )
    text = str(path)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        return _hub_download(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    raise FileNotFoundError(f"{path}: no such model directory (and not a Hugging Face Hub id like owner/name)")


def _hub():
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError("Hugging Face Hub access needs the huggingface_hub package: pip install 'neuript[hub]' "
                          "(or pip install huggingface_hub)") from None
    return huggingface_hub


def _hub_download(repo_id: str, *, revision, cache_dir, local_files_only: bool) -> Path:
    hub = _hub()
    try:
        folder = hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                       local_files_only=local_files_only,
                                       allow_patterns=[WEIGHTS_NAME, CONFIG_NAME, META_NAME, "README.md"])
    except Exception as e:  # the hub raises many types (offline, not found, gated)
        where = "in the local hub cache" if local_files_only else "on the Hugging Face Hub"
        raise FileNotFoundError(f"could not get model {repo_id!r}{f' at revision {revision}' if revision else ''} "
                                f"{where}: {type(e).__name__}: {e}") from None
    if not is_artifact(folder):
        raise FileNotFoundError(f"hub repository {repo_id!r} holds no {WEIGHTS_NAME} + {CONFIG_NAME}")
    return Path(folder)


def model_card(meta: dict[str, Any], config: dict[str, Any]) -> str:
    """README.md for a hub repository: what the model is, its inputs, labels, preprocessing and metrics."""
    lines = ["---", "library_name: neuript", "tags: [eeg, neurips-2025, neuript, bci]", "license: mit", "---", "",
             f"# {meta.get('model_type', 'NeurIPT')} ({meta.get('kind') or 'model'})", "",
             "A [neuript](https://github.com/) NeurIPT model. Load it with "
             "`NeurIPT.from_pretrained(\"<repo id>\")` or run it with `neuript predict recording.edf --model DIR`.", "",
             "## Input", "",
             f"- {meta.get('n_chans')} channels: {', '.join(meta.get('ch_names') or []) or 'any (positions per call)'}",
             f"- {meta.get('n_times')} samples at {meta.get('sfreq')} Hz ({meta.get('input_window_seconds')} s)",
             f"- input transform: {json.dumps(meta.get('input_transform'))}",
             f"- preprocessing: `{json.dumps(meta.get('preprocessing'))}`", ""]
    if meta.get("label_names"):
        lines += ["## Labels", "", ", ".join(f"{k}: {v}" for k, v in meta["label_names"].items()), ""]
    if meta.get("metrics"):
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in meta["metrics"].items()] + [""]
    lines += ["## Config", "", "```json", json.dumps(config, indent=1, sort_keys=True, default=str)[:20000], "```",
              ""]
    return "\n".join(lines)


def push_to_hub(model, repo_id: str, *, token: str | None = None, private: bool = False, revision: str | None = None,
                commit_message: str = "Upload neuript model", create_repo: bool = True) -> str:
    """Upload ``model``'s artifact (the directory ``save_pretrained`` writes) plus a model card to the Hugging
    Face Hub repository ``repo_id``; returns the commit URL."""
    import tempfile

    hub = _hub()
    api = hub.HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        save_artifact(model, tmp)
        meta = json.loads((Path(tmp) / META_NAME).read_text())
        (Path(tmp) / "README.md").write_text(model_card(meta, model.config))
        if create_repo:
            api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=tmp, repo_id=repo_id, revision=revision, commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
