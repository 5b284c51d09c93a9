"""Classification heads: Intra-Inter Lobe Pooling (IILP)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["group_matrix", "IILPHead", "POOLINGS"]

#: IILP pooling over time: ``"mean"`` (the paper's) or ``"meanstd"`` (mean and log standard deviation)
POOLINGS = ("mean", "meanstd")


def group_matrix(groups: Sequence[Sequence[int]], n_chans: int, *, device=None) -> torch.Tensor:
    """(G, C) averaging matrix: row g holds ``1/|g|`` at the channels of group g.

    Raises ``ValueError`` for empty groups or indices out of range.
    """
    if len(groups) == 0:
        raise ValueError("at least one channel group is required")
    w = torch.zeros(len(groups), n_chans, device=device)
    for g, members in enumerate(groups):
        members = [int(i) for i in members]
        if not members:
            raise ValueError(f"channel group {g} is empty")
        bad = [i for i in members if not 0 <= i < n_chans]
        if bad:
            raise ValueError(f"channel group {g} has indices {bad} outside 0..{n_chans - 1}")
        w[g, members] = 1.0 / len(members)
    return w


class IILPHead(nn.Module):
    """Intra-Inter Lobe Pooling head (spec §5).

    For each pooled encoder output and each channel group: mean over time and over the group's channels
    -> one d-vector; concatenated over groups (inner) and outputs (outer), then one ``Linear``.

    With ``pool="meanstd"`` every encoder output also gives the group mean of its channels' log standard
    deviation over time (``log(var + 1e-4) / 2``), so the head sees the *power* of each feature and not only
    its average: the statistic band-power baselines are built on (docs/training.md). The pooled tensor then
    holds ``2 * n_pooled`` slices, means first.

    Parameters
    ----------
    d_model : int
        Token dimension.
    n_groups : int
        Number of channel groups.
    n_pooled : int
        Number of encoder outputs pooled.
    n_outputs : int
        Number of logits.
    pool : {"mean", "meanstd"}
        Statistics over time (see above); ``"mean"`` is the paper's head.
    """

    def __init__(self, *, d_model: int, n_groups: int, n_pooled: int, n_outputs: int, pool: str = "mean") -> None:
        super().__init__()
        if pool not in POOLINGS:
            raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
        self.d_model, self.n_groups, self.n_pooled, self.n_outputs = d_model, n_groups, n_pooled, n_outputs
        self.pool_stats = pool
        n_stats = 2 if pool == "meanstd" else 1
        self.linear = nn.Linear(n_stats * n_pooled * n_groups * d_model, n_outputs)

    def pool(self, features: Sequence[torch.Tensor], weights: torch.Tensor, *, flatten: bool = True) -> torch.Tensor:
        """features: ``n_pooled`` tensors (B, C, L_i, d); weights (G, C) -> (B, S * n_pooled * G * d), or
        (B, S * n_pooled, G, d) with ``flatten=False`` (S = 2 statistics with ``pool="meanstd"``, else 1)."""
        if len(features) != self.n_pooled:
            raise ValueError(f"IILP head expects {self.n_pooled} encoder outputs, got {len(features)}")
        if weights.shape[0] != self.n_groups:
            raise ValueError(
                f"IILP head was built for {self.n_groups} channel groups, got {weights.shape[0]}; "
                "use reset_head() / matching groups"
            )
        pooled = [torch.einsum("bcd,gc->bgd", f.mean(dim=2), weights.to(f.dtype)) for f in features]
        if self.pool_stats == "meanstd":
            # in fp32: the variance of low-precision activations underflows; the floor keeps log finite
            pooled += [torch.einsum("bcd,gc->bgd", torch.log(f.float().var(dim=2) + 1e-4) / 2,
                                    weights.float()).to(f.dtype) for f in features]
        out = torch.stack(pooled, dim=1)
        return out.flatten(1) if flatten else out

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Flattened pooled features (B, n_pooled * G * d) -> logits (B, n_outputs)."""
        return self.linear(pooled)

    def forward(self, features: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(features, weights))
