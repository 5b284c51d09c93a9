"""Masking for pretraining: amplitude-aware (AAMP, spec §4) and random maskers, and the BERT replacement rule.

Defined once here and used by :class:`~neuript.model.pretrain.NeurIPTPretrain` (its default masker) and by the
pretraining loop (which draws every batch's mask on the CPU from its own generator, so all ranks agree).
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["AAMPMasker", "RandomMasker", "MASKERS", "make_masker", "bert_replacement"]


def _window_mask(ranks: torch.Tensor, n_masked: int, generator: torch.Generator | None) -> torch.Tensor:
    """Mask the points whose rank (B, C, T) lies in a window of ``n_masked`` consecutive ranks centred at a
    uniform random rank per (sample, channel), clamped inside [0, T)."""
    b, c, t = ranks.shape
    xi = torch.rand(b, c, 1, generator=generator, device=ranks.device)
    centre = torch.floor(xi * t).long()
    start = (centre - n_masked // 2).clamp(0, t - n_masked)
    return (ranks >= start) & (ranks < start + n_masked)


class AAMPMasker:
    """Amplitude-Aware Masking (spec §4).

    Per sample and channel, the T values are ranked by (signed) amplitude and the ``round(T * P)`` points whose
    ranks form a contiguous window centred at a uniform random rank are masked (window clamped inside the
    ranks, so every channel masks exactly that many points). ``P`` is drawn per call from ``ratios``.

    Parameters
    ----------
    ratios : sequence of float
        Mask ratios to draw from (per batch).
    generator : torch.Generator, optional
        Random source (CPU generator; masks are created on the input's device).
    """

    def __init__(self, *, ratios: Sequence[float] = (0.2, 0.35, 0.5), generator: torch.Generator | None = None):
        if not ratios or any(not 0.0 < r < 1.0 for r in ratios):
            raise ValueError(f"mask ratios must be in (0, 1), got {ratios}")
        self.ratios = tuple(float(r) for r in ratios)
        self.generator = generator

    def draw_ratio(self) -> float:
        i = torch.randint(len(self.ratios), (1,), generator=self.generator).item()
        return self.ratios[i]

    @staticmethod
    def n_masked(n_times: int, ratio: float) -> int:
        return max(1, min(n_times, int(round(n_times * ratio))))

    def ranks(self, x: torch.Tensor) -> torch.Tensor:
        """Rank of every point within its channel (0 = smallest)."""
        return x.argsort(dim=-1).argsort(dim=-1)

    def __call__(self, x: torch.Tensor, ratio: float | None = None) -> torch.Tensor:
        """x (B, C, T) -> bool mask (B, C, T), True = masked."""
        ratio = self.draw_ratio() if ratio is None else ratio
        t = x.shape[-1]
        ranks = self.ranks(x.detach())
        gen = self.generator if x.device.type == "cpu" else None
        return _window_mask(ranks, self.n_masked(t, ratio), gen)


class RandomMasker(AAMPMasker):
    """Uniform random masking with the same count per channel as :class:`AAMPMasker` (ablation baseline)."""

    def ranks(self, x: torch.Tensor) -> torch.Tensor:
        gen = self.generator if x.device.type == "cpu" else None
        noise = torch.rand(x.shape, generator=gen, device=x.device if gen is None else "cpu").to(x.device)
        return noise.argsort(dim=-1).argsort(dim=-1)


def bert_replacement(
    mask: torch.Tensor,
    *,
    token_prob: float = 0.8,
    random_prob: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split masked points by the BERT rule: ``token_prob`` get the mask token, ``random_prob`` a random
    embedding, the rest stay unchanged. Returns (use_token, use_random) boolean tensors like ``mask``."""
    gen = generator if mask.device.type == "cpu" else None
    u = torch.rand(mask.shape, generator=gen, device=mask.device)
    use_token = mask & (u < token_prob)
    use_random = mask & (u >= token_prob) & (u < token_prob + random_prob)
    return use_token, use_random


#: masker name → class
MASKERS = {"aamp": AAMPMasker, "random": RandomMasker}


def make_masker(name: str, *, ratios: Sequence[float] = (0.2, 0.35, 0.5),
                generator: torch.Generator | None = None) -> AAMPMasker:
    """The masker called ``name`` (``"aamp"``, the paper's, or ``"random"``, the ablation), drawing from
    ``generator``."""
    if name not in MASKERS:
        raise ValueError(f"masking must be 'aamp' or 'random', got {name!r}")
    return MASKERS[name](ratios=tuple(ratios), generator=generator)
