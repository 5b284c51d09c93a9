"""``neuript finetune --train-crop``: random training crops, whole windows for evaluation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from neuript.runtime import OptionError
from neuript.train.finetune import FinetuneConfig, crop_length, finetune, random_crop


def test_crop_length_rounds_down_to_the_time_reduction():
    assert crop_length(None, sfreq=64, n_times=320, multiple=16) is None
    assert crop_length(2.5, sfreq=64, n_times=320, multiple=16) == 160
    assert crop_length(2.6, sfreq=64, n_times=320, multiple=16) == 160  # 166 samples -> 160
    for bad in (5.0, 6.0, 0.1):  # the whole window, longer, shorter than one merged token
        with pytest.raises(OptionError, match="--train-crop"):
            crop_length(bad, sfreq=64, n_times=320, multiple=16)


def test_random_crop_takes_contiguous_samples_at_per_window_offsets():
    n, c, t = 64, 3, 50
    x = torch.arange(t, dtype=torch.float32).expand(n, c, t) + 1000 * torch.arange(n)[:, None, None]
    out = random_crop(x, 10, generator=torch.Generator().manual_seed(0))
    assert out.shape == (n, c, 10)
    start = out[:, 0, 0] - 1000 * torch.arange(n)
    assert torch.equal(out, x.gather(2, (start.long()[:, None, None] + torch.arange(10)).expand(n, c, 10)))
    assert (start >= 0).all() and (start <= t - 10).all() and len(set(start.tolist())) > 5  # offsets vary


def test_finetune_with_crops_trains_and_evaluates_whole_windows(stores, tiny_overrides, tmp_path):
    out = tmp_path / "crop"
    cfg = FinetuneConfig(stores=[str(stores["eegmat"])], out=str(out), preset="neuript_tiny",
                         model_overrides=tiny_overrides, epochs=1, batch_size=8, lr=1e-3, seeds=[0],
                         precision="fp32", max_train_batches=2, device="cpu", train_crop_s=2.5)
    finetune(cfg)
    assert json.loads((out / "run.json").read_text())["config"]["train_crop_s"] == 2.5
    hist = pd.read_csv(out / "seed0" / "history.csv")
    assert len(hist) == 1 and hist["val_loss"].notna().all()
    report = json.loads((out / "report.json").read_text())
    n_val = json.loads((out / "run.json").read_text())["n_windows"]["val"]
    assert report["split"] == "val" and report["n_windows"] == n_val > 0  # every whole validation window


def test_cli_refuses_a_crop_as_long_as_the_window(stores, tmp_path):
    from neuript.train.finetune import FinetuneConfig

    cfg = FinetuneConfig(stores=[str(stores["eegmat"])], out=str(tmp_path / "r"), epochs=1, seeds=[0],
                         precision="fp32", device="cpu", train_crop_s=60.0, max_train_batches=1)
    with pytest.raises(OptionError, match="--train-crop 60 s"):
        finetune(cfg)
