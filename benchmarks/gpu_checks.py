"""CUDA checks of what the CPU test suite covers on the CPU only: BF16StateAdamW (the update, stochastic rounding,
second-moment tracking) and pretraining micro-batches (equal to the full batch with the random draws off).

Run ``python -m benchmarks.gpu_checks`` on a GPU machine. It prints one JSON line of checks and exits 1 if one fails;
without ``--no-bench`` it then measures the bf16 optimizer state on the GPU (``gpu_bench`` rows).
"""

from __future__ import annotations

import json
import math
import sys

import torch


def check_optimizer(dev: torch.device) -> dict:
    from neuript.train.optim import BF16StateAdamW, stochastic_round_bf16_

    def model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3)).to(dev)

    # fp32-state mode is torch's AdamW arithmetic
    a, b = model(), model()
    kw = dict(lr=3e-3, betas=(0.9, 0.98), weight_decay=0.05)
    oa = torch.optim.AdamW(a.parameters(), foreach=False, **kw)
    ob = BF16StateAdamW(b.parameters(), state_dtype=torch.float32, **kw)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        x, y = torch.randn(32, 8, generator=g).to(dev), torch.randint(0, 3, (32,), generator=g).to(dev)
        for m, o in ((a, oa), (b, ob)):
            o.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(m(x), y).backward()
            o.step()
    out = dict(fp32_state_vs_torch_max_abs=max((p - q).abs().max().item() for p, q in zip(a.parameters(),
                                                                                         b.parameters())))
    # stochastic rounding is unbiased: 1 + 1/512 rounds up (to 1 + 1/128) with probability 1/4
    x = torch.full((2_000_000,), 1.0 + 1 / 512, device=dev)
    d = torch.empty_like(x, dtype=torch.bfloat16)
    stochastic_round_bf16_(d, x)
    out["sr_mean_minus_exact"] = d.double().mean().item() - (1.0 + 1 / 512)
    out["sr_stderr"] = (1 / 128) * math.sqrt(0.25 * 0.75 / x.numel())
    # the bf16 second moment follows the exact moving average
    p = torch.nn.Parameter(torch.zeros(20_000, device=dev))
    o = BF16StateAdamW([p], lr=0.0, betas=(0.9, 0.999), weight_decay=0.0)
    for _ in range(3000):
        p.grad = torch.ones_like(p)
        o.step()
    out["v_tracking_rel_err"] = o.state[p]["exp_avg_sq"].double().mean().item() / (1 - 0.999 ** 3000) - 1
    return out


def check_pretrain_micro_batches(dev: torch.device) -> dict:
    from neuript.model.presets import build
    from neuript.train.pretrain import draw_mask
    from neuript.train.common import DistContext
    from neuript.train.pretrain import PretrainConfig, _accumulate

    def grads(micro):
        torch.manual_seed(0)
        pos = torch.randn(6, 3) * 0.05
        # no random draws: no dropout or gate noise, and every masked point gets the mask token
        m = build("tiny", pretrain=True, positions=pos, dropout=0.0, gate_noise=0.0, token_prob=1.0,
                  random_prob=0.0).to(dev).train()
        x = torch.randn(4, 6, 64, generator=torch.Generator().manual_seed(1))
        mask = draw_mask(x, masking="aamp", ratios=(0.35,), generator=torch.Generator().manual_seed(2))
        cfg = PretrainConfig(micro_batch_size=micro, aux_weight=0.0, precision="fp32")
        _accumulate(m, x.to(dev), pos.to(dev), mask.to(dev), cfg, DistContext(device=dev))
        return torch.cat([q.grad.flatten() for q in m.parameters() if q.grad is not None])

    torch.backends.cuda.matmul.allow_tf32 = False
    # One relative error over all gradients: per tensor, the key-projection biases (exact gradient zero, rounding
    # noise of ~1e-10) differ by 100 % between any two summation orders, on the CPU too.
    full, micro = grads(None), grads(1)
    return dict(pretrain_micro_vs_full_rel=((full - micro).norm() / full.norm()).item())


def main(argv: list[str]) -> int:
    dev = torch.device("cuda")
    res = dict(check_optimizer(dev), **check_pretrain_micro_batches(dev))
    ok = (res["fp32_state_vs_torch_max_abs"] < 1e-6 and abs(res["sr_mean_minus_exact"]) < 4 * res["sr_stderr"]
          and abs(res["v_tracking_rel_err"]) < 0.01 and res["pretrain_micro_vs_full_rel"] < 1e-5)
    print(json.dumps(dict(section="checks", ok=ok, **res)), flush=True)
    if "--no-bench" not in argv:
        from benchmarks.gpu_bench import measure

        for kind, variant, batch in (("finetune", "bf16-bf16state", 64), ("pretrain", "bf16-ckpt-bf16state", 64)):
            print(json.dumps(dict(section="batch", **measure(kind, variant, batch=batch, steps=5, warmup=2))),
                  flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
