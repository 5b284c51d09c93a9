"""Running a trained classifier: over store windows (evaluation), over MNE objects and over recording files.

Every path applies the model's own preprocessing and input transform, read from its artifact
(:mod:`neuript.inference.artifacts`); a recording becomes windows in :mod:`neuript.data.recording`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from neuript.runtime import autocast, check_positive, check_precision, resolve_device

__all__ = ["probabilities", "predict_dataset", "run_windows", "predict", "embed", "predict_file", "embed_file",
           "default_output", "write_predictions", "summarise", "FORMATS"]


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (n, n_classes) from logits; a single logit is a binary task's positive class."""
    logits = logits.float()
    if logits.shape[-1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p1, p1], dim=-1)
    return torch.softmax(logits, dim=-1)


@torch.no_grad()
def predict_dataset(model, dataset, *, batch_size: int = 64, device: torch.device | str = "cpu",
                    precision: str = "fp32", return_logits: bool = False, feature_norm: str = "none"):
    """Predict every window of a :class:`neuript.data.loader.WindowDataset`.

    ``feature_norm`` (``"subject"`` / ``"recording"``, for a model trained with ``--feature-norm``): the pooled
    features of every window are standardised with the statistics of all windows of its group in ``dataset``
    (:mod:`neuript.inference.featnorm`; one extra forward pass over the dataset).

    Returns
    -------
    probs : ndarray (n, n_classes)
    labels : ndarray (n,)
    index : ndarray (n,)  dataset indices, in the order of ``probs``
    logits : ndarray (n, n_outputs)  the raw logits, only with ``return_logits``
    """
    from neuript.data.loader import make_loader

    device = torch.device(device)
    was_training = model.training
    model.eval()
    stats = keys = None
    if feature_norm != "none":
        from neuript.inference.featnorm import batch_stats, group_feature_stats, group_keys

        keys = group_keys(dataset, feature_norm)
        stats = group_feature_stats(model, dataset, feature_norm, device=device, precision=precision,
                                    batch_size=batch_size, keys=keys)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=False, seed=0, num_workers=0)
    probs, labels, index, raw = [], [], [], []
    for batch in loader:
        fs = None
        if stats is not None:
            fs = tuple(t.to(device) for t in batch_stats(stats, keys[batch["index"].numpy()]))
        with autocast(device, precision):
            logits = model(batch["x"].to(device), feature_stats=fs).float()
        probs.append(probabilities(logits).cpu().numpy())
        raw.append(logits.cpu().numpy())
        labels.append(batch["label"].numpy())
        index.append(batch["index"].numpy())
    model.train(was_training)
    if not probs:
        out = (np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        return out + (np.zeros((0, 1), dtype=np.float32),) if return_logits else out
    out = (np.concatenate(probs), np.concatenate(labels), np.concatenate(index))
    return out + (np.concatenate(raw),) if return_logits else out


@torch.no_grad()
def run_windows(model, windows: np.ndarray, *, transform: Callable, device, batch_size: int = 64,
                what: str = "probs", precision: str = "fp32", feature_norm: bool = False) -> np.ndarray:
    """Model outputs for µV windows (n, C, T): class probabilities or (``what="embed"``) the pooled embedding
    the head reads (``forward_head(..., pre_logits=True)``). ``feature_norm``: the windows are one group (one
    recording) whose feature statistics standardise every window's features before the linear layer."""
    device = torch.device(device)
    model.eval()
    outs = []
    if feature_norm and what == "probs" and len(windows):
        from neuript.inference.featnorm import stats_of

        flat = torch.from_numpy(run_windows(model, windows, transform=transform, device=device,
                                            batch_size=batch_size, what="embed", precision=precision)).to(device)
        return probabilities(model.forward_head(flat, feature_stats=stats_of(flat)).float()).cpu().numpy()
    for i in range(0, len(windows), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(transform(windows[i:i + batch_size]), dtype=np.float32)).to(device)
        with autocast(device, precision):
            if what == "probs":
                outs.append(probabilities(model(x).float()).cpu().numpy())
            else:
                outs.append(model.forward_head(model.forward_features(x), pre_logits=True).float().cpu().numpy())
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs)


def _as_model(model, device):
    from neuript.inference.artifacts import load_classifier

    if isinstance(model, (str, os.PathLike)):
        model, _ = load_classifier(model, device=device)
    else:
        model = model.to(device)
    from neuript.model.io import artifact_metadata

    return model, artifact_metadata(model)


def _windows(model_meta, data, *, stride_s, allow_missing, rename, max_interpolated=None, source=None):
    from neuript.data.io import read_raw
    from neuript.data.recording import recording_windows
    from neuript.inference.artifacts import model_input

    spec = model_input(model_meta)
    if isinstance(data, (str, os.PathLike)):
        source = str(data)
        data = read_raw(data)
    return recording_windows(data, spec, stride_s=stride_s, rename=rename, allow_missing=allow_missing,
                             max_interpolated=max_interpolated, source=source), spec


def _run(model, data, what: str, *, stride_s, allow_missing, rename, device, batch_size, precision,
         max_interpolated=None):
    """Model outputs (``what``: probs / embed) for every window of ``data``, its windows and the model metadata:
    the model's preprocessing, alignment (if it was trained with one) and input transform applied."""
    from neuript.inference.artifacts import input_alignment, input_feature_norm, input_transform

    check_precision(precision)
    check_positive("stride", stride_s, allow_none=True)
    check_positive("batch_size", batch_size, integer=True)
    dev = resolve_device(device)
    model, meta = _as_model(model, dev)
    rw, _ = _windows(meta, data, stride_s=stride_s, allow_missing=allow_missing, rename=rename,
                     max_interpolated=max_interpolated)
    out = run_windows(model, input_alignment(meta)(rw.windows), transform=input_transform(meta), device=dev,
                      batch_size=batch_size, what=what, precision=precision,
                      feature_norm=input_feature_norm(meta) != "none")
    return out, rw, meta


def _label_names(meta, n: int) -> list[str]:
    names = meta.get("label_names") or {}
    return [str(names.get(str(i), names.get(i, i))) if isinstance(names, dict) else str(i) for i in range(n)]


def predict(model, data, *, stride_s: float | None = None, allow_missing: bool = False,
            rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
            precision: str = "fp32", max_interpolated: int | None = None):
    """Class probabilities for every window of an ``mne.io.Raw``, ``mne.Epochs`` or recording file.

    The model's stored preprocessing (channel selection and montage, filters, resampling) and input transform
    (A-law) are applied; non-EEG channels are ignored. Windows the training data would have rejected are kept
    and flagged in ``quality``.

    Parameters
    ----------
    model : NeurIPT or path
        A classifier (e.g. ``NeurIPT.from_pretrained(...)``) or a model / run directory.
    data : mne.io.Raw, mne.Epochs or path
        The recording; MNE objects hold volts.

    Returns
    -------
    pandas.DataFrame
        ``window, start_s, end_s, prob_<class>..., predicted, peak_uv, quality, interpolated, source_sfreq,
        upsampled`` (and ``epoch`` for Epochs input). ``quality`` is ``ok`` or why the training data would have
        rejected the window (``amplitude>...``, ``flat_channel``, ``flat_electrode:<names>``, ``nan``);
        ``interpolated`` names the electrodes ``allow_missing`` interpolated (at most ``max_interpolated``).
    """
    import pandas as pd

    probs, rw, meta = _run(model, data, "probs", stride_s=stride_s, allow_missing=allow_missing, rename=rename,
                           device=device, batch_size=batch_size, precision=precision,
                           max_interpolated=max_interpolated)
    names = _label_names(meta, probs.shape[1])
    table = pd.DataFrame({"window": np.arange(len(rw.windows)), "start_s": rw.starts_s,
                          "end_s": rw.starts_s + rw.n_times / rw.sfreq})
    if rw.epoch is not None:
        table.insert(1, "epoch", rw.epoch)
    for c, name in enumerate(names):
        table[f"prob_{name}"] = probs[:, c]
    table["predicted"] = [names[i] for i in probs.argmax(1)]
    table["peak_uv"] = rw.peak_uv
    table["quality"] = rw.quality
    table["interpolated"] = " ".join(rw.interpolated)
    table["source_sfreq"] = rw.source_sfreq
    table["upsampled"] = rw.upsampled
    return table


def embed(model, data, *, stride_s: float | None = None, allow_missing: bool = False,
          rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
          precision: str = "fp32", max_interpolated: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-window embeddings (the IILP-pooled features the head reads, ``(n_windows, n_pooled * n_groups *
    d_model)``) of an ``mne.io.Raw``, ``mne.Epochs`` or recording file, and the window start times (s)."""
    emb, rw, _ = _run(model, data, "embed", stride_s=stride_s, allow_missing=allow_missing, rename=rename,
                      device=device, batch_size=batch_size, precision=precision, max_interpolated=max_interpolated)
    return emb.astype(np.float32), np.asarray(rw.starts_s, dtype=np.float64)


def default_output(file, suffix: str) -> Path:
    """``rec.v1.edf`` → ``rec.v1<suffix>`` beside the input (the whole stem is kept, so ``rec.v2.edf`` cannot
    overwrite it). When the input's folder is not writable (an archive, a read-only mount) the output goes to
    the current directory instead, under the same name."""
    f = Path(file)
    out = f.with_name(f.stem + suffix)
    if f.parent.exists() and not os.access(f.parent, os.W_OK):
        out = Path.cwd() / out.name
    return out


def _check_out(out: Path, file) -> None:
    """Refuse an output that is (or, through links, resolves to) the input recording."""
    same = out.resolve() == Path(file).resolve() or (out.exists() and os.path.samefile(out, file))
    if same:
        raise ValueError(f"--out {out} is the input recording itself; choose another output path")


#: ``--format`` of ``neuript predict`` → default output suffix
FORMATS = {"csv": ".predictions.csv", "annotations": ".predictions_annot.fif", "bids": "_events.tsv"}


def _bids_events_name(file) -> Path:
    """``sub-01_task-rest_eeg.edf`` → ``sub-01_task-rest_events.tsv`` (BIDS); other names get ``_events.tsv``."""
    f = Path(file)
    stem = f.stem[: -len("_eeg")] if f.stem.endswith("_eeg") else f.stem
    return f.with_name(stem + "_events.tsv")


def write_predictions(table, out: Path, fmt: str) -> Path:
    """Write a :func:`predict` table as CSV, as MNE annotations (``.fif``; one per window, described by the
    predicted class, openable in MNE's browser and exportable to EDF+) or as a BIDS ``events.tsv``."""
    from neuript._atomic import atomic_path

    if fmt == "csv":
        with atomic_path(out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    elif fmt == "annotations":
        import mne

        ann = mne.Annotations(onset=table["start_s"].to_numpy(), duration=(table["end_s"] - table["start_s"]).to_numpy(),
                              description=[f"neuript/{p}" + ("" if q == "ok" else f"/{q}")
                                           for p, q in zip(table["predicted"], table["quality"])])
        with atomic_path(out) as tmp:
            real = tmp.with_name(tmp.name + "_annot.fif")  # MNE insists on the -annot.fif / _annot.fif ending
            ann.save(real, overwrite=True, verbose="error")
            os.replace(real, tmp)
    elif fmt == "bids":
        probs = [c for c in table.columns if c.startswith("prob_")]
        ev = table[["start_s"]].rename(columns={"start_s": "onset"})
        ev["duration"] = table["end_s"] - table["start_s"]
        ev["trial_type"] = table["predicted"]
        for c in probs:
            ev[c] = table[c]
        ev["quality"] = table["quality"]
        with atomic_path(out) as tmp:
            ev.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="n/a")
    else:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return out


def summarise(table) -> str:
    """One line per recording: windows, share of each predicted class, flagged windows."""
    n = len(table)
    shares = table["predicted"].value_counts(normalize=True)
    flagged = int((table["quality"] != "ok").sum())
    interp = table["interpolated"].iloc[0] if n and "interpolated" in table else ""
    return (f"{n} windows; predicted " + ", ".join(f"{k} {100 * v:.0f} %" for k, v in shares.items())
            + f"; {flagged} flagged" + (f"; interpolated {interp}" if interp else ""))


def predict_file(file, model_path, *, out=None, stride_s: float | None = None, allow_missing: bool = False,
                 rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
                 precision: str = "fp32", fmt: str = "csv", return_table: bool = False,
                 max_interpolated: int | None = None):
    """:func:`predict` on a recording file, written (atomically) to ``out`` — default beside the input:
    ``<stem>.predictions.csv``, ``<stem>.predictions_annot.fif`` (``fmt="annotations"``: MNE annotations) or
    the BIDS ``<stem>_events.tsv`` (``fmt="bids"``). Returns the path (and the table with ``return_table``).

    ``precision="bf16"`` runs the model under bfloat16 autocast: on CPUs with bf16 matrix units and on GPUs
    several times faster for large models, with probabilities that differ from fp32 by rounding (measured: up to
    8e-4 for ``neuript_tiny`` on an EEGMAT recording, where 3 % of the windows, all near 0.5, changed class).
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if out is not None:
        out = Path(out)
    else:
        out = _bids_events_name(file) if fmt == "bids" else default_output(file, FORMATS[fmt])
    _check_out(out, file)
    table = predict(model_path, file, stride_s=stride_s, allow_missing=allow_missing, rename=rename, device=device,
                    batch_size=batch_size, precision=precision, max_interpolated=max_interpolated)
    write_predictions(table, out, fmt)
    return (out, table) if return_table else out


def embed_file(file, model_path, *, out=None, stride_s: float | None = None, allow_missing: bool = False,
               rename: dict[str, str] | None = None, device: str = "auto", batch_size: int = 64,
               precision: str = "fp32", max_interpolated: int | None = None) -> Path:
    """:func:`embed` on a recording file, saved as ``.npy`` (default ``<stem>.embeddings.npy`` beside the input)
    with the window start times in a sidecar ``.times.npy``.

    Both are written atomically and as a pair: whenever the embeddings file exists, its sidecar belongs to the
    same run (an interrupted rewrite leaves no embeddings file rather than new embeddings beside old times, or
    the reverse)."""
    out = Path(out) if out is not None else default_output(file, ".embeddings.npy")
    _check_out(out, file)
    emb, starts = embed(model_path, file, stride_s=stride_s, allow_missing=allow_missing, rename=rename,
                        device=device, batch_size=batch_size, precision=precision, max_interpolated=max_interpolated)
    _save_pair(out, emb, out.with_suffix(".times.npy"), starts)
    return out


def _save_pair(main: Path, main_arr: np.ndarray, side: Path, side_arr: np.ndarray) -> None:
    """Write ``main`` and its sidecar ``side`` so that ``main`` never stands beside another run's ``side``:
    both are written to temporary files first, then the old ``main`` is removed, ``side`` replaced, and ``main``
    put in place last."""
    from neuript._atomic import atomic_path

    with atomic_path(main) as tmp_main:
        with open(tmp_main, "wb") as fh:
            np.save(fh, main_arr)
        with atomic_path(side) as tmp_side:
            with open(tmp_side, "wb") as fh:
                np.save(fh, side_arr)
            main.unlink(missing_ok=True)  # the pair is being replaced: no moment with old main + new side
