"""IILP ``pool="meanstd"``: the mean and the log standard deviation over time of every pooled output."""

from __future__ import annotations

import pytest
import torch

from neuript.model import NeurIPT
from neuript.model.heads import IILPHead, group_matrix

TINY = dict(d_model=16, n_heads=2, d_ff=16, expert_hidden=8, shared_hidden=16, merge_factors=[1, 4, 1, 2],
            n_experts=[0, 0, 2, 4])
NAMES = ["Fp1", "Fp2", "C3", "C4", "O1", "O2"]


def test_meanstd_pool_appends_log_std_over_time_after_the_means():
    torch.manual_seed(0)
    feats = [torch.randn(3, 4, 10, 5), torch.randn(3, 4, 6, 5) * 3]
    w = group_matrix([[0, 1], [2, 3]], 4)
    head = IILPHead(d_model=5, n_groups=2, n_pooled=2, n_outputs=1, pool="meanstd")
    out = head.pool(feats, w, flatten=False)
    assert out.shape == (3, 4, 2, 5) and head.linear.in_features == 4 * 2 * 5
    mean_head = IILPHead(d_model=5, n_groups=2, n_pooled=2, n_outputs=1)
    assert torch.allclose(out[:, :2], mean_head.pool(feats, w, flatten=False))  # means first, as the paper's
    f = feats[1]
    want = torch.einsum("bcd,gc->bgd", torch.log(f.var(dim=2) + 1e-4) / 2, w)
    assert torch.allclose(out[:, 3], want, atol=1e-6)
    # a louder output has a larger log-std: the slice is the (log) amplitude, not the average
    assert (out[:, 3] > out[:, 2]).float().mean() > 0.9


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pool must be one of"):
        IILPHead(d_model=4, n_groups=1, n_pooled=1, n_outputs=1, pool="max")


def test_meanstd_model_saves_and_reloads_with_the_same_logits(tmp_path):
    torch.manual_seed(0)
    model = NeurIPT(n_outputs=1, ch_names=NAMES, n_times=64, sfreq=64.0, pool="meanstd", **TINY).eval()
    x = torch.randn(2, len(NAMES), 64)
    model.save_pretrained(tmp_path / "m")
    again = NeurIPT.from_pretrained(tmp_path / "m").eval()
    assert again.pool == "meanstd" and again.config["pool"] == "meanstd"
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=1e-6)
    again.reset_head(3)  # a new head keeps the pooling
    assert again.final_layer.pool_stats == "meanstd" and again(x).shape == (2, 3)


def test_feature_stats_standardise_what_the_linear_layer_reads():
    torch.manual_seed(0)
    model = NeurIPT(n_outputs=1, ch_names=NAMES, n_times=64, sfreq=64.0, **TINY).eval()
    x = torch.randn(4, len(NAMES), 64)
    with torch.no_grad():
        flat = model.forward_head(model.forward_features(x), pre_logits=True)
        mean, std = flat.mean(0), flat.std(0) + 0.5
        got = model(x, feature_stats=(mean, std))
        assert torch.allclose(got, model.final_layer.classify((flat - mean) / std), atol=1e-6)
        assert not torch.allclose(got, model(x))
