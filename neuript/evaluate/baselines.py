"""Classical (non-deep) baselines with a scikit-learn API.

Both take windows ``X`` of shape ``(n, C, T)`` in microvolts (e.g. ``WindowStore.read``, *before* A-law
companding) and integer labels, and expose ``fit`` / ``predict`` / ``predict_proba``:

``"riemann"``
    ``Covariances(estimator="oas") → TangentSpace(metric="riemann") → LogisticRegression(class_weight="balanced")``.
    Common-average-referenced and bipolar data give rank-deficient sample covariances; the Oracle
    Approximating Shrinkage (OAS) estimator shrinks towards a scaled identity, which keeps every covariance
    symmetric positive definite. An optional extra :class:`pyriemann.estimation.Shrinkage` step
    (``shrinkage=``) adds further regularisation, e.g. with ``estimator="scm"``.
``"bandpower"``
    :class:`LogBandPower` (Welch PSD → log band power per channel and band, bands clipped at Nyquist)
    → ``StandardScaler`` → ``LogisticRegression(class_weight="balanced")``.

Both are deterministic: the lbfgs solver does not use randomness; ``seed`` is still passed as
``random_state`` so a different solver would stay reproducible.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from scipy.signal import welch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from neuript.evaluate.metrics import _to_numpy

__all__ = [
    "BASELINES",
    "DEFAULT_BANDS",
    "LogBandPower",
    "Windows3D",
    "available_baselines",
    "make_bandpower_baseline",
    "make_baseline",
    "make_riemann_baseline",
    "run_baseline",
]

#: Canonical EEG bands ``(name, low Hz, high Hz)``; upper edges above Nyquist are clipped at fit time and
#: bands starting at or above Nyquist are dropped (at 64 Hz gamma becomes 30-32 Hz).
DEFAULT_BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)


# --------------------------------------------------------------------------------------------------------------
# transformers
# --------------------------------------------------------------------------------------------------------------
def _check_windows(X: Any) -> np.ndarray:
    X = np.asarray(_to_numpy(X), dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"expected windows of shape (n, channels, times), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("no windows")
    if not np.all(np.isfinite(X)):
        raise ValueError("windows contain nan or inf")
    return X


class Windows3D(BaseEstimator, TransformerMixin):
    """Validate ``(n, C, T)`` windows and cast them to float64 (first step of every baseline).

    Accepts numpy arrays and torch tensors; raises on other shapes, non-finite values or a channel count
    different from the one seen in ``fit``.
    """

    def fit(self, X: Any, y: Any = None) -> Windows3D:
        X = _check_windows(X)
        self.n_channels_ = X.shape[1]
        self.n_times_ = X.shape[2]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_channels_")
        X = _check_windows(X)
        if X.shape[1] != self.n_channels_:
            raise ValueError(f"fitted on {self.n_channels_} channels, got {X.shape[1]}")
        return X


class LogBandPower(BaseEstimator, TransformerMixin):
    """Log band power per channel and frequency band from a Welch PSD.

    Parameters
    ----------
    sfreq : float
        Sampling frequency of the windows in Hz.
    bands : sequence of (name, low, high), default DEFAULT_BANDS
        Frequency bands in Hz, half-open ``[low, high)`` (the last kept band is closed at its upper edge so
        the Nyquist bin is used). ``high`` is clipped at Nyquist; bands with ``low >= Nyquist`` are dropped.
    welch_seconds : float, default 2.0
        Welch segment length in seconds (clipped to the window length); sets the frequency resolution
        ``1 / welch_seconds`` Hz. Segments overlap by 50 % (scipy default) with a Hann window.
    floor : float, default 1e-12
        Added to the band power (µV²) before the log so flat channels give a finite feature.

    Attributes
    ----------
    bands_ : list of (name, low, high)
        The bands actually used after clipping at Nyquist.
    nperseg_ : int
        Welch segment length in samples.
    n_channels_ : int
        Channels seen in ``fit``.
    feature_names_ : list of str
        ``"{channel index}_{band}"``, channel-major, matching the output columns.
    """

    def __init__(
        self,
        sfreq: float,
        *,
        bands: Sequence[tuple[str, float, float]] = DEFAULT_BANDS,
        welch_seconds: float = 2.0,
        floor: float = 1e-12,
    ) -> None:
        self.sfreq = sfreq
        self.bands = bands
        self.welch_seconds = welch_seconds
        self.floor = floor

    def _plan(self, n_times: int) -> tuple[int, list[tuple[str, float, float]], list[np.ndarray]]:
        if not (isinstance(self.sfreq, numbers.Real) and self.sfreq > 0):
            raise ValueError(f"sfreq must be a positive number, got {self.sfreq!r}")
        if not self.welch_seconds > 0:
            raise ValueError(f"welch_seconds must be positive, got {self.welch_seconds!r}")
        nyq = self.sfreq / 2.0
        nperseg = int(min(n_times, max(2, round(self.welch_seconds * self.sfreq))))
        freqs = np.fft.rfftfreq(nperseg, d=1.0 / self.sfreq)
        kept = []
        for name, lo, hi in self.bands:
            if not lo < hi:
                raise ValueError(f"band {name!r}: low {lo} must be below high {hi}")
            if lo >= nyq:
                continue
            kept.append((str(name), float(lo), float(min(hi, nyq))))
        if not kept:
            raise ValueError(f"no band lies below Nyquist ({nyq} Hz)")
        kept.sort(key=lambda b: b[1])
        masks = []
        for i, (name, lo, hi) in enumerate(kept):
            last = i == len(kept) - 1
            m = (freqs >= lo) & ((freqs <= hi) if last else (freqs < hi))
            if not m.any():
                raise ValueError(
                    f"band {name!r} ({lo}-{hi} Hz) holds no Welch frequency bin at resolution "
                    f"{self.sfreq / nperseg:.3g} Hz; increase welch_seconds or widen the band"
                )
            masks.append(m)
        return nperseg, kept, masks

    def fit(self, X: Any, y: Any = None) -> LogBandPower:
        X = _check_windows(X)
        self.nperseg_, self.bands_, self._masks = self._plan(X.shape[2])
        self.n_channels_ = X.shape[1]
        self.n_times_ = X.shape[2]
        self.feature_names_ = [f"{c}_{b[0]}" for c in range(self.n_channels_) for b in self.bands_]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "bands_")
        X = _check_windows(X)
        if X.shape[1] != self.n_channels_ or X.shape[2] != self.n_times_:
            raise ValueError(
                f"fitted on windows of {self.n_channels_} channels x {self.n_times_} samples, got "
                f"{X.shape[1]} x {X.shape[2]}"
            )
        freqs, psd = welch(X, fs=self.sfreq, nperseg=self.nperseg_, axis=-1)  # (n, C, F), µV²/Hz
        df = freqs[1] - freqs[0]
        power = np.stack([psd[..., m].sum(axis=-1) * df for m in self._masks], axis=-1)  # (n, C, B)
        return np.log10(power + self.floor).reshape(X.shape[0], -1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)


# --------------------------------------------------------------------------------------------------------------
# pipelines
# --------------------------------------------------------------------------------------------------------------
def _logreg(seed: int, C: float, max_iter: int) -> LogisticRegression:
    return LogisticRegression(C=C, class_weight="balanced", max_iter=max_iter, random_state=seed)


def make_riemann_baseline(
    *,
    sfreq: float | None = None,
    seed: int = 0,
    estimator: str = "oas",
    shrinkage: float | None = None,
    metric: str = "riemann",
    C: float = 1.0,
    max_iter: int = 1000,
) -> Pipeline:
    """Riemannian tangent-space baseline.

    Parameters
    ----------
    sfreq : float, optional
        Unused (covariances do not depend on it); accepted so every baseline has the same signature.
    seed : int, default 0
        ``random_state`` of the logistic regression.
    estimator : str, default "oas"
        pyriemann covariance estimator. ``"oas"`` is well conditioned on rank-deficient (CAR / bipolar)
        data; ``"scm"`` is not and then needs ``shrinkage``.
    shrinkage : float, optional
        If given, a :class:`pyriemann.estimation.Shrinkage` step ``(1 - s) Σ + s tr(Σ)/C I`` follows the
        covariance estimation.
    metric : str, default "riemann"
        Metric of the tangent-space reference point (mean of the training covariances).
    C : float, default 1.0
        Inverse L2 regularisation strength of the logistic regression.
    max_iter : int, default 1000
        lbfgs iterations.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    from pyriemann.estimation import Covariances, Shrinkage
    from pyriemann.tangentspace import TangentSpace

    steps: list[tuple[str, Any]] = [("windows", Windows3D()), ("cov", Covariances(estimator=estimator))]
    if shrinkage is not None:
        if not 0 < shrinkage <= 1:
            raise ValueError(f"shrinkage must be in (0, 1], got {shrinkage}")
        steps.append(("shrink", Shrinkage(shrinkage=shrinkage)))
    steps += [("ts", TangentSpace(metric=metric)), ("clf", _logreg(seed, C, max_iter))]
    return Pipeline(steps)


def make_bandpower_baseline(
    *,
    sfreq: float,
    seed: int = 0,
    bands: Sequence[tuple[str, float, float]] = DEFAULT_BANDS,
    welch_seconds: float = 2.0,
    floor: float = 1e-12,
    C: float = 1.0,
    max_iter: int = 1000,
) -> Pipeline:
    """Filter-bank log band-power baseline.

    Parameters
    ----------
    sfreq : float
        Sampling frequency of the windows in Hz.
    seed : int, default 0
        ``random_state`` of the logistic regression.
    bands, welch_seconds, floor
        See :class:`LogBandPower`.
    C : float, default 1.0
        Inverse L2 regularisation strength of the logistic regression.
    max_iter : int, default 1000
        lbfgs iterations.

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    return Pipeline(
        [
            ("bandpower", LogBandPower(sfreq, bands=bands, welch_seconds=welch_seconds, floor=floor)),
            ("scale", StandardScaler()),
            ("clf", _logreg(seed, C, max_iter)),
        ]
    )


#: Registry of baseline builders, ``name -> builder(*, sfreq, seed, **options) -> Pipeline``.
BASELINES: dict[str, Callable[..., Pipeline]] = {
    "riemann": make_riemann_baseline,
    "bandpower": make_bandpower_baseline,
}


def available_baselines() -> list[str]:
    """Names accepted by :func:`make_baseline`."""
    return sorted(BASELINES)


def make_baseline(name: str, *, sfreq: float, seed: int, **options: Any) -> Pipeline:
    """Build a classical baseline by name.

    Parameters
    ----------
    name : {"riemann", "bandpower"}
        Registry key, see :data:`BASELINES`.
    sfreq : float
        Sampling frequency of the windows in Hz.
    seed : int
        Random state of the classifier.
    **options
        Passed to the builder (e.g. ``C=0.1``, ``shrinkage=0.05``, ``bands=...``).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted; ``fit(X, y)`` with ``X`` of shape ``(n, C, T)`` in µV and integer ``y``.
    """
    try:
        builder = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; available: {available_baselines()}") from None
    return builder(sfreq=sfreq, seed=seed, **options)


#: C grid of the subject-wise cross-validation (``C="cv"``)
C_GRID: tuple[float, ...] = tuple(10.0 ** k for k in range(-6, 3))
#: alignments of :func:`run_baseline`: signal-level (``neuript.data.align``) or per-group feature standardisation
BASELINE_ALIGNMENTS = ("none", "channel", "euclidean", "features")


def _standardise_per_group(f: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty_like(f)
    for g in np.unique(groups):
        sel = groups == g
        out[sel] = (f[sel] - f[sel].mean(0)) / (f[sel].std(0) + 1e-8)
    return out


def _fit_predict(name: str, X_train, y_train, X_test, *, sfreq: float, seed: int, C: float, align: str,
                 groups_train, groups_test, options: dict) -> np.ndarray:
    """Class probabilities of ``X_test`` from a baseline fitted on ``X_train`` under ``align``."""
    pipe = make_baseline(name, sfreq=sfreq, seed=seed, C=C, **options)
    if align != "features":
        pipe.fit(X_train, y_train)
        return pipe.predict_proba(X_test)
    feats, clf = pipe[:-1], pipe[-1]
    f_train = _standardise_per_group(np.asarray(feats.fit_transform(X_train, y_train), float), groups_train)
    f_test = _standardise_per_group(np.asarray(feats.transform(X_test), float), groups_test)
    clf.fit(f_train, y_train)
    return clf.predict_proba(f_test)


def choose_C(name: str, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *, sfreq: float, align: str = "none",
             n_folds: int = 7, grid: Sequence[float] = C_GRID, options: dict | None = None) -> tuple[float, dict]:
    """The regularisation ``C`` with the best mean balanced accuracy over subject-wise folds of the *training*
    data (``GroupKFold`` on ``groups``); returns it and the score of every grid value."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError("choosing C by subject-wise cross-validation needs at least 2 training subjects")
    folds = list(GroupKFold(n_splits=min(n_folds, n_groups)).split(X, y, groups))
    scores = {}
    for c in grid:
        accs = []
        for tr, te in folds:
            if len(np.unique(y[tr])) < len(np.unique(y)):
                continue
            p = _fit_predict(name, X[tr], y[tr], X[te], sfreq=sfreq, seed=0, C=c, align=align,
                             groups_train=groups[tr], groups_test=groups[te], options=options or {})
            accs.append(balanced_accuracy_score(y[te], p.argmax(1)))
        scores[c] = float(np.mean(accs)) if accs else float("nan")
    best = max(scores, key=lambda c: (np.nan_to_num(scores[c], nan=-1.0), -c))
    return best, scores


def run_baseline(
    name: str,
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    *,
    sfreq: float,
    n_classes: int,
    seeds: Iterable[int] = (0,),
    groups_train: Any = None,
    groups_test: Any = None,
    align: str = "none",
    C: float | str = 1.0,
    **options: Any,
) -> dict[str, Any]:
    """Fit and score a baseline once per seed; the result can be passed to ``write_report``.

    Parameters
    ----------
    name : str
        Baseline name, see :func:`make_baseline`.
    X_train, y_train, X_test, y_test : array-like
        Windows ``(n, C, T)`` in µV and integer labels in ``[0, n_classes)``.
    sfreq : float
        Sampling frequency in Hz.
    n_classes : int
        Number of classes; every class must appear in ``y_train``.
    seeds : iterable of int, default (0,)
        Seeds to run (the baselines are deterministic, so the std over seeds is 0; kept for a uniform
        report layout with the deep models).
    groups_train, groups_test : array-like of str, optional
        The subject (or recording) of every window: needed by ``align`` and by ``C="cv"``.
    align : {"none", "channel", "euclidean", "features"}
        Label-free per-group alignment: of the signals (:mod:`neuript.data.align`) or, ``"features"``, a
        standardisation of the features per group. ``"none"`` is the paper's protocol.
    C : float or "cv"
        Inverse regularisation of the logistic regression; ``"cv"`` chooses it by subject-wise cross-validation
        on the training windows (:func:`choose_C`), never on the test windows.
    **options
        Passed to the baseline builder.

    Returns
    -------
    dict
        ``{"model": "baseline:<name>", "per_seed": {seed: metrics}, "aggregate": ..., "provenance": ...}``.
    """
    from neuript.data.align import align_windows
    from neuript.evaluate.metrics import aggregate, compute_metrics

    if align not in BASELINE_ALIGNMENTS:
        raise ValueError(f"align must be one of {', '.join(BASELINE_ALIGNMENTS)}; got {align!r}")
    y_train = np.asarray(y_train)
    missing = sorted(set(range(n_classes)) - set(np.unique(y_train).tolist()))
    if missing:
        raise ValueError(f"classes {missing} are absent from y_train")
    needs_groups = align != "none" or C == "cv"
    if needs_groups and (groups_train is None or (align != "none" and groups_test is None)):
        raise ValueError("align and C='cv' need groups_train (and groups_test for align): the subject of every window")
    g_train = None if groups_train is None else np.asarray(groups_train).astype(str)
    g_test = None if groups_test is None else np.asarray(groups_test).astype(str)
    X_train, X_test = np.asarray(X_train, dtype=np.float32), np.asarray(X_test, dtype=np.float32)
    if align in ("channel", "euclidean"):
        X_train, X_test = align_windows(X_train, g_train, align), align_windows(X_test, g_test, align)
    cv_scores = None
    if C == "cv":
        C, cv_scores = choose_C(name, X_train, y_train, g_train, sfreq=sfreq,
                                align="features" if align == "features" else "none", options=options)
    seeds = list(seeds)
    per_seed: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        proba = _fit_predict(name, X_train, y_train, X_test, sfreq=sfreq, seed=seed, C=float(C), align=align,
                             groups_train=g_train, groups_test=g_test, options=options)
        per_seed[seed] = compute_metrics(y_test, proba, n_classes=n_classes)
    return {
        "model": f"baseline:{name}",
        "per_seed": per_seed,
        "aggregate": aggregate(per_seed.values()),
        "proba": proba,
        "provenance": {"baseline": name, "options": options, "sfreq": sfreq, "seeds": seeds, "align": align,
                       "C": float(C), "cv_balanced_accuracy": cv_scores},
    }
