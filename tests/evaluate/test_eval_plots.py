"""Plots write non-empty PNGs atomically and never open pyplot figures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from neuript.evaluate.plots import plot_confusion_matrix, plot_reconstruction, plot_roc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 1000 and data[:8] == PNG_MAGIC


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before


def test_confusion_matrix_png(tmp_path):
    out = plot_confusion_matrix([[5, 1, 0], [2, 3, 0], [0, 0, 0]], ["W", "N1", "N2"], tmp_path / "a" / "cm.png",
                                title="cm")
    assert out == tmp_path / "a" / "cm.png" and _is_png(out)
    assert _is_png(plot_confusion_matrix(np.eye(2, dtype=int) * 3, ["a", "b"], tmp_path / "raw.png",
                                         normalize=False))
    with pytest.raises(ValueError):
        plot_confusion_matrix([[1, 2]], ["a"], tmp_path / "bad.png")
    with pytest.raises(ValueError):
        plot_confusion_matrix(np.eye(2), ["a", "b", "c"], tmp_path / "bad.png")


def test_roc_binary_and_multiclass_png(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    p = np.clip(0.3 * y + 0.7 * rng.random(80), 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _is_png(plot_roc(y, p, tmp_path / "roc.png", class_names=["rest", "task"]))
        assert _is_png(plot_roc(y, np.stack([1 - p, p], 1), tmp_path / "roc2.png", class_names=["rest", "task"]))
    y4 = rng.integers(0, 4, 120)
    s4 = rng.dirichlet(np.ones(4), 120)
    assert _is_png(plot_roc(y4, s4, tmp_path / "roc4.png", class_names=list("ABCD"), title="OvR"))


def test_roc_degenerate_warns_but_writes(tmp_path):
    with pytest.warns(UserWarning, match="single class"):
        out = plot_roc([1, 1, 1], [0.2, 0.5, 0.9], tmp_path / "deg.png", class_names=["a", "b"])
    assert _is_png(out)
    with pytest.warns(UserWarning, match="skipped"):
        out = plot_roc([0, 1, 0], np.eye(3)[[0, 1, 1]], tmp_path / "deg3.png", class_names=["a", "b", "c"])
    assert _is_png(out)


def test_reconstruction_png_numpy_and_torch(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 320)).astype(np.float32)
    mask = rng.random(x.shape) < 0.35
    pred = x + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    names = [f"ch{i}" for i in range(6)]
    assert _is_png(plot_reconstruction(x, pred, mask, tmp_path / "r.png", ch_names=names, sfreq=64.0))
    assert _is_png(plot_reconstruction(x[1], pred[1], mask[1], tmp_path / "r1.png", ch_names=names, sfreq=64.0,
                                       channels=["ch5", 0], title="one"))
    torch = pytest.importorskip("torch")
    out = plot_reconstruction(torch.from_numpy(x).requires_grad_(), torch.from_numpy(pred),
                              torch.from_numpy(mask), tmp_path / "rt.png", ch_names=names, sfreq=64.0,
                              n_channels=2, sample=1)
    assert _is_png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png", "r1.png", "rt.png"]  # no temp leftovers


def test_reconstruction_validates_input(tmp_path):
    x = np.zeros((3, 10))
    with pytest.raises(ValueError, match="same shape"):
        plot_reconstruction(x, x[:2], x > 0, tmp_path / "x.png", ch_names=list("abc"), sfreq=10.0)
    with pytest.raises(ValueError, match="channel names"):
        plot_reconstruction(x, x, x > 0, tmp_path / "x.png", ch_names=list("ab"), sfreq=10.0)
    with pytest.raises(ValueError, match="not in ch_names"):
        plot_reconstruction(x, x, x > 0, tmp_path / "x.png", ch_names=list("abc"), sfreq=10.0, channels=["z"])
