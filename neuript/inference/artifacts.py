"""Saving and loading the models that runs produce, and what a model needs to run on new data.

The artifact format itself (files, ``neuript.json`` fields, versions, hub access) is defined by the model layer
(:mod:`neuript.model.io`); this module joins it with the data layer: the stored preprocessing becomes a
:class:`~neuript.data.preprocess.PreprocessConfig`, run directories are resolved, window stores are
fingerprinted for provenance.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from neuript.data.recording import ModelInput
from neuript.model.io import DEFAULT_INPUT_TRANSFORM, is_artifact, locate_artifact
from neuript.runtime import fingerprint

__all__ = ["load_classifier", "load_pretrained", "save_model", "is_saved_model",
           "model_input", "input_transform", "input_alignment", "input_feature_norm", "store_fingerprint"]


def store_fingerprint(path: str | os.PathLike) -> str:
    """Stable fingerprint of a store: its build config and its window table."""
    from neuript.data.store import WindowStore

    st = WindowStore.open(path)
    table = int(pd.util.hash_pandas_object(st.windows, index=False).sum() % (2**63))
    return fingerprint({"config": st.config, "n": len(st), "table": table})


def is_saved_model(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` is a finished model artifact (weights, config and ``neuript.json``)."""
    return is_artifact(directory) and (Path(directory) / "neuript.json").is_file()


def save_model(model: torch.nn.Module, directory: str | os.PathLike, **metadata) -> Path:
    """Write ``model`` as a model artifact; ``metadata`` (``kind``, ``label_names``, ``preprocessing``,
    ``provenance``, ``metrics``, ...) is stored in its ``neuript.json``."""
    return model.save_pretrained(directory, **metadata)


def load_classifier(path: str | os.PathLike, *, device: torch.device | str = "cpu", **overrides):
    """A fine-tuned :class:`~neuript.model.NeurIPT` in eval mode and its artifact metadata.

    ``path``: a model directory (also one written by ``save_pretrained`` in Python), a fine-tuning run
    directory, or a hub repository id."""
    from neuript.model import NeurIPT

    directory = locate_artifact(path)
    try:
        model = NeurIPT.from_pretrained(directory, **overrides)
    except ValueError as e:
        if "NeurIPTPretrain" in str(e):
            raise ValueError(f"{directory} is a pretraining export (encoder + decoder), not a classifier: fine-tune "
                             "it first (`neuript finetune STORE --pretrained RUN`)") from None
        raise
    _check_preprocessing_record(model.metadata, Path(directory))
    model.to(device).eval()
    return model, model.metadata


def _check_preprocessing_record(meta: dict[str, Any], directory: Path) -> None:
    """Refuse, naming the file, a ``neuript.json`` whose preprocessing record this neuript cannot apply (edited,
    or written by a newer release): the recording would otherwise not be preprocessed as the training data were."""
    from neuript.data.preprocess import PreprocessConfig

    pp = meta.get("preprocessing")
    if pp is None:
        return
    try:
        if not isinstance(pp, dict):
            raise ValueError(f"expected a JSON object, got {type(pp).__name__}")
        PreprocessConfig.from_dict(pp.get("preprocess", pp))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{directory / 'neuript.json'}: its 'preprocessing' record cannot be applied ({e}). "
                         "Restore the file from the run that wrote it, or upgrade neuript if a newer release "
                         "wrote it") from None


def load_pretrained(path: str | os.PathLike, **overrides):
    """The :class:`~neuript.model.NeurIPTPretrain` of a pretraining run (its directory or its ``model/``);
    ``overrides`` replace config entries (as for ``from_pretrained``)."""
    from neuript.model import NeurIPTPretrain

    try:
        return NeurIPTPretrain.from_pretrained(path, **overrides)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}. Point --pretrained at the run directory written by `neuript pretrain`.") \
            from None


def model_input(meta: dict[str, Any]) -> ModelInput:
    """Channels, window length and preprocessing of a model, from its artifact metadata. A model saved without a
    preprocessing record (built in Python) gets the paper's preprocessing at its own rate and window, with
    its channels as the montage (TCP pairs, other bipolar pairs, or monopolar electrodes as recorded)."""
    from neuript.data.preprocess import PreprocessConfig
    from neuript.electrodes import TCP_BIPOLAR, parse_channel

    ch_names = meta.get("ch_names")
    n_times, sfreq = meta.get("n_times"), meta.get("sfreq")
    if not ch_names or not n_times or not sfreq:
        raise ValueError("the model does not record its channel names, n_times and sfreq; build it with chs_info "
                         "or ch_names, n_times and sfreq before save_pretrained()")
    pp = meta.get("preprocessing")
    if pp is None:
        if tuple(ch_names) == TCP_BIPOLAR:
            ref: dict[str, Any] = {"reference": "tcp"}
        elif all(parse_channel(c).kind == "bipolar" for c in ch_names):
            ref = {"reference": "bipolar", "bipolar_pairs": list(ch_names)}
        else:
            ref = {"reference": "as_recorded", "channels": list(ch_names)}
        h = 30.0 if 30.0 < float(sfreq) / 2 else 0.9 * float(sfreq) / 2  # the paper's 30 Hz, below Nyquist
        warnings.warn(f"the model records no preprocessing; using the paper's (0.1-{h:g} Hz band-pass, 50 Hz notch, "
                      f"A-law) at its {sfreq:g} Hz and {n_times / sfreq:g} s windows, reference "
                      f"{ref['reference']!r}. Pass preprocessing= to save_pretrained() to record yours.",
                      UserWarning, stacklevel=2)
        config = PreprocessConfig(sfreq=float(sfreq), window_s=n_times / sfreq, h_freq=h, **ref)
    else:
        config = PreprocessConfig.from_dict(pp.get("preprocess", pp) if isinstance(pp, dict) else pp)
    return ModelInput(ch_names=tuple(ch_names), n_times=int(n_times), preprocessing=config)


def input_transform(meta: dict[str, Any]):
    """The function from (aligned) µV windows to model input recorded in the artifact: the pre-emphasis filter
    if the model was trained with one, then A-law with its constant."""
    from neuript.data.preprocess import alaw, preemphasis

    t = meta.get("input_transform") or DEFAULT_INPUT_TRANSFORM
    name = t.get("name", "alaw") if isinstance(t, dict) else str(t)
    coef = float(t.get("preemphasis", 0.0)) if isinstance(t, dict) else 0.0
    gain = float(t.get("preemphasis_gain", 1.0)) if isinstance(t, dict) else 1.0

    def filtered(x):
        return preemphasis(x, coef, gain) if coef else x

    if name == "alaw":
        a = float(t.get("A", DEFAULT_INPUT_TRANSFORM["A"])) if isinstance(t, dict) else DEFAULT_INPUT_TRANSFORM["A"]
        return lambda x: alaw(filtered(x), A=a)
    if name in ("none", "identity", None):
        return filtered
    raise ValueError(f"unknown input transform {t!r} in the model artifact; this neuript knows 'alaw' and 'none'")


def input_feature_norm(meta: dict[str, Any]) -> str:
    """The feature normalisation group a model was trained with (``"none"``, ``"subject"``, ``"recording"``;
    :mod:`neuript.inference.featnorm`)."""
    t = meta.get("input_transform") or {}
    return str(t.get("feature_norm", "none")) if isinstance(t, dict) else "none"


def input_alignment(meta: dict[str, Any]):
    """``f(windows µV) -> windows`` aligning a new recording's windows with each other, for a model trained with
    ``--align`` (the recording is its own group: its transform comes from its own windows); identity else."""
    from neuript.data.align import align_windows

    t = meta.get("input_transform") or {}
    method = t.get("align", "none") if isinstance(t, dict) else "none"
    if method == "none":
        return lambda x: x
    scale = float(t.get("align_scale_uv", 20.0))
    return lambda x: align_windows(x, ["recording"] * len(x), method, scale_uv=scale)
