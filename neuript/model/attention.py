"""Attention building blocks: multi-head attention, SwiGLU, segment merging, two-stage attention.

Masking conventions (``mask`` arguments are boolean, True = the token is *masked*):

* ``mask_rule="paper"`` — masked tokens are excluded as *keys* (key-padding mask broadcast over heads and
  queries, shape (N, 1, 1, L)). A sequence whose keys are all masked attends to all of them (it contains no
  visible token, so nothing can leak into a visible position). Visible queries therefore never read masked
  content.
* ``mask_rule="official"`` — the reference code's rule: a masked *query* attends only to itself (its output is
  its own value vector), visible queries attend to every key, masked ones included.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint

from .dropout import Dropout

__all__ = ["MultiHeadAttention", "SwiGLU", "SegmentMerge", "TwoStageAttentionLayer", "merge_mask", "sublayer_runner"]

MaskRule = Literal["paper", "official"]


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate q, k, v and output projections (bias), via SDPA.

    Parameters
    ----------
    d_model : int
        Token dimension (divisible by ``n_heads``).
    n_heads : int
        Number of heads.
    dropout : float
        Dropout on the attention weights (training only).
    mask_rule : {"paper", "official"}
        How a ``mask`` passed to :meth:`forward` is applied (see the module docstring); fixed at construction.
    """

    def __init__(self, *, d_model: int, n_heads: int, dropout: float = 0.0, mask_rule: MaskRule = "paper") -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if mask_rule not in ("paper", "official"):
            raise ValueError(f"mask_rule must be 'paper' or 'official', got {mask_rule!r}")
        self.n_heads = n_heads
        self.dropout = dropout
        self.mask_rule = mask_rule
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend from ``x`` (N, Lq, d) to ``context`` (N, Lk, d) (self-attention if None).

        ``mask`` (N, L) marks masked tokens of a self-attention sequence (see module docstring).
        """
        h = self.n_heads
        n, lq, d = x.shape
        if context is None:
            # one GEMM for q, k and v (weights concatenated on the fly; same result as three projections)
            w = torch.cat((self.q_proj.weight, self.k_proj.weight, self.v_proj.weight))
            b = torch.cat((self.q_proj.bias, self.k_proj.bias, self.v_proj.bias))
            qkv = F.linear(x, w, b).view(n, lq, 3, h, d // h)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # views (N, h, L, e), no copies
        else:
            lk = context.shape[1]
            q = self.q_proj(x).view(n, lq, h, d // h).transpose(1, 2)
            w = torch.cat((self.k_proj.weight, self.v_proj.weight))
            b = torch.cat((self.k_proj.bias, self.v_proj.bias))
            k, v = F.linear(context, w, b).view(n, lk, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        attn_mask = None
        mask_rule = self.mask_rule
        if mask is not None and mask_rule == "paper":
            keep = ~mask | mask.all(dim=-1, keepdim=True)  # all-masked rows: attend to all (no visible token)
            attn_mask = keep[:, None, None, :]  # (N, 1, 1, L): broadcast over heads and queries, never expanded
        dtype = q.dtype
        dropout_p = self.dropout if self.training else 0.0
        if q.device.type == "cpu":
            out = _cpu_attention(q, k, v, attn_mask, dropout_p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        if mask is not None and mask_rule == "official":
            # masked queries attend only to themselves: softmax over one key = its value
            out = torch.where(mask[:, None, :, None], v.to(out.dtype), out)
        out = out.transpose(1, 2).reshape(n, lq, d).to(dtype)
        return self.out_proj(out)


def _cpu_attention(q, k, v, attn_mask, dropout_p: float) -> torch.Tensor:
    """SDPA with the kernel and precision that are fastest on CPU for this shape (forward + backward, measured
    on a 2-core AMD EPYC with torch 2.13; ``benchmarks/model_bench.py`` and docs/model.md):

    * short key sequences with small heads (L <= 32, head dim <= 32, e.g. the spatial stage of the small presets):
      the unfused "math" kernel in fp32, 2-3x faster than the flash kernel, which is tiled for long sequences;
    * long sequences with wide heads (L >= 256, head dim >= 64) under bf16 autocast: the flash kernel in bf16,
      ~1.3x faster than fp32;
    * otherwise the flash kernel in fp32: its bf16 variant is up to ~4x slower at these shapes.
    """
    length, head_dim = k.shape[-2], q.shape[-1]
    low = q.dtype in (torch.bfloat16, torch.float16)
    if low and length >= 256 and head_dim >= 64:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    # fp32: autocast would cast the inputs back to bf16, so it is switched off around the call
    short = length <= 32 and head_dim <= 32
    with torch.autocast("cpu", enabled=False), sdpa_kernel(SDPBackend.MATH) if short else contextlib.nullcontext():
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask,
                                              dropout_p=dropout_p)


class SwiGLU(nn.Module):
    """SwiGLU feed-forward: ``fc2(silu(a) * b)`` with ``(a, b) = fc1(x).chunk(2)``.

    Parameters
    ----------
    d_model : int
        Input / output dimension.
    d_hidden : int
        Hidden width (``fc1`` has ``2 * d_hidden`` outputs).
    dropout : float
        Dropout after the gated activation.
    """

    def __init__(self, *, d_model: int, d_hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_hidden)
        self.drop = Dropout(dropout)
        self.fc2 = nn.Linear(d_hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.drop(F.silu(a) * b))


def _pad_to_multiple(x: torch.Tensor, factor: int, dim: int) -> torch.Tensor:
    """Pad ``dim`` to a multiple of ``factor`` by repeating the last tokens (reference behaviour)."""
    rem = x.shape[dim] % factor
    if rem == 0:
        return x
    pad = factor - rem
    return torch.cat((x, x.narrow(dim, x.shape[dim] - pad, pad)), dim=dim)


def merge_mask(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Mask of the merged scale: a merged token is masked when all of its parts are. (B, C, L) -> (B, C, L')."""
    if factor == 1:
        return mask
    mask = _pad_to_multiple(mask, factor, dim=-1)
    return rearrange(mask, "b c (l m) -> b c l m", m=factor).all(dim=-1)


class SegmentMerge(nn.Module):
    """Merge ``factor`` adjacent time tokens: concat features, LayerNorm(factor*d), Linear(factor*d -> d).

    If the length is not divisible by ``factor`` the last tokens are repeated (reference behaviour).

    Parameters
    ----------
    d_model : int
        Token dimension.
    factor : int
        Number of adjacent tokens merged into one.
    norm_eps : float
        LayerNorm epsilon.
    """

    def __init__(self, *, d_model: int, factor: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.factor = factor
        self.norm = nn.LayerNorm(factor * d_model, eps=norm_eps)
        self.proj = nn.Linear(factor * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_to_multiple(x, self.factor, dim=2)
        x = rearrange(x, "b c (l m) d -> b c l (m d)", m=self.factor)
        return self.proj(self.norm(x))


class TwoStageAttentionLayer(nn.Module):
    """Two-stage attention (temporal, then spatial), pre-LayerNorm, each stage followed by a feed-forward.

    ``h = x + MHA_t(LN1(x)); h = h + FFN1(LN2(h))`` per channel over time, then (optionally adding the
    electrode encoding to ``h``) ``z = h + MHA_s(LN3(h)); z = z + FFN2(LN4(z))`` per time step over channels.

    Parameters
    ----------
    d_model, n_heads : int
        Token dimension and attention heads.
    ffn1, ffn2 : nn.Module
        Feed-forward of the temporal and spatial stage (:class:`SwiGLU` or
        :class:`neuript.model.moe.MixtureOfExperts`); a module with an ``aux_loss`` output
        (``forward`` returning ``(y, aux)``) is recognised by ``returns_aux = True``.
    dropout : float
        Dropout on the residual branches.
    norm_eps : float
        LayerNorm epsilon.
    attn_dropout : float or None
        Dropout on the attention weights (None: same as ``dropout``, the reference behaviour). Any value > 0
        forces the unfused (math) attention path in training, which is much slower on CPU.
    mask_rule : {"paper", "official"}
        How masked tokens are treated by both attentions (see the module docstring).
    grad_checkpointing : bool
        Recompute each of the four residual sub-layers in the backward pass (only their inputs are kept; training
        with gradients only). Per sub-layer rather than per layer, so the backward pass holds one sub-layer's
        activations at a time. A plain attribute: switch it with ``set_grad_checkpointing`` on the model.
    """

    def __init__(
        self,
        *,
        d_model: int,
        n_heads: int,
        ffn1: nn.Module,
        ffn2: nn.Module,
        dropout: float = 0.0,
        norm_eps: float = 1e-5,
        attn_dropout: float | None = None,
        mask_rule: MaskRule = "paper",
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        attn_dropout = dropout if attn_dropout is None else attn_dropout
        self.grad_checkpointing = bool(grad_checkpointing)
        self.time_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attn_dropout, mask_rule=mask_rule)
        self.channel_attn = MultiHeadAttention(d_model=d_model, n_heads=n_heads, dropout=attn_dropout,
                                               mask_rule=mask_rule)
        self.norm1 = nn.LayerNorm(d_model, eps=norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=norm_eps)
        self.norm4 = nn.LayerNorm(d_model, eps=norm_eps)
        self.ffn1 = ffn1
        self.ffn2 = ffn2
        self.drop = Dropout(dropout)

    def _attn_residual(self, h: torch.Tensor, m, attn: nn.Module, norm: nn.Module):
        return h + self.drop(attn(norm(h), mask=m))

    def _ffn_residual(self, h: torch.Tensor, ffn: nn.Module, norm: nn.Module):
        if getattr(ffn, "returns_aux", False):
            y, a = ffn(norm(h))
            return h + self.drop(y), a
        return h + self.drop(ffn(norm(h))), None

    def forward(
        self,
        x: torch.Tensor,
        *,
        spatial_pe: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, L, d); spatial_pe (C, d) or None; mask (B, C, L) bool or None.

        Returns the output (B, C, L, d) and the summed auxiliary loss of its MoE layers (None if none).
        """
        run = sublayer_runner(self)
        b = x.shape[0]
        aux: list[torch.Tensor] = []
        h = rearrange(x, "b c l d -> (b c) l d")
        m = None if mask is None else rearrange(mask, "b c l -> (b c) l")
        h = run(self._attn_residual, h, m, self.time_attn, self.norm1)
        h, a = run(self._ffn_residual, h, self.ffn1, self.norm2)
        if a is not None:
            aux.append(a)
        h = rearrange(h, "(b c) l d -> b c l d", b=b)
        if spatial_pe is not None:
            h = h + spatial_pe[:, None, :].to(h.dtype)
        z = rearrange(h, "b c l d -> (b l) c d")
        m = None if mask is None else rearrange(mask, "b c l -> (b l) c")
        z = run(self._attn_residual, z, m, self.channel_attn, self.norm3)
        z, a = run(self._ffn_residual, z, self.ffn2, self.norm4)
        if a is not None:
            aux.append(a)
        out = rearrange(z, "(b l) c d -> b c l d", b=b)
        return out, (torch.stack(aux).sum() if aux else None)


def _call(fn, *args):
    return fn(*args)


def sublayer_runner(module: nn.Module) -> Callable:
    """``run(fn, *args)`` for the sub-layers of ``module``: activation-checkpointed (non-reentrant, RNG replayed)
    when ``module.grad_checkpointing`` is set and ``module`` trains with gradients enabled, a plain call
    otherwise."""
    if getattr(module, "grad_checkpointing", False) and module.training and torch.is_grad_enabled():
        return partial(checkpoint, use_reentrant=False)
    return _call
