"""Running a trained classifier: over store windows (evaluation) and over new recordings (predict / embed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from neuript.train.common import autocast, check_precision

__all__ = ["predict_dataset", "probabilities"]


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (n, n_classes) from logits; a single logit is a binary task's positive class."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


@torch.no_grad()
def predict_dataset(model, dataset, *, batch_size: int = 64, device: torch.device | str = "cpu",
                    precision: str = "fp32", features: bool = False):
    """Predict every window of a :class:`neuript.data.loader.WindowDataset`.

    Returns
    -------
    probs : ndarray (n, n_classes)
    labels : ndarray (n,)
    index : ndarray (n,)  dataset indices, in the order of ``probs``
    """
    from neuript.data.loader import make_loader

    device = torch.device(device)
    was_training = model.training
    model.eval()
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=0)
    probs, labels, index = [], [], []
    for batch in loader:
        with autocast(device, precision):
            logits = model(batch["x"].to(device))
        probs.append(probabilities(logits).cpu().numpy())
        labels.append(batch["label"].numpy())
        index.append(batch["index"].numpy())
    model.train(was_training)
    if not probs:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(index)


# ---------------------------------------------------------------------------------------------- recordings
def _needed_electrodes(ch_names) -> list[str]:
    from neuript.electrodes import parse_channel

    out: list[str] = []
    for name in ch_names:
        for e in parse_channel(name).electrodes:
            if e not in out:
                out.append(e)
    return out


def _present_electrodes(raw, rename: dict[str, str] | None) -> dict[str, str]:
    """canonical electrode → raw channel name, for the monopolar EEG channels of ``raw``."""
    from neuript.electrodes import parse_channel

    out: dict[str, str] = {}
    for ch in raw.ch_names:
        spec = parse_channel((rename or {}).get(ch, ch))
        if spec.kind == "eeg" and spec.known:
            out.setdefault(spec.electrodes[0], ch)
    return out


def _interpolate_missing(raw, needed: list[str], rename: dict[str, str] | None):
    """Add the ``needed`` electrodes the recording lacks, by spherical-spline interpolation (MNE) from the
    electrodes it has. Returns a new Raw holding the monopolar EEG channels under canonical names."""
    import mne

    from neuript.electrodes import channel_positions

    present = _present_electrodes(raw, rename)
    missing = [e for e in needed if e not in present]
    raw = raw.copy().load_data().pick(list(present.values()))
    raw.rename_channels({ch: e for e, ch in present.items()})
    if missing:
        zeros = mne.io.RawArray(np.zeros((len(missing), raw.n_times)),
                                mne.create_info(missing, raw.info["sfreq"], "eeg"), verbose="error")
        raw.add_channels([zeros], force_update_info=True)
    names = list(raw.ch_names)
    pos = channel_positions(names)
    raw.set_montage(mne.channels.make_dig_montage(ch_pos=dict(zip(names, pos)), coord_frame="head"),
                    verbose="error")
    if missing:
        raw.info["bads"] = missing
        raw.interpolate_bads(reset_bads=True, origin="auto", verbose="error")
    return raw, missing


def window_quality(windows: np.ndarray, pp) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag windows the training data would have rejected (amplitude, flat channel, NaN) instead of dropping
    them; returns the windows with NaN/inf zeroed, their peak |µV| and the flags (``"ok"`` or the reason)."""
    peak = np.abs(windows).max(axis=(1, 2))
    ptp = windows.max(axis=2) - windows.min(axis=2)
    quality = np.full(len(windows), "ok", dtype=object)
    if pp.reject_uv is not None:
        quality[peak > pp.reject_uv] = f"amplitude>{pp.reject_uv:g}uV"
    if pp.flat_uv is not None:
        quality[(ptp < pp.flat_uv).any(axis=1)] = "flat_channel"
    quality[~np.isfinite(windows).all(axis=(1, 2))] = "nan"
    return np.nan_to_num(windows, nan=0.0, posinf=0.0, neginf=0.0), peak, quality


def _windows_for(file, model_meta: dict, *, stride_s: float | None, allow_missing: bool,
                 rename: dict[str, str] | None):
    """Read and preprocess ``file`` as the model's training data was; returns windows (n, C, T) µV and info."""
    from neuript.data.io import read_raw
    from neuript.data.preprocess import PreprocessConfig, preprocess_raw, sliding_windows

    pp_dict = model_meta["preprocessing"].get("preprocess", model_meta["preprocessing"])
    pp = PreprocessConfig.from_dict(pp_dict)
    want = list(model_meta["ch_names"])
    raw = read_raw(file)
    needed = _needed_electrodes(want)
    present = _present_electrodes(raw, rename)
    missing = [e for e in needed if e not in present]
    interpolated: list[str] = []
    if missing:
        if not allow_missing:
            raise ValueError(
                f"{file}: the model needs electrodes {missing}, which the recording lacks (it has "
                f"{sorted(present) or 'no recognised EEG electrodes'}; channels: {raw.ch_names}). Fix: map "
                "differently named channels with --rename OLD=NEW, or pass --allow-missing to interpolate the "
                "missing electrodes from their neighbours (spherical splines; predictions degrade with every "
                "interpolated electrode)."
            )
        raw, interpolated = _interpolate_missing(raw, needed, rename)
        rename = None
    data, ch_names, positions, sfreq = preprocess_raw(raw, pp, rename=rename)
    if list(ch_names) != want:
        if sorted(ch_names) == sorted(want):
            order = [list(ch_names).index(c) for c in want]
            data, positions = data[order], positions[order]
        else:
            raise ValueError(f"{file}: preprocessing gave channels {ch_names}, the model expects {want}")
    n_times = int(model_meta["n_times"])
    stride = n_times if stride_s is None else max(1, int(round(stride_s * sfreq)))
    windows, starts = sliding_windows(data, n_times, stride)
    if len(windows) == 0:
        raise ValueError(f"{file}: shorter than one {n_times / sfreq:.1f} s window after preprocessing")
    windows, peak, quality = window_quality(windows, pp)
    info = {"starts_s": starts / sfreq, "n_times": n_times, "sfreq": sfreq, "peak_uv": peak, "quality": quality,
            "interpolated": interpolated}
    return windows, info


@torch.no_grad()
def _run_windows(model, windows: np.ndarray, *, device, batch_size: int, what: str,
                 precision: str = "fp32") -> np.ndarray:
    from neuript.data.preprocess import alaw

    device = torch.device(device)
    outs = []
    for i in range(0, len(windows), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(alaw(windows[i:i + batch_size]), dtype=np.float32)).to(device)
        with autocast(device, precision):
            if what == "probs":
                outs.append(probabilities(model(x).float()).cpu().numpy())
            else:
                _, feats = model(x, return_features=True)
                pooled = model.final_layer.pool(model.pooled_features(feats), model.group_weights)
                outs.append(pooled.float().cpu().numpy())
    return np.concatenate(outs)


def _default_out(file, suffix: str) -> Path:
    f = Path(file)
    return f.with_name(f.name.split(".")[0] + suffix)


def predict_file(file, model_path, *, out=None, stride_s: float | None = None, allow_missing: bool = False,
                 rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
                 precision: str = "fp32"):
    """Class probabilities for every window of a recording, written as CSV.

    The recording is preprocessed exactly as the model's training store was (the settings are stored with
    the model). Columns: ``window, start_s, end_s, prob_<class>..., predicted, peak_uv, quality`` — windows that
    the training data would have rejected are kept and flagged in ``quality``, never dropped silently.
    ``precision="bf16"`` runs the model under bfloat16 autocast: on CPUs with bf16 matrix units and on GPUs
    several times faster for large models, with probabilities that differ from fp32 by rounding (measured: up to
    8e-4 for ``neuript_tiny`` on an EEGMAT recording, where 3 % of the windows, all near 0.5, changed class).

    Returns
    -------
    pathlib.Path
        The CSV written.
    """
    import pandas as pd

    from neuript.train.common import resolve_device
    from neuript.train.modeling import load_classifier

    check_precision(precision)
    dev = resolve_device(device)
    model, meta = load_classifier(model_path, device=dev)
    windows, info = _windows_for(file, meta, stride_s=stride_s, allow_missing=allow_missing, rename=rename)
    probs = _run_windows(model, windows, device=dev, batch_size=batch_size, what="probs", precision=precision)
    names = [meta["label_names"][str(i)] if str(i) in meta["label_names"] else str(i)
             for i in range(probs.shape[1])]
    table = pd.DataFrame({"window": np.arange(len(windows)), "start_s": info["starts_s"],
                          "end_s": info["starts_s"] + info["n_times"] / info["sfreq"]})
    for c, name in enumerate(names):
        table[f"prob_{name}"] = probs[:, c]
    table["predicted"] = [names[i] for i in probs.argmax(1)]
    table["peak_uv"] = info["peak_uv"]
    table["quality"] = info["quality"]
    out = Path(out) if out is not None else _default_out(file, ".predictions.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w") as fh:
        if info["interpolated"]:
            fh.write(f"# interpolated electrodes: {' '.join(info['interpolated'])}\n")
        table.to_csv(fh, index=False, float_format="%.6g")
    tmp.replace(out)
    return out


def embed_file(file, model_path, *, out=None, stride_s: float | None = None, allow_missing: bool = False,
               rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
               precision: str = "fp32"):
    """Per-window embeddings (IILP-pooled encoder features, ``(n_windows, n_pooled * n_groups * d_model)``)
    of a recording, saved as ``.npy``; window start times go to a sidecar ``.times.npy``. ``precision`` as for
    :func:`predict_file`."""
    from neuript.train.common import resolve_device
    from neuript.train.modeling import load_classifier

    check_precision(precision)
    dev = resolve_device(device)
    model, meta = load_classifier(model_path, device=dev)
    windows, info = _windows_for(file, meta, stride_s=stride_s, allow_missing=allow_missing, rename=rename)
    emb = _run_windows(model, windows, device=dev, batch_size=batch_size, what="embed", precision=precision)
    out = Path(out) if out is not None else _default_out(file, ".embeddings.npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, arr in ((out, emb.astype(np.float32)), (out.with_suffix(".times.npy"), info["starts_s"])):
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
    return out
