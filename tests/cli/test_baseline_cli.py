"""`neuript baseline STORE`: the classical baselines through the fixed split or the folds, as run_baseline scores them."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from neuript.data.store import WindowStore
from neuript.evaluate.baselines import run_baseline


def _main(monkeypatch, *argv):
    from neuript import cli

    monkeypatch.setattr(sys, "argv", ["neuript", *map(str, argv)])
    try:
        cli.main()
    except SystemExit as ex:  # typer exits 0 after a command that succeeded
        if ex.code:
            raise


def _split(store: WindowStore, split: str):
    w = store.windows
    idx = np.flatnonzero(w["split"].to_numpy() == split)
    return store.read(idx), w["label"].to_numpy()[idx], w["subject"].astype(str).to_numpy()[idx]


def test_fixed_split_matches_run_baseline(stores, tmp_path, monkeypatch, capsys):
    _main(monkeypatch, "baseline", stores["eegmat"], "--method", "bandpower", "--align", "features", "--C", "1e-3",
          "--out", tmp_path)
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "baseline-bandpower-features.json").read_text())

    st = WindowStore.open(stores["eegmat"])
    x_tr, y_tr, g_tr = _split(st, "train")
    x_te, y_te, g_te = _split(st, "val")  # the tiny store has no test subjects: scored on val, as evaluate does
    direct = run_baseline("bandpower", x_tr, y_tr, x_te, y_te, sfreq=st.sfreq, n_classes=2, groups_train=g_tr,
                          groups_test=g_te, align="features", C=1e-3)
    assert doc["split"] == "val" and "VALIDATION" in doc["note"]
    assert doc["C_chosen"] == direct["provenance"]["C"] == 1e-3
    for name in ("balanced_accuracy", "auc_pr", "auroc"):
        assert doc["aggregate"][name]["mean"] == pytest.approx(direct["aggregate"][name]["mean"], abs=1e-12)
    assert list(doc["per_subject"]) == ["28"] and doc["evaluated_subjects"] == {"28": len(y_te)}
    bacc = f"{100 * direct['aggregate']['balanced_accuracy']['mean']:.1f}"
    assert "| all | " + bacc in printed and "| 28 | " in printed


def test_cv_folds_match_run_baseline_per_fold(stores, tmp_path, monkeypatch, capsys):
    _main(monkeypatch, "baseline", stores["eegmat"], "--method", "riemann", "--align", "euclidean", "--C", "0.01",
          "--cv", "loso", "--out", tmp_path)
    printed = capsys.readouterr().out
    doc = json.loads((tmp_path / "baseline-riemann-euclidean.json").read_text())
    assert [f["test_subjects"] for f in doc["cv"]["folds"]] == [["00"], ["01"], ["02"], ["28"]]
    assert "fold-03" in printed

    st = WindowStore.open(stores["eegmat"])
    w = st.windows
    subjects = w["subject"].astype(str).to_numpy()
    x, y = st.read(np.arange(len(w))), w["label"].to_numpy()
    fold = doc["cv"]["folds"][1]
    tr, te = np.isin(subjects, fold["train_subjects"]), np.isin(subjects, fold["test_subjects"])
    direct = run_baseline("riemann", x[tr], y[tr], x[te], y[te], sfreq=st.sfreq, n_classes=2,
                          groups_train=subjects[tr], groups_test=subjects[te], align="euclidean", C=0.01)
    got = doc["per_seed"]["fold-01/seed0"]
    for name in ("balanced_accuracy", "auroc"):
        assert got[name] == pytest.approx(direct["per_seed"][0][name], abs=1e-12)


def test_user_errors_are_one_line(stores, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NEURIPT_DEBUG", raising=False)
    for argv, message in ((("--method", "svm"), "--method must be one of"),
                          (("--cv", "kfold:9"), "at least 9 subjects"),
                          (("--align", "whiten"), "--align must be one of")):
        with pytest.raises(SystemExit) as ex:
            _main(monkeypatch, "baseline", stores["eegmat"], *argv, "--out", tmp_path)
        err = capsys.readouterr().err
        assert ex.value.code == 1 and message in err and "Traceback" not in err
