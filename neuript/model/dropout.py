"""Dropout with a cheap random source.

``nn.Dropout`` on CPU draws one Bernoulli variate per element (``bernoulli_``), which costs as much as a
matrix multiplication of the same tensor: on the paper-size model it took ~15 % of a bf16 fine-tuning step.
:class:`Dropout` draws 64 random bits per 4 elements instead (``random_`` on int64, 16 bits per element) and
keeps an element when its 16 bits are at or above ``round(p * 2**16)``, so the drop probability is ``p``
rounded to a multiple of 2**-16 (0.1 → 0.100006). Kept elements are scaled by ``1 / (1 - p_eff)`` as usual.
It uses the default torch generator, so ``torch.manual_seed`` makes it reproducible and activation
checkpointing (which restores the RNG state) recomputes the same mask. Off the CPU it falls back to
``torch.nn.functional.dropout``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "dropout", "drop_mask", "uniform_int16"]

_BITS = 16
_LEVELS = 1 << _BITS


def uniform_int16(shape: torch.Size | tuple[int, ...], *, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent uniform int16 values in [-2**15, 2**15) of ``shape``, four per random 64-bit word
    (``random_`` on int64 over its full range: a quarter of the draws of one draw per element)."""
    numel = math.prod(shape)
    words = torch.empty(-(-numel // 4), dtype=torch.int64, device=device).random_(-(2**63), None,
                                                                                  generator=generator)
    return words.view(torch.int16)[:numel].view(shape)


def drop_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """Boolean mask of ``shape`` (True = dropped) with drop probability ``round(p * 2**16) / 2**16``.

    Returns the mask and that effective drop probability.
    """
    threshold = int(round(p * _LEVELS))
    return uniform_int16(shape) < threshold - _LEVELS // 2, threshold / _LEVELS


class _DropoutFn(torch.autograd.Function):
    # The mask is applied as a multiplication by the boolean keep mask, not with ``masked_fill``: on CPU
    # (torch 2.13) ``masked_fill`` of a float tensor by a bool mask runs ~4x slower than ``x * keep``
    # (102400 x 32: 23.7 vs 5.7 ms, one thread); the values are identical for finite inputs.
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        drop, p_eff = drop_mask(x.shape, p)
        keep = drop.logical_not_()
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p_eff)
        return torch.mul(x, keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Functional form of :class:`Dropout`."""
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    return _DropoutFn.apply(x, p)


class Dropout(nn.Module):
    """Drop-in replacement of :class:`torch.nn.Dropout`, ~2x faster on CPU forward + backward (see module docstring).

    Parameters
    ----------
    p : float
        Drop probability, in [0, 1).
    """

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
