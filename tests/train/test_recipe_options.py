"""``neuript finetune --preemphasis --pool meanstd --feature-norm subject``: trained, recorded, reapplied."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuript.runtime import OptionError
from neuript.train.finetune import FinetuneConfig, accumulate_gradients, finetune


@pytest.fixture(scope="module")
def recipe_run(stores, tiny_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe") / "run"
    cfg = FinetuneConfig(stores=[str(stores["eegmat"])], out=str(out), preset="neuript_tiny",
                         model_overrides=tiny_overrides, epochs=2, batch_size=8, lr=1e-3, seeds=[0],
                         precision="fp32", max_train_batches=3, device="cpu", train_crop_s=2.5,
                         preemphasis=0.9, pool="meanstd", feature_norm="subject", feature_norm_windows=6)
    return finetune(cfg)


def test_the_model_records_what_prediction_must_reapply(recipe_run):
    meta = json.loads((recipe_run / "seed0" / "model" / "neuript.json").read_text())
    t = meta["input_transform"]
    assert t["preemphasis"] == 0.9 and t["preemphasis_gain"] > 1.0 and t["feature_norm"] == "subject"
    assert json.loads((recipe_run / "seed0" / "model" / "config.json").read_text())["pool"] == "meanstd"
    report = json.loads((recipe_run / "report.json").read_text())
    assert "feature normalisation" in report["protocol"] and report["feature_norm"] == "subject"
    assert report["preemphasis"] == 0.9


def test_evaluation_reproduces_the_validation_score_of_training(recipe_run):
    """The evaluation rebuilds the data (pre-emphasis with the recorded gain, per-subject statistics of the
    validation subject): it must give the balanced accuracy training chose its epoch by."""
    report = json.loads((recipe_run / "report.json").read_text())
    meta = json.loads((recipe_run / "seed0" / "model" / "neuript.json").read_text())
    assert report["per_seed"]["seed0"]["balanced_accuracy"] == pytest.approx(
        meta["metrics"]["best_val_balanced_accuracy"], abs=1e-9)


def test_predict_applies_the_recipe_to_a_recording(recipe_run, eegmat_dir):
    from neuript.data.preprocess import alaw, preemphasis
    from neuript.inference.artifacts import input_feature_norm, input_transform, load_classifier
    from neuript.inference.predict import predict

    model, meta = load_classifier(recipe_run / "seed0" / "model")
    assert input_feature_norm(meta) == "subject"
    x = np.random.default_rng(0).standard_normal((2, 20, 320)) * 20
    gain = meta["input_transform"]["preemphasis_gain"]
    assert np.allclose(input_transform(meta)(x), alaw(preemphasis(x, 0.9, gain)))
    table = predict(recipe_run, eegmat_dir / "Subject28_2.edf", device="cpu")
    assert len(table) > 5 and table.filter(like="prob_").notna().all().all()
    # one recording is one group: its standardised features, then the head
    assert table["prob_task"].std() > 0


def test_a_stream_and_an_export_refuse_a_feature_norm_model(recipe_run):
    from neuript.inference.artifacts import load_classifier
    from neuript.inference.export import ExportableClassifier
    from neuript.inference.streaming import StreamingPredictor

    model, _ = load_classifier(recipe_run / "seed0" / "model")
    with pytest.raises(ValueError, match="--feature-norm subject"):
        StreamingPredictor(recipe_run / "seed0" / "model", ch_names=model.ch_names, sfreq=64.0)
    with pytest.raises(ValueError, match="--feature-norm subject"):
        ExportableClassifier(model)


def test_micro_batches_split_the_feature_stats_with_the_batch(tiny_overrides):
    from neuript.model import NeurIPT
    from neuript.train.finetune import BalancedLoss

    names = ["Fp1", "Fp2", "C3", "C4"]
    torch.manual_seed(0)
    model = NeurIPT(n_outputs=1, ch_names=names, n_times=64, sfreq=64.0, dropout=0.0, gate_noise=0.0,
                    **tiny_overrides)
    x, y = torch.randn(6, 4, 64), torch.tensor([0, 1, 0, 1, 1, 0])
    n_feat = model.final_layer.linear.in_features
    stats = (torch.randn(6, n_feat), torch.rand(6, n_feat) + 0.5)
    loss_fn = BalancedLoss(np.array([0.5, 0.5]), binary=True)
    grads = []
    for micro in (6, 2):
        model.zero_grad()
        accumulate_gradients(model, loss_fn, x, y, micro_batch_size=micro, aux_weight=0.0, device=torch.device("cpu"),
                             precision="fp32", feature_stats=stats)
        grads.append(model.final_layer.linear.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
    model.zero_grad()
    accumulate_gradients(model, loss_fn, x, y, micro_batch_size=6, aux_weight=0.0, device=torch.device("cpu"),
                         precision="fp32")
    assert not torch.allclose(model.final_layer.linear.weight.grad, grads[0])  # the stats were used


@pytest.mark.parametrize("field,value,match", [("feature_norm", "session", "--feature-norm"),
                                               ("pool", "max", "--pool"), ("preemphasis", 2.0, "--preemphasis")])
def test_bad_recipe_options_are_refused_before_training(stores, tmp_path, field, value, match):
    cfg = FinetuneConfig(stores=[str(stores["eegmat"])], out=str(tmp_path / "r"), epochs=1, seeds=[0],
                         precision="fp32", device="cpu", max_train_batches=1, **{field: value})
    with pytest.raises((OptionError, ValueError), match=match):
        finetune(cfg)
    assert not (tmp_path / "r" / "seed0").exists()
