"""AdamW with its two moments stored in bfloat16: half the optimizer memory, fp32 arithmetic.

``torch.optim.AdamW`` keeps both moments in the parameters' dtype (fp32): for the paper-size model that is
0.74 GB beside 0.37 GB of weights — the largest block of a CPU fine-tuning step's memory. :class:`BF16StateAdamW`
stores them in bfloat16 and does every update in fp32. Writing an fp32 moment back to bfloat16 with ordinary
round-to-nearest would lose small updates: with ``beta2 = 0.999`` a step changes the second moment by ~0.1 %,
under bfloat16's relative spacing of 0.4 %, so ``v`` would freeze. The write-back therefore rounds
*stochastically* (up with probability equal to the remainder), which is unbiased: the stored moment equals the
fp32 one in expectation (the technique of AnyPrecisionAdamW in torchdistx and of bf16 optimizer states in large-model
training). Weights and gradients stay fp32. The rounding noise is a function of (seed, step, parameter) only, so
data-parallel ranks, which see the same gradients, stay bit-identical.

Opt in with ``neuript finetune/pretrain --optimizer-state bf16`` (``neuript.train.common.make_adamw(..., state="bf16")``); the
default stays torch's fused fp32 AdamW.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

from neuript.model.dropout import uniform_int16

__all__ = ["BF16StateAdamW", "stochastic_round_bf16_"]

_HIGH_16 = -65536  # int32 with the upper 16 bits set (0xFFFF0000): the bits a bfloat16 keeps


def stochastic_round_bf16_(dst: torch.Tensor, src: torch.Tensor, generator: torch.Generator | None = None, *,
                           overwrite_src: bool = False) -> None:
    """Write fp32 ``src`` into bfloat16 ``dst``, rounding each value up with probability equal to the dropped
    fraction of its last kept bit (unbiased: ``E[dst] = src``).

    A bfloat16 is the upper 16 bits of an fp32. Adding a uniform 16-bit integer to the fp32 bit pattern carries into
    the kept bits exactly with that probability; masking the low bits then leaves a value bfloat16 holds exactly.
    The noise comes from :func:`neuript.model.dropout.uniform_int16` (four 16-bit lanes per random 64-bit word).
    ``overwrite_src=True`` works in ``src``'s memory (which must be contiguous) instead of a copy.
    """
    if dst.dtype != torch.bfloat16 or src.dtype != torch.float32 or dst.shape != src.shape:
        raise ValueError(f"need bfloat16 dst and float32 src of one shape, got {dst.dtype}{tuple(dst.shape)} and "
                         f"{src.dtype}{tuple(src.shape)}")
    bits = (src if overwrite_src else src.clone(memory_format=torch.contiguous_format)).view(torch.int32)
    lanes = uniform_int16(bits.shape, device=src.device, generator=generator)  # uniform in [-2^15, 2^15)
    # + lane + 2^15 = + uniform [0, 2^16). Infinities stay infinite and NaNs NaN (the carry is masked off again;
    # only a NaN whose payload lies in the dropped bits alone could become inf); the largest finite values may round
    # up to inf, as round-to-nearest does.
    bits.add_(lanes).add_(1 << 15).bitwise_and_(_HIGH_16)
    dst.copy_(bits.view(torch.float32))


class BF16StateAdamW(torch.optim.Optimizer):
    """AdamW (decoupled weight decay, bias-corrected moments — the same update as ``torch.optim.AdamW``) whose
    moments are stored in bfloat16 with stochastic rounding.

    Parameters
    ----------
    params
        Parameters or parameter-group dicts (fp32 parameters).
    lr, betas, eps, weight_decay
        As for ``torch.optim.AdamW``.
    state_dtype
        ``torch.bfloat16`` (default) or ``torch.float32``; fp32 state gives exactly ``torch.optim.AdamW``'s
        arithmetic (used to test the update itself).
    seed
        Seed of the rounding noise. The noise of a parameter at a step is a function of ``(seed, step, parameter
        index)`` alone — not of torch's global RNG — so every DDP rank rounds identically (the ranks stay in sync
        whatever else they draw) and a resumed run continues bit-identically without extra state.
    """

    def __init__(self, params: Iterable, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, state_dtype: torch.dtype = torch.bfloat16,
                 seed: int = 0):
        if state_dtype not in (torch.bfloat16, torch.float32):
            raise ValueError(f"state_dtype must be torch.bfloat16 or torch.float32, got {state_dtype}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        self.state_dtype = state_dtype
        self.seed = int(seed)
        self._generators: dict[torch.device, torch.Generator] = {}

    def _noise_generator(self, device: torch.device, step: int, index: int) -> torch.Generator:
        g = self._generators.get(device)
        if g is None:
            g = self._generators[device] = torch.Generator(device=device)
        # splitmix-style constants spread (seed, step, index) over the seed space
        g.manual_seed((self.seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
                      % (1 << 63))
        return g

    def _init_state(self, p: torch.Tensor) -> dict:
        st = self.state[p]
        st["step"] = torch.zeros((), dtype=torch.float32)
        st["exp_avg"] = torch.zeros_like(p, dtype=self.state_dtype, memory_format=torch.contiguous_format)
        st["exp_avg_sq"] = torch.zeros_like(p, dtype=self.state_dtype, memory_format=torch.contiguous_format)
        return st

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = -1
        for group in self.param_groups:
            lr, (b1, b2), eps, wd = float(group["lr"]), group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                index += 1
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("BF16StateAdamW does not support sparse gradients")
                st = self.state[p] or self._init_state(p)
                st["step"] += 1
                t = float(st["step"])
                # One parameter at a time: fp32 temporaries never exceed a few copies of the largest tensor.
                m = st["exp_avg"].float().lerp_(g, 1 - b1)
                v = st["exp_avg_sq"].float().mul_(b2).addcmul_(g, g, value=1 - b2)
                if wd:
                    p.mul_(1 - lr * wd)
                denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
                p.addcdiv_(m, denom, value=-lr / (1 - b1 ** t))
                if self.state_dtype == torch.float32:
                    st["exp_avg"].copy_(m)
                    st["exp_avg_sq"].copy_(v)
                else:
                    g = self._noise_generator(p.device, int(t), index)
                    stochastic_round_bf16_(st["exp_avg"], m, g, overwrite_src=True)
                    stochastic_round_bf16_(st["exp_avg_sq"], v, g, overwrite_src=True)
        return loss

    def load_state_dict(self, state_dict: dict) -> None:
        """As ``Optimizer.load_state_dict``, which casts floating state to the parameters' dtype; the moments
        are cast back to this optimizer's ``state_dtype`` so that a resumed run keeps its memory footprint."""
        super().load_state_dict(state_dict)
        for st in self.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st and st[key].dtype != self.state_dtype:
                    st[key] = st[key].to(self.state_dtype)
            if "step" in st:  # torch hands over the caller's step tensor itself; ours is incremented in place
                st["step"] = st["step"].detach().to(torch.float32, copy=True)
