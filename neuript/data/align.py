"""Subject and recording alignment: label-free per-group normalisation of EEG windows.

Inter-subject shift (electrode impedance, skull thickness, the subject's own rhythms) is the largest source of
error on unseen subjects. Both methods estimate one transform per group (a subject, or a recording) from that
group's *unlabeled* windows and apply it to all of them:

``"channel"``
    per-channel standardisation: every channel divided by its standard deviation over the group's windows
    (and its mean removed);
``"euclidean"``
    Euclidean alignment (He & Wu, IEEE TBME 2019): ``X ← R^{-1/2} X`` with ``R`` the mean spatial covariance of
    the group's windows, so every group's mean covariance becomes the identity.

The aligned signals have unit variance; they are multiplied by ``scale_uv`` (default 20 µV, a typical scalp-EEG
amplitude) so that the A-law companding that follows sees the range it was designed for.

At test time this is *transductive*: the transform of a test subject is computed from that subject's test
windows (never their labels). Reports say which protocol ran (``neuript finetune --align``); the paper's protocol
is ``"none"``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["ALIGNMENTS", "ALIGN_BY", "fit_transform", "fit_group_transforms", "apply_group_transforms", "align_windows"]

ALIGNMENTS = ("none", "channel", "euclidean")
ALIGN_BY = ("subject", "recording")


def _inv_sqrtm(r: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(r)
    w = np.maximum(w, 1e-10 * max(float(w.max()), 1e-30))
    return (v * w ** -0.5) @ v.T


def fit_transform(x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The transform of one group's windows ``x`` (n, C, T): (offset (C, 1), matrix (C, C)) such that the
    aligned window is ``matrix @ (x - offset)``."""
    c = x.shape[1]
    flat = np.moveaxis(x, 1, 0).reshape(c, -1).astype(np.float64)
    mean = flat.mean(axis=1, keepdims=True)
    if method == "channel":
        sd = flat.std(axis=1)
        sd = np.where(sd > 1e-12, sd, 1.0)  # a flat channel stays flat instead of exploding
        return mean, np.diag(1.0 / sd)
    if method == "euclidean":
        xc = x - x.mean(axis=-1, keepdims=True)
        r = np.einsum("nct,ndt->cd", xc, xc, optimize=True) / (x.shape[0] * x.shape[-1])
        r = r + 1e-6 * np.trace(r) / c * np.eye(c)  # bipolar / average montages are rank-deficient
        return mean, _inv_sqrtm(r)
    raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}; got {method!r}")


def fit_group_transforms(windows: np.ndarray, groups: Sequence[str], method: str) -> dict[str, tuple]:
    """One transform per group, from that group's windows (n, C, T) µV; ``groups`` labels every window."""
    groups = np.asarray(groups).astype(str)
    return {g: fit_transform(windows[groups == g], method) for g in np.unique(groups)}


def apply_group_transforms(windows: np.ndarray, groups: Sequence[str], transforms: dict[str, tuple], *,
                           scale_uv: float = 20.0) -> np.ndarray:
    """Apply :func:`fit_group_transforms`' transforms; output in µV-like units (unit variance × ``scale_uv``)."""
    groups = np.asarray(groups).astype(str)
    out = np.empty(windows.shape, dtype=np.float32)
    for g in np.unique(groups):
        sel = groups == g
        offset, matrix = transforms[g]
        out[sel] = scale_uv * np.einsum("cd,ndt->nct", matrix, windows[sel] - offset[None], optimize=True)
    return out


def align_windows(windows: np.ndarray, groups: Sequence[str], method: str, *, scale_uv: float = 20.0) -> np.ndarray:
    """Align every group of ``windows`` with its own transform (``method`` ``"none"`` returns them unchanged)."""
    if method == "none":
        return np.asarray(windows, dtype=np.float32)
    return apply_group_transforms(windows, groups, fit_group_transforms(windows, groups, method),
                                  scale_uv=scale_uv)
