"""Subject alignment: per-channel standardisation and Euclidean alignment, alone and inside WindowDataset."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neuript.data.align import align_windows, fit_group_transforms


def _two_subjects(rng):
    """Subject a: unit-variance EEG-like noise; subject b: the same process, 5x larger and mixed across channels."""
    a = rng.standard_normal((40, 4, 128))
    mix = np.array([[5, 1, 0, 0], [0, 5, 1, 0], [0, 0, 5, 1], [1, 0, 0, 5]], float)
    b = np.einsum("cd,ndt->nct", mix, rng.standard_normal((40, 4, 128))) + 3.0
    return np.concatenate([a, b]), np.array(["a"] * 40 + ["b"] * 40)


def test_channel_alignment_gives_every_subject_unit_variance():
    x, g = _two_subjects(np.random.default_rng(0))
    out = align_windows(x, g, "channel", scale_uv=1.0)
    for s in "ab":
        flat = np.moveaxis(out[g == s], 1, 0).reshape(4, -1)
        np.testing.assert_allclose(flat.std(axis=1), 1.0, atol=1e-4)
        np.testing.assert_allclose(flat.mean(axis=1), 0.0, atol=1e-4)
    assert not np.allclose(np.moveaxis(x[g == "b"], 1, 0).reshape(4, -1).std(axis=1), 1.0, atol=0.5)


def test_euclidean_alignment_whitens_each_subjects_mean_covariance():
    x, g = _two_subjects(np.random.default_rng(1))
    out = align_windows(x, g, "euclidean", scale_uv=1.0)
    for s in "ab":
        xs = out[g == s] - out[g == s].mean(axis=-1, keepdims=True)
        r = np.einsum("nct,ndt->cd", xs, xs) / (xs.shape[0] * xs.shape[-1])
        np.testing.assert_allclose(r, np.eye(4), atol=1e-3)
    # the transform is per subject: fitted on b alone it differs from a's
    t = fit_group_transforms(x, g, "euclidean")
    assert not np.allclose(t["a"][1], t["b"][1], atol=0.1)
    with pytest.raises(ValueError, match="alignment must be one of"):
        align_windows(x, g, "zscore")


def test_window_dataset_aligns_per_subject_from_that_splits_windows(eegmat_store):
    from neuript.data.loader import WindowDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        raw = WindowDataset([eegmat_store], split="train", transform=None)
        ds = WindowDataset([eegmat_store], split="train", transform=None, align="channel", align_scale_uv=1.0)
    subj = ds.windows["subject"].astype(str).to_numpy()
    x = np.stack([ds[i]["x"].numpy() for i in range(len(ds))])
    x0 = np.stack([raw[i]["x"].numpy() for i in range(len(raw))])
    for s in np.unique(subj):
        flat = np.moveaxis(x[subj == s], 1, 0).reshape(x.shape[1], -1)
        np.testing.assert_allclose(flat.std(axis=1), 1.0, atol=1e-3)
    assert np.abs(x0).max() > 10 * np.abs(x).max() / 20  # the raw windows are in µV, the aligned ones are not
    view = ds.select(np.arange(0, len(ds), 2))  # a view keeps each item's subject transform
    np.testing.assert_allclose(view[1]["x"].numpy(), ds[2]["x"].numpy())
    with pytest.raises(ValueError, match="--align must be one of"):
        WindowDataset([eegmat_store], split="train", align="zscore")
