"""Progressive mixture-of-experts feed-forward (shared expert + routed SwiGLU experts).

Dispatch is vectorised: token-expert assignments are sorted by expert (stable, so token order is kept within
an expert), the rows of all assignments are gathered once (``index_select``), each expert runs once on its
contiguous slice, and the weighted results are added back with one ``index_add_``. Only the (at most a handful of) experts are looped over, never tokens.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Literal

import torch
from torch import nn

from .attention import SwiGLU

__all__ = ["MixtureOfExperts", "default_top_k", "dense_routing"]

Routing = Literal["paper", "official"]


def default_top_k(n_experts: int) -> int:
    """k = ceil(E / 2) (spec §3)."""
    return max(1, math.ceil(0.5 * n_experts))


def _cv_squared(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var() / (x.mean() ** 2 + eps)


class MixtureOfExperts(nn.Module):
    """Shared expert plus ``n_experts`` routed SwiGLU experts with top-k gating.

    Parameters
    ----------
    d_model : int
        Token dimension.
    n_experts : int
        Number of routed experts E (>= 1).
    expert_hidden : int
        Hidden width of each routed expert.
    shared_hidden : int
        Hidden width of the always-on shared expert.
    top_k : int or None
        Experts per token; default ``ceil(E / 2)``.
    routing : {"paper", "official"}
        ``"paper"``: softmax over the top-k logits, every token kept. ``"official"`` (reference code): softmax
        over all E logits, the top-k probabilities used without renormalisation, and an expert capacity of
        ``N // E`` tokens — assignments past capacity are dropped for that expert in token order (training and
        eval alike).
    gate_noise : float
        Std of the Gaussian noise added to the gate logits in training.
    importance_weight : float
        Weight of the importance (coefficient-of-variation) term of the auxiliary loss.
    dropout : float
        Dropout inside the experts.

    ``forward(x)`` takes (..., d) and returns ``(y, aux_loss)`` with ``y`` of the same shape.
    Auxiliary loss = ``importance_weight * CV²(sum_tokens p)`` + ``E * sum_e mean_tokens(g_e) * sum_tokens(g_e) / N²``
    where ``p`` is the full softmax and ``g`` the (sparse) top-k gate weights.

    With :attr:`dense` set (see :func:`dense_routing`; used only for export) an eval-mode forward runs every
    expert on every token and combines them with the top-k gate weights as a dense (N, E) mask — the same
    result as the sparse dispatch (including ``"official"`` capacity dropping), without data-dependent
    indexing or shapes, so ``torch.export`` / ONNX can trace it with a dynamic batch size.
    """

    returns_aux = True

    def __init__(
        self,
        *,
        d_model: int,
        n_experts: int,
        expert_hidden: int,
        shared_hidden: int,
        top_k: int | None = None,
        routing: Routing = "paper",
        gate_noise: float = 1e-3,
        importance_weight: float = 0.008,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if n_experts < 1:
            raise ValueError("n_experts must be >= 1 (use a plain SwiGLU for 0)")
        if routing not in ("paper", "official"):
            raise ValueError(f"routing must be 'paper' or 'official', got {routing!r}")
        self.n_experts = n_experts
        self.top_k = default_top_k(n_experts) if top_k is None else int(top_k)
        if not 1 <= self.top_k <= n_experts:
            raise ValueError(f"top_k={self.top_k} must be in [1, {n_experts}]")
        self.routing = routing
        self.gate_noise = gate_noise
        self.importance_weight = importance_weight
        self.gate = nn.Linear(d_model, n_experts)
        self.experts = nn.ModuleList(
            SwiGLU(d_model=d_model, d_hidden=expert_hidden, dropout=dropout) for _ in range(n_experts)
        )
        self.shared_expert = SwiGLU(d_model=d_model, d_hidden=shared_hidden, dropout=dropout)
        self.dense = False  # export-friendly eval routing (dense_routing()); never saved

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gate a flat batch of tokens (N, d).

        Returns ``probs`` (N, E) full softmax (float32), ``top_idx`` (N, k) and ``top_w`` (N, k) float32 weights.
        """
        logits = self.gate(x).float()
        if self.training and self.gate_noise > 0:
            logits = logits + torch.randn_like(logits) * self.gate_noise
        probs = logits.softmax(dim=-1)
        top_logits, top_idx = logits.topk(self.top_k, dim=-1)
        if self.routing == "paper":
            top_w = top_logits.softmax(dim=-1)
        else:
            top_w = probs.gather(-1, top_idx)
        return probs, top_idx, top_w

    def _aux(self, probs: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        n, e = gates.shape
        aux = self.importance_weight * _cv_squared(probs.sum(dim=0))
        return aux + e * (gates.mean(dim=0) * gates.sum(dim=0)).sum() / max(n, 1) ** 2

    def _forward_dense(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval routing without data-dependent indexing: every expert on every token, weighted by the dense
        (N, E) top-k gates (zero off the top k and, in ``"official"`` mode, past an expert's capacity)."""
        n, e = x.shape[0], self.n_experts
        probs, top_idx, top_w = self.route(x)
        gates = torch.zeros_like(probs).scatter(1, top_idx, top_w)
        aux = self._aux(probs, gates)  # before capacity dropping, as in the sparse path
        if self.routing == "official":
            # capacity N // E per expert, first come first served in token order (as the sparse dispatch)
            assigned = torch.zeros_like(probs, dtype=torch.int64).scatter(1, top_idx, 1)
            earlier = torch.cumsum(assigned, dim=0) - assigned
            gates = gates * (earlier < n // e).to(gates.dtype)
        out = self.shared_expert(x)
        # accumulate expert by expert, in the sparse path's order (a zero gate adds an exact zero)
        for eid, expert in enumerate(self.experts):
            y = expert(x)
            out = out + (y * gates[:, eid : eid + 1].to(y.dtype)).to(out.dtype)
        return out, aux

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if self.dense and not self.training:
            out, aux = self._forward_dense(x)
            return out.reshape(shape), aux
        n, e, k = x.shape[0], self.n_experts, self.top_k
        probs, top_idx, top_w = self.route(x)

        # flat assignment list, sorted by expert; stable sort keeps token order inside an expert
        flat_expert = top_idx.reshape(-1)
        flat_token = torch.arange(n, device=x.device).repeat_interleave(k)
        flat_w = top_w.reshape(-1)
        order = torch.argsort(flat_expert, stable=True)
        s_expert, s_token, s_w = flat_expert[order], flat_token[order], flat_w[order]
        counts = torch.bincount(s_expert, minlength=e)
        if self.routing == "official":
            capacity = n // e
            starts = torch.cumsum(counts, 0) - counts
            rank = torch.arange(s_expert.numel(), device=x.device) - starts[s_expert]
            keep = rank < capacity
            counts = counts.clamp(max=capacity)
            s_expert, s_token, s_w = s_expert[keep], s_token[keep], s_w[keep]

        out = self.shared_expert(x)  # fresh tensor (its backward does not need it): accumulate in place
        # one gather for all assignments (its backward is a single index_add into one (N, d) buffer, not one
        # zero-filled (N, d) buffer per expert), one call per expert on its contiguous slice, one index_add.
        # An expert without tokens still runs, on an empty slice: every parameter then takes part in every
        # step (a zero gradient instead of none), which DistributedDataParallel requires — a small micro-batch
        # can leave an expert empty.
        xs = x.index_select(0, s_token)
        ys = [self.experts[eid](chunk) for eid, chunk in enumerate(xs.split(counts.tolist()))]
        y = ys[0] if len(ys) == 1 else torch.cat(ys)
        out.index_add_(0, s_token, (y * s_w.unsqueeze(-1).to(y.dtype)).to(out.dtype))

        # auxiliary losses
        gates = torch.zeros(n, e, device=x.device, dtype=torch.float32)
        gates = gates.scatter(1, top_idx, top_w)
        return out.reshape(shape), self._aux(probs, gates)

    def extra_repr(self) -> str:
        return f"n_experts={self.n_experts}, top_k={self.top_k}, routing={self.routing!r}"


@contextlib.contextmanager
def dense_routing(module: nn.Module, enable: bool = True) -> Iterator[nn.Module]:
    """Within the block, every :class:`MixtureOfExperts` in ``module`` routes densely in eval mode
    (export-friendly, numerically the sparse path's result); the previous setting is restored on exit."""
    moes = [m for m in module.modules() if isinstance(m, MixtureOfExperts)]
    before = [m.dense for m in moes]
    try:
        for m in moes:
            m.dense = bool(enable)
        yield module
    finally:
        for m, b in zip(moes, before):
            m.dense = b
