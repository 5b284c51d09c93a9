"""Benchmark metrics (spec §6) and their aggregation over seeds.

Binary tasks are scored with balanced accuracy, AUC-PR (average precision) and AUROC; multi-class tasks with
balanced accuracy, Cohen's kappa and weighted F1. Accuracy and the confusion matrix are always added.
All metrics are computed with scikit-learn and are returned as *fractions* in [0, 1] (kappa in [-1, 1]);
the report renders them in percent.

Undefined metrics (e.g. AUROC when ``y_true`` holds a single class) are returned as ``nan`` together with an
:class:`UndefinedMetricWarning`; they never raise.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

__all__ = [
    "bootstrap_subjects",
    "collapse_warning",
    "BINARY_METRICS",
    "MULTICLASS_METRICS",
    "METRIC_DISPLAY_NAMES",
    "UndefinedMetricWarning",
    "aggregate",
    "compute_metrics",
    "paper_metrics",
    "primary_metric",
    "task_type",
]

#: The three metrics the paper reports for binary tasks (spec §6), in table order.
BINARY_METRICS: tuple[str, ...] = ("balanced_accuracy", "auc_pr", "auroc")
#: The three metrics the paper reports for multi-class tasks (spec §6), in table order.
MULTICLASS_METRICS: tuple[str, ...] = ("balanced_accuracy", "cohen_kappa", "f1_weighted")
#: Human-readable names used by the report.
METRIC_DISPLAY_NAMES: dict[str, str] = {
    "balanced_accuracy": "Balanced accuracy",
    "auc_pr": "AUC-PR",
    "auroc": "AUROC",
    "cohen_kappa": "Cohen's kappa",
    "f1_weighted": "Weighted F1",
    "accuracy": "Accuracy",
}

_PRIMARY_METRIC = "balanced_accuracy"


class UndefinedMetricWarning(UserWarning):
    """A metric is mathematically undefined for the given labels and was set to ``nan``."""


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _to_numpy(a: Any) -> np.ndarray:
    """Convert array-likes, including (CPU or CUDA, grad-tracking) torch tensors, to numpy."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch.Tensor without importing torch
        t = a.detach().cpu()
        try:
            a = t.numpy()
        except TypeError:  # dtypes numpy lacks (bfloat16): upcast
            a = t.float().numpy()
    return np.asarray(a)


def task_type(n_classes: int) -> str:
    """Return ``"binary"`` for ``n_classes == 2`` and ``"multiclass"`` for ``n_classes > 2``.

    Raises
    ------
    ValueError
        If ``n_classes < 2``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, numbers.Integral) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    return "binary" if n_classes == 2 else "multiclass"


def _resolve_task(task: str | int) -> str:
    if isinstance(task, str):
        key = task.lower().replace("-", "").replace("_", "")
        if key == "binary":
            return "binary"
        if key in ("multiclass", "multi"):
            return "multiclass"
        raise ValueError(f"unknown task {task!r}; expected 'binary', 'multiclass' or a number of classes")
    return task_type(task)


def primary_metric(task: str | int = "binary") -> str:
    """Name of the metric used for early stopping / model selection.

    The paper selects on balanced accuracy for every downstream task (spec §6), so this is
    ``"balanced_accuracy"`` for binary and multi-class tasks alike. Higher is better.

    Parameters
    ----------
    task : {"binary", "multiclass"} or int
        The task type, or its number of classes.

    Returns
    -------
    str
        A key of the dict returned by :func:`compute_metrics`.
    """
    _resolve_task(task)  # validate
    return _PRIMARY_METRIC


def paper_metrics(task: str | int) -> tuple[str, ...]:
    """The three metric names the paper reports for ``task`` (binary or multi-class), in table order."""
    return BINARY_METRICS if _resolve_task(task) == "binary" else MULTICLASS_METRICS


def _undefined(name: str, why: str, *, stacklevel: int = 3) -> float:
    warnings.warn(f"{name} is undefined: {why}; returning nan", UndefinedMetricWarning, stacklevel=stacklevel)
    return float("nan")


def _safe(name: str, fn: Callable[[], float], why: str) -> float:
    """Call an sklearn metric, silencing its own warnings; return nan (+ our warning) if non-finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            value = float(fn())
    if not math.isfinite(value):
        return _undefined(name, why, stacklevel=4)
    return value


def _validate(
    y_true: Any, scores: Any, n_classes: int, *, prob_atol: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    task_type(n_classes)
    y = _to_numpy(y_true)
    s = _to_numpy(scores).astype(np.float64, copy=False)
    if y.ndim != 1:
        y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError("y_true is empty")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("y_true must hold integer class indices")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(
            f"y_true must be in [0, {n_classes}); got values in [{y.min()}, {y.max()}] "
            "(unlabelled windows, label -1, must be filtered out before scoring)"
        )
    if s.ndim == 0 or s.shape[0] != y.shape[0]:
        if s.ndim == 0:
            raise ValueError("scores must have one row per sample, got a scalar")
        raise ValueError(f"scores has {s.shape[0]} rows but y_true has {y.shape[0]} entries")
    if n_classes == 2:
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        elif s.ndim == 2 and s.shape[1] == 2:
            s = s[:, 1]
        elif s.ndim != 1:
            raise ValueError(f"binary scores must have shape (n,), (n, 1) or (n, 2); got {s.shape}")
    elif s.ndim != 2 or s.shape[1] != n_classes:
        raise ValueError(f"scores must have shape (n, {n_classes}) for {n_classes} classes; got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain nan or inf")
    if s.min() < -prob_atol or s.max() > 1.0 + prob_atol:
        raise ValueError(
            f"scores must be probabilities in [0, 1], got values in [{s.min():.3g}, {s.max():.3g}]; "
            "apply sigmoid (1 logit) or softmax (n_classes logits) to model outputs first"
        )
    s = np.clip(s, 0.0, 1.0)
    return y, s


# --------------------------------------------------------------------------------------------------------------
# compute_metrics
# --------------------------------------------------------------------------------------------------------------
def compute_metrics(
    y_true: Any,
    scores: Any,
    *,
    n_classes: int,
    threshold: float = 0.5,
    prob_atol: float = 1e-6,
) -> dict[str, Any]:
    """Compute the benchmark metrics of one evaluation run.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
        True class indices in ``[0, n_classes)``. Numpy arrays, lists and torch tensors are accepted.
    scores : array-like of float
        Class probabilities in [0, 1], shape ``(n, n_classes)``. For a binary task also ``(n,)`` or
        ``(n, 1)`` holding the positive-class (class 1) probability. Logits are rejected (values outside
        [0, 1] raise): apply sigmoid / softmax first, since the binary threshold assumes probabilities.
    n_classes : int
        Number of classes (>= 2). ``2`` selects the binary metric set.
    threshold : float, default 0.5
        Binary tasks only: a sample is predicted positive when ``p(class 1) > threshold``. With two-column
        probabilities and the default this equals ``argmax`` (ties go to class 0).
    prob_atol : float, default 1e-6
        Rounding tolerance: scores in ``[-prob_atol, 1 + prob_atol]`` are clipped to [0, 1]; anything
        further outside raises (it is a logit, not a probability).

    Returns
    -------
    dict
        Binary: ``balanced_accuracy``, ``auc_pr``, ``auroc``, ``accuracy``. Multi-class: ``balanced_accuracy``,
        ``cohen_kappa``, ``f1_weighted``, ``accuracy``. Both also hold ``confusion_matrix`` (list of lists of
        int, rows = true class, columns = predicted class, ``n_classes`` x ``n_classes``) and ``n_samples``.
        Scalar metrics are Python floats (fractions, not percent); undefined ones are ``nan``.

    Warns
    -----
    UndefinedMetricWarning
        When a metric is undefined, e.g. AUROC / AUC-PR with a single class in ``y_true`` or kappa when
        both label vectors are constant and identical.

    Raises
    ------
    ValueError
        On inconsistent shapes, labels outside ``[0, n_classes)``, non-finite scores or scores outside
        [0, 1].

    Examples
    --------
    >>> m = compute_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_classes=2)
    >>> m["auroc"], m["balanced_accuracy"]
    (0.75, 0.75)
    """
    y, s = _validate(y_true, scores, n_classes, prob_atol=prob_atol)
    labels = list(range(n_classes))
    present = np.unique(y)
    out: dict[str, Any] = {}

    if n_classes == 2:
        y_pred = (s > threshold).astype(np.int64)
    else:
        y_pred = np.argmax(s, axis=1).astype(np.int64)

    # balanced accuracy = mean recall over the classes present in y_true (sklearn's definition)
    out["balanced_accuracy"] = _safe(
        "balanced_accuracy", lambda: skm.balanced_accuracy_score(y, y_pred), "no samples"
    )
    if n_classes == 2:
        if present.size < 2:
            out["auc_pr"] = _undefined("auc_pr", f"y_true holds only class {int(present[0])}")
            out["auroc"] = _undefined("auroc", f"y_true holds only class {int(present[0])}")
        else:
            out["auc_pr"] = _safe("auc_pr", lambda: skm.average_precision_score(y, s), "degenerate input")
            out["auroc"] = _safe("auroc", lambda: skm.roc_auc_score(y, s), "degenerate input")
    else:
        out["cohen_kappa"] = _safe(
            "cohen_kappa",
            lambda: skm.cohen_kappa_score(y, y_pred, labels=labels),
            "chance agreement is 1 (both label vectors are constant)",
        )
        out["f1_weighted"] = _safe(
            "f1_weighted",
            lambda: skm.f1_score(y, y_pred, labels=labels, average="weighted", zero_division=0),
            "degenerate input",
        )
    out["accuracy"] = float(skm.accuracy_score(y, y_pred))
    out["confusion_matrix"] = skm.confusion_matrix(y, y_pred, labels=labels).astype(int).tolist()
    out["n_samples"] = int(y.shape[0])
    return out


# --------------------------------------------------------------------------------------------------------------
# aggregate
# --------------------------------------------------------------------------------------------------------------
def _is_scalar_number(v: Any) -> bool:
    return isinstance(v, (numbers.Real, np.number)) and not isinstance(v, (bool, np.bool_))


def aggregate(metric_dicts: Iterable[Mapping[str, Any]], *, ddof: int = 0) -> dict[str, dict[str, Any]]:
    """Aggregate per-seed metric dicts into mean ± std.

    Parameters
    ----------
    metric_dicts : iterable of mapping
        One dict per seed / run, e.g. outputs of :func:`compute_metrics`.
    ddof : int, default 0
        Delta degrees of freedom of the standard deviation. The default ``0`` (population std,
        ``numpy.std``'s default) is what most EEG foundation-model papers report as "mean ± std over
        seeds"; pass ``ddof=1`` for the unbiased sample std.

    Returns
    -------
    dict
        ``name -> {"mean": float, "std": float, "n": int, "values": list[float]}`` for every key whose
        value is a real scalar in at least one dict, in first-seen order. Non-scalar entries (the
        confusion matrix) are skipped. ``values`` lists one entry per input dict, ``nan`` where the
        metric was missing or undefined; ``mean``/``std`` are computed over the finite values only and
        ``n`` counts them. With ``n == 0`` mean and std are ``nan``; with ``n <= ddof`` std is ``nan``.

    Warns
    -----
    UndefinedMetricWarning
        When non-finite values were left out of a mean.
    """
    if isinstance(ddof, bool) or not isinstance(ddof, numbers.Integral) or ddof < 0:
        raise ValueError(f"ddof must be a non-negative integer, got {ddof!r}")
    dicts = list(metric_dicts)
    names: list[str] = []
    for d in dicts:
        for k, v in d.items():
            if k not in names and _is_scalar_number(v):
                names.append(k)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        values: list[float] = []
        for d in dicts:
            v = d.get(name, float("nan"))
            values.append(float(v) if _is_scalar_number(v) else float("nan"))
        arr = np.asarray(values, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        if finite.size < arr.size:
            warnings.warn(
                f"{name}: {arr.size - finite.size} of {arr.size} values are missing or non-finite and "
                "were left out of the mean",
                UndefinedMetricWarning,
                stacklevel=2,
            )
        mean = float(finite.mean()) if finite.size else float("nan")
        std = float(finite.std(ddof=ddof)) if finite.size > ddof else float("nan")
        out[name] = {"mean": mean, "std": std, "n": int(finite.size), "values": values}
    return out


def _ordered_metric_names(names: Sequence[str]) -> list[str]:
    """Order metric names: the paper's metrics first, then accuracy, then the rest as given."""
    order = list(dict.fromkeys([*BINARY_METRICS, *MULTICLASS_METRICS, "accuracy"]))
    known = [n for n in order if n in names]
    return known + [n for n in names if n not in known]


def collapse_warning(predicted: Any, class_names: Sequence[str], *, threshold: float = 0.95) -> str | None:
    """A warning when the predictions (class indices) fall on one class for at least ``threshold`` of the
    windows — a model that learned the prior, not the task — else ``None``."""
    pred = np.asarray(_to_numpy(predicted)).astype(int).ravel()
    if pred.size == 0:
        return None
    counts = np.bincount(pred, minlength=len(class_names))
    top = int(counts.argmax())
    share = counts[top] / pred.size
    if share >= threshold:
        return (f"the model predicts '{class_names[top]}' for {100 * share:.0f} % of the {pred.size} windows: it "
                "has collapsed to one class (try more epochs or steps, a higher learning rate, or check the labels)")
    return None


def _bacc(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    recalls = [float((pred[y == c] == c).mean()) for c in range(n_classes) if (y == c).any()]
    return float(np.mean(recalls)) if recalls else math.nan


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary AUROC by the Mann-Whitney rank statistic (ties get average ranks), as scikit-learn's."""
    from scipy.stats import rankdata

    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_subjects(labels: Any, probs_per_seed: Sequence[Any], subjects: Any, *, n_classes: int,
                       n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Percentile confidence intervals of the seed-mean balanced accuracy (and, for two classes, AUROC) by
    resampling *subjects* with replacement: windows of one subject are not independent, so resampling windows
    would give intervals that are far too narrow.

    Returns ``{metric: {"low", "high", "level", "n_boot", "n_subjects", "unit": "subject"}}``; empty with fewer
    than two subjects.
    """
    y = _to_numpy(labels).astype(np.int64)
    subj = np.asarray(subjects).astype(str)
    probs = [_to_numpy(p) for p in probs_per_seed]
    uniq = np.unique(subj)
    if len(uniq) < 2 or not probs:
        return {}
    rows = [np.flatnonzero(subj == s) for s in uniq]
    preds = [p.argmax(1) for p in probs]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"balanced_accuracy": []}
    if n_classes == 2:
        draws["auroc"] = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rows[k] for k in rng.integers(0, len(uniq), len(uniq))])
        yb = y[idx]
        draws["balanced_accuracy"].append(float(np.nanmean([_bacc(yb, pr[idx], n_classes) for pr in preds])))
        if n_classes == 2:
            draws["auroc"].append(float(np.nanmean([_auroc(yb, p[idx, 1]) for p in probs])))
    alpha = (1 - level) / 2
    out = {}
    for name, vals in draws.items():
        v = np.asarray(vals, float)
        v = v[np.isfinite(v)]
        if len(v):
            out[name] = {"low": float(np.quantile(v, alpha)), "high": float(np.quantile(v, 1 - alpha)),
                         "level": level, "n_boot": int(n_boot), "n_subjects": int(len(uniq)), "unit": "subject"}
    return out
