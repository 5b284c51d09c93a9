"""What every fine-tuning run writes to diagnose it: learning curves, per-subject results, collapse warnings;
the width-dependent default learning rate; continued pretraining from an earlier run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuript.evaluate.metrics import collapse_warning


def test_history_learning_curves_and_per_subject_results(finetuned):
    hist = pd.read_csv(finetuned / "seed0" / "history.csv")
    assert list(hist["epoch"]) == [0, 1]
    for col in ("train_loss", "val_loss", "train_balanced_accuracy", "val_balanced_accuracy", "lr", "val_collapsed"):
        assert col in hist.columns and hist[col].notna().all(), col
    assert ((hist["train_balanced_accuracy"] >= 0) & (hist["train_balanced_accuracy"] <= 1)).all()
    assert (finetuned / "learning_curves.png").stat().st_size > 5000
    report = json.loads((finetuned / "report.json").read_text())
    assert set(report["per_subject"]) == {"28"} and report["n_subjects"] == 1
    assert report["per_subject"]["28"]["n_windows"]["mean"] == report["n_windows"]
    assert report["protocol"].startswith("paper protocol")
    md = (finetuned / "report.md").read_text()
    assert "## Per subject" in md and "**Protocol:**" in md
    # a collapsed seed is reported as a warning, not silently
    for seed, rows in report["per_seed"].items():
        pred = pd.read_csv(finetuned / seed / "predictions_val.csv")["predicted"]
        if pred.nunique() == 1:
            assert any(w.startswith(seed) and "collapsed" in w for w in report["warnings"])


def test_collapse_warning():
    assert collapse_warning(np.zeros(40, int), ["rest", "task"]).startswith("the model predicts 'rest' for 100 %")
    assert collapse_warning(np.r_[np.zeros(30, int), np.ones(10, int)], ["rest", "task"]) is None


def test_default_learning_rate_follows_width():
    from neuript.train.finetune import default_lr

    assert default_lr(32) == 1e-3 and default_lr(256) == 3e-4 and default_lr(768) == 1e-4


def test_continued_pretraining_from_a_run_never_reads_heldout_recordings(stores, pretrained, tmp_path, monkeypatch):
    from neuript.data.loader import WindowDataset
    from neuript.inference.artifacts import load_pretrained
    from neuript.train.pretrain import PretrainConfig, pretrain

    asked = []
    original = WindowDataset.__init__

    def spy(self, stores_, split=None, *args, **kwargs):
        asked.append(split)
        original(self, stores_, split, *args, **kwargs)

    monkeypatch.setattr(WindowDataset, "__init__", spy)
    out = pretrain(PretrainConfig(stores=[str(stores["eegmat"])], split="train", init=str(pretrained),
                                  out=str(tmp_path / "cont"), epochs=1, max_steps=2, batch_size=8, lr=1e-4,
                                  precision="fp32", plot=False, device="cpu", model_overrides={"dropout": 0.0}))
    before, after = load_pretrained(pretrained), load_pretrained(out)
    assert after.encoder.cfg.dropout == 0.0 != before.encoder.cfg.dropout  # the dropout override is applied
    shape = {k: v for k, v in before.encoder.cfg.to_dict().items() if k != "dropout"}
    assert shape == {k: v for k, v in after.encoder.cfg.to_dict().items() if k != "dropout"}
    moved = [k for k, v in before.state_dict().items() if not np.allclose(v.numpy(), after.state_dict()[k].numpy())]
    assert moved  # it trained from the earlier weights (same shapes), and changed them
    meta = json.loads((out / "model" / "neuript.json").read_text())
    assert meta["provenance"]["config"]["init"] == str(pretrained)
    # only the training split was opened (subjects 00-02); the validation subject 28 never
    assert asked and all(a == ["train"] for a in asked), asked
    with pytest.raises(ValueError, match="cannot change it"):
        pretrain(PretrainConfig(stores=[str(stores["eegmat"])], split="train", init=str(pretrained),
                                model_overrides={"d_model": 64}, out=str(tmp_path / "bad"), max_steps=1,
                                batch_size=8, device="cpu"))
