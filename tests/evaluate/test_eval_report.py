"""report.json / report.md: existence, strict JSON, NaN -> null, percent table, atomic replacement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from neuript.evaluate.metrics import aggregate, compute_metrics
from neuript.evaluate.report import to_jsonable, write_report


def _strict_load(path: Path):
    def _bad(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_bad)


def _results():
    per_seed = {
        0: {"balanced_accuracy": 0.80, "auc_pr": 0.70, "auroc": 0.90, "confusion_matrix": [[4, 1], [1, 4]]},
        1: {"balanced_accuracy": 0.90, "auc_pr": float("nan"), "auroc": 0.95, "confusion_matrix": [[5, 0], [1, 4]]},
    }
    return {
        "dataset": "eegmat",
        "model": "neuript_tiny",
        "per_seed": per_seed,
        "provenance": {
            "config": {"lr": 1e-4, "path": Path("/data/eegmat"), "bands": (1, 2)},
            "versions": {"numpy": np.__version__},
            "data_fingerprint": "sha256:abc",
            "seeds": np.array([0, 1]),
            "inf": float("inf"),
        },
    }


def test_report_files_exist_parse_and_are_nan_safe(tmp_path):
    with pytest.warns(UserWarning):  # auc_pr nan left out of the mean
        json_path, md_path = write_report(_results(), tmp_path / "out", title="EEGMAT rest vs task")
    assert json_path == tmp_path / "out" / "report.json" and md_path == tmp_path / "out" / "report.md"
    doc = _strict_load(json_path)
    assert doc["title"] == "EEGMAT rest vs task"
    assert doc["task"] == "binary"
    assert doc["per_seed"]["1"]["auc_pr"] is None
    assert doc["provenance"]["inf"] is None
    assert doc["provenance"]["seeds"] == [0, 1]
    assert doc["provenance"]["config"]["path"] == "/data/eegmat"
    agg = doc["aggregate"]
    assert agg["balanced_accuracy"]["mean"] == pytest.approx(0.85)
    assert agg["balanced_accuracy"]["std"] == pytest.approx(0.05)
    assert agg["auc_pr"]["n"] == 1 and agg["auc_pr"]["values"] == [0.7, None]

    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# EEGMAT rest vs task")
    assert "| Balanced accuracy | 85.00 ± 5.00 | 2 |" in md
    assert "| AUC-PR | 70.00 ± — | 1 |" in md  # one defined value: no spread to report
    assert "| AUROC | 92.50 ± 2.50 | 2 |" in md
    assert "n/a" in md  # the nan per-seed AUC-PR
    assert "sha256:abc" in md
    assert "Paper" not in md


def test_report_with_paper_reference_and_given_aggregate(tmp_path):
    y = [0, 0, 1, 1]
    per_seed = [
        {"seed": 7, **compute_metrics(y, [0.1, 0.2, 0.8, 0.9], n_classes=2)},
        {"seed": 8, **compute_metrics(y, [0.1, 0.6, 0.4, 0.9], n_classes=2)},
    ]
    results = {"per_seed": per_seed, "aggregate": aggregate(per_seed), "provenance": {"seeds": [7, 8]},
               "split": "val", "note": "validation metrics | optimistic"}
    paper = {"balanced_accuracy": 86.46, "auc_pr": (78.27, 1.5), "auroc": {"mean": 91.11, "std": None}}
    json_path, md_path = write_report(results, tmp_path, title="t", paper_reference=paper, paper_label="NeurIPT")
    md = md_path.read_text(encoding="utf-8")
    assert "| Metric | This run | n | NeurIPT |" in md
    assert "| Balanced accuracy | 75.00 ± 25.00 | 2 | 86.46 |" in md
    assert "78.27 ± 1.50" in md and "| 91.11 |" in md
    assert "| 7 |" in md and "| 8 |" in md
    assert "**Split:** val" in md and "> **Note:** validation metrics \\| optimistic" in md
    doc = _strict_load(json_path)
    assert doc["paper_reference"]["metrics_percent"]["balanced_accuracy"] == 86.46
    assert sorted(doc["per_seed"][0]) == sorted(per_seed[0])  # list layout kept, seed included


def test_report_overwrites_atomically_without_leftovers(tmp_path):
    r = {"per_seed": {0: {"balanced_accuracy": 0.5, "cohen_kappa": 0.1, "f1_weighted": 0.4}}}
    write_report(r, tmp_path, title="first")
    r["per_seed"][0]["balanced_accuracy"] = 0.6
    json_path, md_path = write_report(r, tmp_path, title="second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]
    doc = _strict_load(json_path)
    assert doc["title"] == "second" and doc["task"] == "multiclass"
    assert doc["aggregate"]["balanced_accuracy"]["mean"] == 0.6
    assert "Cohen's kappa" in md_path.read_text()


def test_unwritable_directory_leaves_previous_report(tmp_path, monkeypatch):
    write_report({"per_seed": {0: {"balanced_accuracy": 0.5}}}, tmp_path, title="ok")
    before = (tmp_path / "report.json").read_text()
    import neuript._atomic as io_mod

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report({"per_seed": {0: {"balanced_accuracy": 0.9}}}, tmp_path, title="broken")
    assert (tmp_path / "report.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_to_jsonable_handles_numpy_and_odd_objects():
    class Odd:
        def __str__(self):
            return "odd!"

    out = to_jsonable(
        {1: np.float32(0.5), "n": np.int64(3), "b": np.bool_(True), "nan": np.nan, "s": {2, 1}, "o": Odd()}
    )
    assert out == {"1": 0.5, "n": 3, "b": True, "nan": None, "s": [1, 2], "o": "odd!"}
    json.dumps(out, allow_nan=False)


def test_results_must_be_mapping(tmp_path):
    with pytest.raises(TypeError):
        write_report([1, 2], tmp_path, title="x")


def test_bootstrap_interval_is_a_column(tmp_path):
    r = {"per_seed": {0: {"balanced_accuracy": 0.71, "auroc": 0.80}, 1: {"balanced_accuracy": 0.69, "auroc": 0.78}},
         "bootstrap": {"balanced_accuracy": {"low": 0.61, "high": 0.79, "level": 0.95, "n_boot": 1000,
                                             "n_subjects": 4, "unit": "subject"}}}
    _, md_path = write_report(r, tmp_path, title="t")
    md = md_path.read_text()
    assert "bootstrap resamples of the 4 subjects" in md
    row = next(line for line in md.splitlines() if line.startswith("| Balanced accuracy"))
    assert "[61.00, 79.00]" in row
