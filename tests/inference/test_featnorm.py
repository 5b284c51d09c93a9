"""Per-subject feature normalisation (:mod:`neuript.inference.featnorm`) in prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuript.data.loader import WindowDataset
from neuript.inference.featnorm import STD_FLOOR, batch_stats, flat_features, group_feature_stats, group_keys
from neuript.inference.predict import predict_dataset, probabilities, run_windows


@pytest.fixture(scope="module")
def model_and_data(stores, tiny_overrides):
    from neuript.model import NeurIPT

    ds = WindowDataset([stores["eegmat"]], split=["train", "val"])
    info = ds.montage_info(ds.montages[0])
    torch.manual_seed(0)
    model = NeurIPT(n_outputs=1, ch_names=info["ch_names"], positions=info["positions"], n_times=ds.n_times,
                    sfreq=ds.sfreq, pool="meanstd", **tiny_overrides).eval()
    return model, ds


def test_groups_are_subjects_and_stats_are_theirs(model_and_data):
    model, ds = model_and_data
    keys = group_keys(ds, "subject")
    subjects = ds.windows["subject"].astype(str).to_numpy()
    assert len(np.unique(keys)) == len(np.unique(subjects)) == 4
    stats = group_feature_stats(model, ds, "subject")
    k = sorted(stats)[0]
    ids = np.flatnonzero(keys == k)
    x = torch.stack([ds[i]["x"] for i in ids])
    flat = flat_features(model, x)
    assert torch.allclose(stats[k][0], flat.mean(0), atol=1e-6)
    assert torch.allclose(stats[k][1], flat.std(0) + STD_FLOOR, atol=1e-6)
    sub = group_feature_stats(model, ds, "subject", max_per_group=5, rng=np.random.default_rng(0))
    assert not torch.allclose(sub[k][0], stats[k][0])  # a random 5 of the subject's windows


def test_predict_dataset_standardises_each_window_with_its_subjects_stats(model_and_data):
    model, ds = model_and_data
    probs, labels, index, logits = predict_dataset(model, ds, feature_norm="subject", return_logits=True,
                                                   batch_size=16)
    stats = group_feature_stats(model, ds, "subject")
    keys = group_keys(ds, "subject")[index]
    x = torch.stack([ds[i]["x"] for i in index])
    flat = flat_features(model, x)
    mean, std = batch_stats(stats, keys)
    with torch.no_grad():
        want = model.final_layer.classify((flat - mean) / std)
    assert np.allclose(logits, want.numpy(), atol=1e-5)
    assert np.allclose(probs, probabilities(want).numpy(), atol=1e-6)
    # per subject the logits are then centred: the subject's offset is gone
    plain = predict_dataset(model, ds, return_logits=True)[3]
    spread = [plain[keys == k].mean() for k in np.unique(keys)]
    centred = [logits[keys == k].mean() for k in np.unique(keys)]
    assert np.ptp(centred) < np.ptp(spread)


def test_run_windows_treats_the_windows_as_one_recording(model_and_data):
    model, ds = model_and_data
    keys = group_keys(ds, "subject")
    ids = np.flatnonzero(keys == sorted(set(keys))[1])
    raw = WindowDataset(ds.stores, split=["train", "val"], transform=None)
    uv = np.stack([raw[i]["x"].numpy() for i in ids])
    from neuript.data.preprocess import alaw

    got = run_windows(model, uv, transform=alaw, device="cpu", feature_norm=True, batch_size=7)
    sel = ds.select(ids)
    want = predict_dataset(model, sel, feature_norm="subject")[0]
    assert np.allclose(got, want, atol=1e-5)
