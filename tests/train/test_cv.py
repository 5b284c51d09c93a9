"""`neuript finetune --cv`: one fine-tuning per fold and seed, held-out subjects, summary over folds and seeds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from neuript.train.finetune import FinetuneConfig, finetune


def _cfg(stores, tiny_overrides, out: Path, **kw) -> FinetuneConfig:
    args = dict(stores=[str(stores["eegmat"])], out=str(out), preset="neuript_tiny", model_overrides=tiny_overrides,
                epochs=1, batch_size=16, lr=1e-3, seeds=[0], precision="fp32", max_train_batches=2, device="cpu",
                cv="kfold:2", cv_val_fraction=0.5)
    args.update(kw)
    return FinetuneConfig(**args)


@pytest.fixture(scope="module")
def cv_run(stores, tiny_overrides, tmp_path_factory) -> Path:
    return finetune(_cfg(stores, tiny_overrides, tmp_path_factory.mktemp("cv") / "run"))


def test_kfold_run_writes_folds_and_per_fold_results(cv_run):
    folds = json.loads((cv_run / "folds.json").read_text())
    assert folds["cv"] == "kfold:2" and len(folds["folds"]) == 2
    held = [s for f in folds["folds"] for s in f["test_subjects"]]
    assert sorted(held) == ["00", "01", "02", "28"]  # train + val subjects, each held out once
    for f in folds["folds"]:
        assert set(f["inner_val_subjects"]) <= set(f["train_subjects"])
        assert set(f["train_subjects"]).isdisjoint(f["test_subjects"])
        fdir = cv_run / f["name"]
        assert (fdir / "seed0" / "model" / "model.safetensors").is_file()
        report = json.loads((fdir / "report.json").read_text())
        assert report["split"] == "held-out" and sorted(report["per_subject"]) == f["test_subjects"]
        meta = json.loads((fdir / "seed0" / "model" / "neuript.json").read_text())
        assert meta["provenance"]["fold"]["test_subjects"] == f["test_subjects"]
    report = json.loads((cv_run / "report.json").read_text())
    assert set(report["per_seed"]) == {"fold-00/seed0", "fold-01/seed0"}
    assert report["aggregate"]["balanced_accuracy"]["n"] == 2
    assert sorted(report["per_subject"]) == ["00", "01", "02", "28"]
    assert report["pooled"]["aggregate"]["auroc"]["n"] == 1
    md = (cv_run / "report.md").read_text()
    assert "kfold:2, 2 folds" in md and "folds × seeds" in md and "Per fold and seed" in md


def test_rerun_skips_finished_folds_and_refuses_other_folds(cv_run, stores, tiny_overrides, monkeypatch):
    import neuript.inference.evaluate_run as evaluate_mod
    import neuript.train.finetune as finetune_mod

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    evaluated = []
    monkeypatch.setattr(finetune_mod, "_train_one_seed", no_training)
    monkeypatch.setattr(evaluate_mod, "evaluate_run", lambda run, **kw: evaluated.append(run))
    finetune(_cfg(stores, tiny_overrides, cv_run))
    assert evaluated == [cv_run]
    with pytest.raises(ValueError, match="other folds"):
        finetune(_cfg(stores, tiny_overrides, cv_run, cv="loso"))
    with pytest.raises(ValueError, match="cross-validation run"):
        finetune(_cfg(stores, tiny_overrides, cv_run, cv=None))


def test_evaluate_cli_reports_mean_std_over_folds_and_a_baseline_row(cv_run, stores, monkeypatch, capsys):
    from neuript import cli

    def main(*argv):
        monkeypatch.setattr(sys, "argv", ["neuript", *map(str, argv)])
        try:
            cli.main()
        except SystemExit as ex:  # typer exits 0 after a command that succeeded
            if ex.code:
                raise

    main("baseline", stores["eegmat"], "--method", "bandpower", "--cv", "kfold:2", "--cv-val-fraction", "0.5",
         "--out", cv_run)
    capsys.readouterr()
    main("evaluate", cv_run, "--device", "cpu")
    out = capsys.readouterr()
    assert "Mean ± std over folds × seeds" in out.err and "## Baselines" in out.err
    report = json.loads((cv_run / "report.json").read_text())
    (row,) = report["baselines"]
    assert row["label"] == "bandpower + LR" and row["aggregate"]["balanced_accuracy"]["n"] == 2
    # a fixed-split baseline does not match a cross-validated run
    main("baseline", stores["eegmat"], "--method", "bandpower", "--out", cv_run.parent / "fixed")
    with pytest.raises(SystemExit) as ex:
        main("evaluate", cv_run, "--baseline", cv_run.parent / "fixed" / "baseline-bandpower-none.json")
    assert ex.value.code == 1 and "fixed split" in capsys.readouterr().err


def test_bad_cv_is_refused_before_reading_data(tmp_path):
    with pytest.raises(ValueError, match="--cv must be"):
        finetune(FinetuneConfig(stores=[str(tmp_path / "missing")], out=str(tmp_path / "r"), cv="kfold:1",
                                device="cpu"))


def test_fixed_split_report_carries_a_matching_baseline_row(finetuned, stores, tmp_path):
    from neuript.evaluate.baseline_run import run_store_baseline
    from neuript.inference.evaluate_run import evaluate_run

    doc = run_store_baseline([str(stores["eegmat"])], method="bandpower", C=1e-3)
    path = _write(tmp_path / "baseline-bandpower-none.json", doc)
    res = evaluate_run(finetuned, device="cpu", baselines=[path])
    (row,) = res["baselines"]
    assert row["aggregate"]["balanced_accuracy"]["mean"] == doc["aggregate"]["balanced_accuracy"]["mean"]
    assert "| bandpower + LR | none, C 0.001 |" in (finetuned / "report.md").read_text()
    # refused before the evaluation
    cv_doc = {**doc, "cv": {"scheme": "loso", "folds": []}}
    with pytest.raises(ValueError, match="the run used the fixed split, the baseline loso cross-validation"):
        evaluate_run(finetuned, device="cpu", baselines=[_write(tmp_path / "b.json", cv_doc)])
    from neuript.evaluate.baseline_run import protocol_mismatch

    assert "'val' split, the baseline on 'train'" in protocol_mismatch({**doc, "split": "train"}, res)
    assert "other subjects" in protocol_mismatch({**doc, "evaluated_subjects": {"28": 1}}, res)


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, default=float).replace("NaN", "null"))
    return path
