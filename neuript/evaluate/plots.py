"""Evaluation figures: confusion matrix, ROC / PR curves, masked-reconstruction traces.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas directly, so this module
never touches pyplot's global state or backend (safe in headless jobs, threads and notebooks) and never
shows a window. Every PNG is written atomically (temporary file + ``os.replace``) and its path returned.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm

from neuript._atomic import atomic_write
from neuript.evaluate.metrics import _to_numpy, _validate

__all__ = ["DEFAULT_DPI", "plot_confusion_matrix", "plot_learning_curves", "plot_reconstruction", "plot_roc"]

#: Resolution of the written PNGs unless a ``dpi`` argument says otherwise.
DEFAULT_DPI = 120


def _save(fig: Figure, path: str | os.PathLike, *, dpi: int) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = buf.getvalue()
    return atomic_write(path, lambda fh: fh.write(data), fsync=True)


# --------------------------------------------------------------------------------------------------------------
# confusion matrix
# --------------------------------------------------------------------------------------------------------------
def plot_confusion_matrix(
    cm: Any,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    normalize: bool = True,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Plot a confusion matrix as an annotated heat map.

    Parameters
    ----------
    cm : array-like of int, shape (K, K)
        Counts; rows are true classes, columns predicted classes (as in
        :func:`~neuript.evaluate.metrics.compute_metrics`).
    class_names : sequence of str, length K
        Tick labels.
    path : str or os.PathLike
        Output PNG path (parent directories are created).
    title : str, optional
        Figure title.
    normalize : bool, default True
        Colour by row-normalised rate (recall per true class) and print ``count`` and ``percent`` in each
        cell; with ``False`` colour by raw counts. Rows without samples are shown as 0 %.
    dpi : int, default DEFAULT_DPI

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    cm = _to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"cm must be a square matrix, got shape {cm.shape}")
    k = cm.shape[0]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for a {k}x{k} confusion matrix")
    counts = cm.astype(np.float64)
    row = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, row, out=np.zeros_like(counts), where=row > 0)
    shown = rates if normalize else counts

    size = 1.6 + 0.75 * k
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1.0 if normalize else max(float(counts.max()), 1.0))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="row-normalised rate" if normalize else "count")
    ax.set_xticks(range(k), labels=[str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(k), labels=[str(c) for c in class_names])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    thresh = (1.0 if normalize else max(float(counts.max()), 1.0)) / 2
    for i in range(k):
        for j in range(k):
            text = f"{int(round(counts[i, j]))}\n{100 * rates[i, j]:.1f}%" if normalize else f"{int(counts[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i, j] > thresh else "black")
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi=dpi)


# --------------------------------------------------------------------------------------------------------------
# ROC / PR
# --------------------------------------------------------------------------------------------------------------
def _curve_pair(ax_roc: Any, ax_pr: Any, y_bin: np.ndarray, s: np.ndarray, label: str) -> bool:
    """Draw one ROC and one PR curve; return False (and draw nothing) when undefined."""
    if y_bin.min() == y_bin.max():
        return False
    fpr, tpr, _ = skm.roc_curve(y_bin, s)
    prec, rec, _ = skm.precision_recall_curve(y_bin, s)
    auroc = skm.roc_auc_score(y_bin, s)
    ap = skm.average_precision_score(y_bin, s)
    ax_roc.plot(fpr, tpr, label=f"{label} (AUROC {auroc:.3f})")
    ax_pr.step(rec, prec, where="post", label=f"{label} (AP {ap:.3f})")
    return True


def plot_roc(
    y_true: Any,
    scores: Any,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str],
    title: str | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Plot ROC and precision-recall curves side by side.

    Binary tasks get one ROC and one PR curve for the positive class (class 1), with the chance line
    (diagonal / positive prevalence). Multi-class tasks get one-vs-rest curves, one per class.
    Classes for which a curve is undefined (no positive or no negative sample) are skipped with a warning.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices.
    scores : array-like of float
        Class probabilities as accepted by :func:`~neuript.evaluate.metrics.compute_metrics`:
        ``(n, K)``, or for binary tasks also ``(n,)`` / ``(n, 1)``.
    path : str or os.PathLike
        Output PNG path.
    class_names : sequence of str
        One name per class; its length sets the number of classes K (>= 2).
    title : str, optional
        Figure suptitle.
    dpi : int, default DEFAULT_DPI

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    k = len(class_names)
    y, s = _validate(y_true, scores, k)
    fig = Figure(figsize=(10, 4.5))
    ax_roc = fig.add_subplot(1, 2, 1)
    ax_pr = fig.add_subplot(1, 2, 2)
    ax_roc.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    drawn = 0
    if k == 2:
        y_bin = (y == 1).astype(int)
        if _curve_pair(ax_roc, ax_pr, y_bin, s, str(class_names[1])):
            ax_pr.axhline(y_bin.mean(), ls="--", color="grey", lw=1, label="chance")
            drawn += 1
        else:
            warnings.warn("ROC/PR undefined: y_true holds a single class", UserWarning, stacklevel=2)
    else:
        skipped = []
        for c in range(k):
            if _curve_pair(ax_roc, ax_pr, (y == c).astype(int), s[:, c], str(class_names[c])):
                drawn += 1
            else:
                skipped.append(str(class_names[c]))
        if skipped:
            warnings.warn(f"one-vs-rest curves undefined (skipped) for classes: {skipped}", UserWarning,
                          stacklevel=2)
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        if drawn == 0:
            ax.text(0.5, 0.5, "undefined: single class in y_true", ha="center", va="center",
                    transform=ax.transAxes)
    ax_roc.set_xlabel("False positive rate")
    ax_roc.set_ylabel("True positive rate")
    ax_roc.set_title("ROC" if k == 2 else "ROC (one-vs-rest)")
    ax_pr.set_xlabel("Recall")
    ax_pr.set_ylabel("Precision")
    ax_pr.set_title("Precision-recall" if k == 2 else "Precision-recall (one-vs-rest)")
    ax_roc.legend(loc="lower right", fontsize=8)
    if drawn:
        ax_pr.legend(loc="lower left", fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=dpi)


# --------------------------------------------------------------------------------------------------------------
# masked reconstruction (pretraining)
# --------------------------------------------------------------------------------------------------------------
def plot_reconstruction(
    x: Any,
    pred: Any,
    mask: Any,
    path: str | os.PathLike,
    *,
    ch_names: Sequence[str],
    sfreq: float,
    n_channels: int = 4,
    channels: Sequence[int | str] | None = None,
    sample: int = 0,
    title: str | None = None,
    unit: str = "a.u.",
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Plot original vs reconstructed signal at the masked points (masked pretraining, spec §4).

    For each shown channel: the original signal as a line, the masked points of the original as open
    circles and the reconstruction at those points as crosses. AAMP masks are scattered in time, so points
    (not spans) are marked. The subplot title gives the mean absolute error on the masked points.

    Parameters
    ----------
    x, pred : array-like, shape (C, T) or (B, C, T)
        Model input (companded, as the model saw it) and reconstruction, e.g. ``out["pred"]`` of
        ``NeurIPTPretrain``. Torch tensors are accepted.
    mask : array-like of bool, shape like ``x``
        True where a point was masked (``out["mask"]``).
    path : str or os.PathLike
        Output PNG path.
    ch_names : sequence of str, length C
        Channel names for the subplot labels.
    sfreq : float
        Sampling frequency in Hz (time axis in seconds).
    n_channels : int, default 4
        Number of channels to show when ``channels`` is not given: the first ``n_channels`` channels,
        preferring channels with more masked points (stable order).
    channels : sequence of int or str, optional
        Explicit channel indices or names to show (overrides ``n_channels``).
    sample : int, default 0
        Which batch element to show for batched input.
    title : str, optional
        Figure suptitle.
    unit : str, default "a.u."
        y-axis unit label (companded input has no physical unit).
    dpi : int, default DEFAULT_DPI

    Returns
    -------
    pathlib.Path
        The written PNG.
    """
    x, pred, mask = _to_numpy(x), _to_numpy(pred), _to_numpy(mask)
    if x.shape != pred.shape or x.shape != mask.shape:
        raise ValueError(f"x, pred and mask must have the same shape; got {x.shape}, {pred.shape}, {mask.shape}")
    if x.ndim == 3:
        if not 0 <= sample < x.shape[0]:
            raise IndexError(f"sample {sample} out of range for batch of {x.shape[0]}")
        x, pred, mask = x[sample], pred[sample], mask[sample]
    elif x.ndim != 2:
        raise ValueError(f"expected (C, T) or (B, C, T) arrays, got shape {x.shape}")
    mask = mask.astype(bool)
    n_ch, n_t = x.shape
    if len(ch_names) != n_ch:
        raise ValueError(f"{len(ch_names)} channel names for {n_ch} channels")
    if not sfreq > 0:
        raise ValueError(f"sfreq must be positive, got {sfreq}")
    if channels is None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        order = np.argsort(-mask.sum(axis=1), kind="stable")
        idx = sorted(int(i) for i in order[: min(n_channels, n_ch)])
    else:
        names = list(ch_names)
        idx = []
        for c in channels:
            if isinstance(c, str):
                if c not in names:
                    raise ValueError(f"channel {c!r} not in ch_names")
                idx.append(names.index(c))
            else:
                if not 0 <= int(c) < n_ch:
                    raise IndexError(f"channel index {c} out of range for {n_ch} channels")
                idx.append(int(c))
        if not idx:
            raise ValueError("channels is empty")

    t = np.arange(n_t) / float(sfreq)
    fig = Figure(figsize=(11, 1.9 * len(idx) + 0.6), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(len(idx), 1, sharex=True, squeeze=False)[:, 0]))
    for ax, c in zip(axes, idx):
        m = mask[c]
        ax.plot(t, x[c], color="0.35", lw=0.8, label="original")
        if m.any():
            err = float(np.mean(np.abs(pred[c, m] - x[c, m])))
            ax.plot(t[m], x[c, m], "o", mfc="none", mec="tab:red", ms=3.5, mew=0.8, ls="none",
                    label="original (masked)")
            ax.plot(t[m], pred[c, m], "x", color="tab:blue", ms=3.5, mew=0.9, ls="none",
                    label="reconstruction (masked)")
            ax.set_title(f"{ch_names[c]}: {int(m.sum())}/{n_t} masked, masked MAE {err:.3g}", fontsize=9,
                         loc="left")
        else:
            ax.set_title(f"{ch_names[c]}: no masked points", fontsize=9, loc="left")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.set_xlim(t[0], t[-1] if n_t > 1 else t[0] + 1.0 / sfreq)
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(loc="upper right", fontsize=8, ncol=3)
    if title:
        fig.suptitle(title)
    return _save(fig, path, dpi=dpi)


# --------------------------------------------------------------------------------------------------------------
# learning curves
# --------------------------------------------------------------------------------------------------------------
def plot_learning_curves(
    histories: dict[str, Sequence[dict[str, Any]]],
    path: str | os.PathLike,
    *,
    title: str,
    chance: float | None = None,
    dpi: int = DEFAULT_DPI,
) -> Path:
    """Loss, balanced accuracy and learning rate per epoch, one colour per seed (train dashed, validation solid).

    Parameters
    ----------
    histories : dict
        ``seed name -> list of epoch rows`` with ``epoch``, ``train_loss``, ``val_loss``,
        ``train_balanced_accuracy``, ``val_balanced_accuracy``, ``lr`` (missing keys are skipped).
    path : str or os.PathLike
        Output PNG.
    title : str
        Figure title (say which split, seeds, and how many windows and subjects).
    chance : float, optional
        Chance balanced accuracy, drawn as a dotted line.
    """
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    colours = [f"C{i}" for i in range(10)]
    for i, (name, rows) in enumerate(histories.items()):
        c = colours[i % len(colours)]
        ep = [r["epoch"] for r in rows]
        for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], "balanced_accuracy", "balanced accuracy")):
            for split, style in (("train", "--"), ("val", "-")):
                ys = [r.get(f"{split}_{key}") for r in rows]
                if any(y is not None for y in ys):
                    ax.plot(ep, [np.nan if y is None else y for y in ys], style, color=c, marker="o", ms=3,
                            label=f"{name} {split}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
        axes[2].plot(ep, [r.get("lr", np.nan) for r in rows], color=c, label=name)
    if chance is not None:
        axes[1].axhline(chance, ls=":", color="grey", label="chance")
    axes[0].set_title("loss (the training objective on both splits)", fontsize=9)
    axes[1].set_title("balanced accuracy", fontsize=9)
    axes[2].set_title("learning rate (end of epoch)", fontsize=9)
    axes[2].set_xlabel("epoch")
    axes[2].set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].legend(fontsize=7, ncol=2, loc="best", framealpha=0.6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=dpi)
