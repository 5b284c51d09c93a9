"""Metrics against hand-computed examples, degenerate inputs and seed aggregation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from neuript.evaluate.metrics import (
    BINARY_METRICS,
    MULTICLASS_METRICS,
    UndefinedMetricWarning,
    aggregate,
    compute_metrics,
    paper_metrics,
    primary_metric,
)


def _from_confusion(cm: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and one-hot 'probabilities' that reproduce the confusion matrix ``cm`` exactly."""
    k = len(cm)
    y, p = [], []
    for i in range(k):
        for j in range(k):
            y += [i] * cm[i][j]
            p += [j] * cm[i][j]
    return np.asarray(y), np.eye(k)[p]


def test_binary_balanced_accuracy_of_known_confusion_matrix():
    cm = [[8, 2], [3, 7]]  # recalls 0.8 and 0.7
    y, s = _from_confusion(cm)
    m = compute_metrics(y, s, n_classes=2)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(15 / 20)
    assert m["confusion_matrix"] == cm
    assert m["n_samples"] == 20
    assert set(BINARY_METRICS) <= set(m)


def test_binary_auroc_and_average_precision_by_hand():
    # ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): 3 of 4 pos/neg pairs ordered -> AUROC 0.75
    # AP = 0.5 * precision@1 + 0.5 * precision@3 = 0.5 * 1 + 0.5 * 2/3
    m = compute_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_classes=2)
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auc_pr"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(0.75)  # predictions 0,0,0,1


def test_perfect_separation_gives_auroc_one_and_reversed_gives_zero():
    y = np.array([0] * 10 + [1] * 5)
    s = np.concatenate([np.linspace(0.0, 0.4, 10), np.linspace(0.6, 1.0, 5)])
    m = compute_metrics(y, s, n_classes=2)
    assert m["auroc"] == 1.0 and m["auc_pr"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert compute_metrics(y, 1 - s, n_classes=2)["auroc"] == 0.0


def test_binary_score_shapes_are_equivalent():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = rng.random(50)
    a = compute_metrics(y, p, n_classes=2)
    b = compute_metrics(y, p[:, None], n_classes=2)
    c = compute_metrics(y, np.stack([1 - p, p], axis=1), n_classes=2)
    assert a == b == c


def test_binary_threshold_tie_goes_to_class_zero_like_argmax():
    m = compute_metrics([0, 1], [[0.5, 0.5], [0.5, 0.5]], n_classes=2)
    assert m["confusion_matrix"] == [[1, 0], [1, 0]]
    m = compute_metrics([0, 1], [0.2, 0.3], n_classes=2, threshold=0.25)
    assert m["balanced_accuracy"] == 1.0


def test_multiclass_kappa_and_weighted_f1_by_hand():
    cm = [[4, 1, 0], [1, 3, 1], [0, 1, 4]]
    # p_o = 11/15, p_e = 3 * (5*5) / 15^2 = 1/3  ->  kappa = (11/15 - 1/3) / (2/3) = 0.6
    # per-class F1 = 0.8, 0.6, 0.8 with equal support -> weighted F1 = 2.2 / 3
    y, s = _from_confusion(cm)
    m = compute_metrics(y, s, n_classes=3)
    assert m["cohen_kappa"] == pytest.approx(0.6)
    assert m["f1_weighted"] == pytest.approx(2.2 / 3)
    assert m["balanced_accuracy"] == pytest.approx((0.8 + 0.6 + 0.8) / 3)
    assert m["confusion_matrix"] == cm
    assert set(MULTICLASS_METRICS) <= set(m) and "auroc" not in m


def test_weighted_f1_weights_by_support():
    # F1 per class: 2*8/(16+1+2) = 16/19, 2*1/(2+2+1) = 2/5, 1; supports 10, 2, 3 (macro would be 0.747)
    y, s = _from_confusion([[8, 2, 0], [1, 1, 0], [0, 0, 3]])
    expected = (10 * 16 / 19 + 2 * 2 / 5 + 3 * 1.0) / 15
    assert compute_metrics(y, s, n_classes=3)["f1_weighted"] == pytest.approx(expected)


def test_multiclass_balanced_accuracy_of_known_confusion_matrix():
    y, s = _from_confusion([[5, 0, 0, 0], [2, 3, 0, 0], [1, 1, 8, 0], [0, 0, 0, 4]])
    assert compute_metrics(y, s, n_classes=4)["balanced_accuracy"] == pytest.approx((1 + 0.6 + 0.8 + 1) / 4)


def test_kappa_of_chance_predictions_is_near_zero():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, 20000)
    s = rng.dirichlet(np.ones(5), 20000)  # independent of y
    m = compute_metrics(y, s, n_classes=5)
    assert abs(m["cohen_kappa"]) < 0.03
    assert m["balanced_accuracy"] == pytest.approx(0.2, abs=0.02)


def test_single_class_gives_nan_with_warning_not_crash():
    with pytest.warns(UndefinedMetricWarning, match="is undefined"):
        m = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9], n_classes=2)
    assert math.isnan(m["auroc"]) and math.isnan(m["auc_pr"])
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[0, 0], [1, 2]]


def test_constant_labels_and_predictions_give_nan_kappa_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="cohen_kappa"):
        m = compute_metrics([2, 2], [[0, 0, 1], [0.1, 0.1, 0.8]], n_classes=3)
    assert math.isnan(m["cohen_kappa"])
    assert m["accuracy"] == 1.0


def test_well_defined_input_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_metrics([0, 1, 2, 1], np.eye(3)[[0, 1, 2, 2]], n_classes=3)
        compute_metrics([0, 1, 1, 0], [0.1, 0.9, 0.4, 0.3], n_classes=2)


def test_rounding_error_in_probabilities_is_tolerated():
    m = compute_metrics([0, 1], [[1.0 + 1e-7, -1e-7], [0.0, 1.0]], n_classes=2)
    assert m["auroc"] == 1.0 and m["balanced_accuracy"] == 1.0


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    y = torch.tensor([0, 1, 1, 0])
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]], requires_grad=True)
    assert compute_metrics(y, p, n_classes=2)["auroc"] == 1.0
    assert compute_metrics(y, p.to(torch.bfloat16), n_classes=2)["auroc"] == 1.0  # autocast outputs


@pytest.mark.parametrize(
    ("y", "s", "k", "match"),
    [
        ([0, 1, 2], np.eye(3), 2, "y_true must be in"),
        ([0, -1], [0.1, 0.2], 2, "y_true must be in"),
        ([0, 1], [0.1, 0.2, 0.3], 2, "rows"),
        ([0, 1], np.ones((2, 3)) / 3, 2, "binary scores"),
        ([0, 1, 2], np.ones((3, 2)) / 2, 3, r"shape \(n, 3\)"),
        ([0, 1], [0.1, np.nan], 2, "nan"),
        ([0, 0], [0.1, 0.2], 1, "n_classes"),
        ([0.5, 1.0], [0.1, 0.2], 2, "integer"),
        ([], [], 2, "empty"),
        ([1], 0.5, 2, "scalar"),
        ([0, 1], [-2.0, 3.0], 2, "probabilities"),  # logits, not probabilities
        ([0, 1, 2], [[2.0, 0.1, -1.0]] * 3, 3, "softmax"),
    ],
)
def test_invalid_input_raises(y, s, k, match):
    with pytest.raises(ValueError, match=match):
        compute_metrics(y, s, n_classes=k)


def test_primary_metric_and_paper_metrics():
    assert primary_metric("binary") == "balanced_accuracy"
    assert primary_metric("multiclass") == "balanced_accuracy"
    assert primary_metric(5) == "balanced_accuracy"
    assert paper_metrics(2) == ("balanced_accuracy", "auc_pr", "auroc")
    assert paper_metrics("multi-class") == ("balanced_accuracy", "cohen_kappa", "f1_weighted")
    with pytest.raises(ValueError):
        primary_metric("regression")
    with pytest.raises(ValueError):
        primary_metric(1)


def test_aggregate_mean_std_population_by_default():
    runs = [{"balanced_accuracy": v, "confusion_matrix": [[1]]} for v in (0.7, 0.8, 0.9)]
    agg = aggregate(runs)
    assert set(agg) == {"balanced_accuracy"}  # non-scalars skipped
    a = agg["balanced_accuracy"]
    assert a["mean"] == pytest.approx(0.8)
    assert a["std"] == pytest.approx(math.sqrt(0.02 / 3))  # ddof = 0
    assert a["n"] == 3 and a["values"] == pytest.approx([0.7, 0.8, 0.9])
    assert aggregate(runs, ddof=1)["balanced_accuracy"]["std"] == pytest.approx(0.1)


def test_aggregate_skips_nan_and_missing_with_warning():
    runs = [{"auroc": 0.6, "x": 1}, {"auroc": float("nan")}, {"auroc": 0.8, "x": 3}]
    with pytest.warns(UndefinedMetricWarning):
        agg = aggregate(runs)
    assert agg["auroc"]["mean"] == pytest.approx(0.7) and agg["auroc"]["n"] == 2
    assert math.isnan(agg["auroc"]["values"][1])
    assert agg["x"]["n"] == 2 and agg["x"]["mean"] == pytest.approx(2.0)


def test_aggregate_single_run_and_all_nan():
    assert aggregate([{"a": 0.5}])["a"] == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}
    with pytest.warns(UndefinedMetricWarning):
        agg = aggregate([{"a": float("nan")}, {"a": float("nan")}])
    assert math.isnan(agg["a"]["mean"]) and math.isnan(agg["a"]["std"]) and agg["a"]["n"] == 0
    assert math.isnan(aggregate([{"a": 0.5}], ddof=1)["a"]["std"])
    assert aggregate([]) == {}


def test_bootstrap_over_subjects_matches_sklearn_and_brackets_the_estimate():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from neuript.evaluate.metrics import _auroc, _bacc, bootstrap_subjects

    rng = np.random.default_rng(0)
    n_subj, per = 8, 40
    subjects = np.repeat([f"s{k}" for k in range(n_subj)], per)
    labels = np.tile(np.r_[np.zeros(30, int), np.ones(10, int)], n_subj)
    # subject-specific offsets: windows of one subject are correlated
    offset = np.repeat(rng.normal(0, 1.0, n_subj), per)
    score = labels * 1.0 + offset + rng.normal(0, 0.7, len(labels))
    p1 = 1 / (1 + np.exp(-score))
    probs = np.stack([1 - p1, p1], 1)
    assert abs(_bacc(labels, probs.argmax(1), 2) - balanced_accuracy_score(labels, probs.argmax(1))) < 1e-12
    assert abs(_auroc(labels, p1) - roc_auc_score(labels, p1)) < 1e-12
    ci = bootstrap_subjects(labels, [probs], subjects, n_classes=2, n_boot=400, seed=1)
    est = roc_auc_score(labels, p1)
    assert ci["auroc"]["low"] < est < ci["auroc"]["high"]
    assert ci["auroc"]["unit"] == "subject" and ci["auroc"]["n_subjects"] == n_subj
    # resampling subjects is wider than resampling windows would be (the point of doing it)
    win = []
    for _ in range(400):
        i = rng.integers(0, len(labels), len(labels))
        win.append(roc_auc_score(labels[i], p1[i]))
    assert ci["auroc"]["high"] - ci["auroc"]["low"] > np.quantile(win, 0.975) - np.quantile(win, 0.025)
    assert bootstrap_subjects(labels, [probs], np.zeros(len(labels)), n_classes=2) == {}
