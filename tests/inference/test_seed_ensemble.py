"""The seed ensemble of a fine-tuning run's report: the seeds' probabilities averaged per window, scored once."""
import json

import numpy as np
import pandas as pd
import pytest

from neuript.evaluate.metrics import compute_metrics
from neuript.inference.evaluate_run import seed_ensemble


def test_report_scores_the_mean_of_the_seeds_probabilities(finetuned):
    doc = json.loads((finetuned / "report.json").read_text())
    split = doc["split"]
    ens = doc["seed_ensemble"]
    assert ens["n_seeds"] == 2
    tables = [pd.read_csv(finetuned / f"seed{k}" / f"predictions_{split}.csv") for k in (0, 1)]
    label_names = json.loads((finetuned / "run.json").read_text())["label_names"]
    names = [f"prob_{label_names[str(i)]}" for i in range(len(label_names))]
    labels = tables[0]["label"].to_numpy()
    mean = np.mean([t[names].to_numpy() for t in tables], axis=0)
    expected = compute_metrics(labels, mean, n_classes=len(names))
    for key in ("balanced_accuracy", "auroc"):
        assert ens["metrics"][key] == pytest.approx(expected[key])
    assert set(ens["per_subject"]) == set(doc["per_subject"])
    md = (finetuned / "report.md").read_text()
    assert "## Seed ensemble" in md and "Ensemble of 2 seeds" in md


def test_averaging_fixes_windows_that_each_seed_gets_wrong():
    labels = np.array([0, 0, 1, 1])
    # each seed is confidently wrong on a different window, unsure-but-right elsewhere
    a = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.45, 0.55]])
    b = np.array([[0.45, 0.55], [0.8, 0.2], [0.6, 0.4], [0.1, 0.9]])
    subjects = np.array(["s1", "s1", "s2", "s2"])
    alone = [compute_metrics(labels, p, n_classes=2)["balanced_accuracy"] for p in (a, b)]
    ens = seed_ensemble(labels, [a, b], subjects, n_classes=2)
    assert max(alone) == pytest.approx(0.75)
    assert ens["metrics"]["balanced_accuracy"] == pytest.approx(1.0)
    assert ens["n_seeds"] == 2 and set(ens["per_subject"]) == {"s1", "s2"}
    assert ens["per_subject"]["s1"]["n_windows"] == 2


def test_one_seed_is_not_an_ensemble():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_ensemble(np.array([0, 1]), [np.array([[0.6, 0.4], [0.3, 0.7]])], np.array(["s", "s"]), n_classes=2)
