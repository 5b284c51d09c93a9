"""BF16StateAdamW: the AdamW update, unbiased stochastic rounding, bf16 state that keeps learning, resume."""

import math

import pytest
import torch

from neuript.train.common import make_adamw
from neuript.train.optim import BF16StateAdamW, stochastic_round_bf16_


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))


def _train(model, opt, steps=5):
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def test_fp32_state_is_torch_adamw():
    kw = dict(lr=3e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.05)
    a, b = _model(), _model()
    _train(a, torch.optim.AdamW(a.parameters(), foreach=False, **kw))
    _train(b, BF16StateAdamW(b.parameters(), state_dtype=torch.float32, **kw))
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)


def test_state_is_bf16_and_half_the_bytes():
    m = _model()
    opt = make_adamw(m.parameters(), state="bf16", lr=1e-3)
    assert isinstance(opt, BF16StateAdamW)
    _train(m, opt, steps=1)
    for p in m.parameters():
        st = opt.state[p]
        assert st["exp_avg"].dtype == st["exp_avg_sq"].dtype == torch.bfloat16
        assert st["exp_avg"].nbytes * 2 == p.nbytes
    with pytest.raises(ValueError, match="--optimizer-state must be one of"):
        make_adamw(m.parameters(), state="fp16")


@pytest.mark.parametrize("value", [1.0 + 1 / 512, -(1.0 + 3 / 1024), 3.0e-8 * (1 + 1 / 300), 123.456])
def test_stochastic_rounding_is_unbiased_and_picks_a_neighbour(value):
    x = torch.full((400_000,), value, dtype=torch.float32)
    out = torch.empty_like(x, dtype=torch.bfloat16)
    stochastic_round_bf16_(out, x, torch.Generator().manual_seed(0))
    lo = torch.tensor(value).to(torch.bfloat16)  # round-to-nearest: one of the two neighbours
    spacing = 2 ** (math.floor(math.log2(abs(value))) - 7)  # bf16 keeps 8 significant bits
    assert set(out.float().abs().unique().tolist()) <= {abs(float(lo)), abs(float(lo)) + spacing,
                                                        abs(float(lo)) - spacing}
    assert len(out.unique()) == 2
    # mean within 4 standard errors of the exact value (rounding up with probability = the remainder)
    assert abs(out.double().mean().item() - value) < 4 * spacing / math.sqrt(len(x)) + 1e-12 * abs(value)


def test_stochastic_rounding_keeps_exact_values_and_infinities():
    x = torch.tensor([0.0, -0.0, 1.0, -2.5, 65280.0, float("inf"), float("-inf")])
    out = torch.empty_like(x, dtype=torch.bfloat16)
    stochastic_round_bf16_(out, x)
    assert out.float().tolist() == x.tolist()
    nan = torch.tensor([float("nan")])
    out1 = torch.empty_like(nan, dtype=torch.bfloat16)
    stochastic_round_bf16_(out1, nan)
    assert torch.isnan(out1).all()


def test_second_moment_keeps_tracking_where_round_to_nearest_freezes():
    # v_t = beta2 v + (1 - beta2) g^2 with a constant g: each step changes v by ~0.1 % once it is near g^2,
    # under bf16's 0.4 % spacing. Round-to-nearest stalls far below g^2; stochastic rounding follows the exact EMA.
    p = torch.nn.Parameter(torch.zeros(20_000))
    opt = BF16StateAdamW([p], lr=0.0, betas=(0.9, 0.999), weight_decay=0.0, seed=1)
    rtn = torch.zeros(20_000, dtype=torch.bfloat16)
    steps = 3000
    for _ in range(steps):
        p.grad = torch.ones_like(p)
        opt.step()
        rtn = (rtn.float() * 0.999 + 0.001).to(torch.bfloat16)
    exact = 1 - 0.999 ** steps
    got = opt.state[p]["exp_avg_sq"].double().mean().item()
    assert got == pytest.approx(exact, rel=0.01)
    assert rtn.float().mean().item() < 0.8 * exact  # what the test guards against


def test_bf16_state_trains_like_fp32():
    losses = {}
    for name in ("fp32", "bf16"):
        m = _model(1)
        opt = make_adamw(m.parameters(), state=name, lr=1e-2, weight_decay=0.01)
        g = torch.Generator().manual_seed(5)
        x = torch.randn(256, 8, generator=g)
        y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
        for _ in range(150):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
        losses[name] = loss.item()
    assert losses["fp32"] < 0.3
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=0.05)


def test_resume_keeps_bf16_state_and_continues_identically():
    m1 = _model()
    o1 = BF16StateAdamW(m1.parameters(), lr=1e-3)
    _train(m1, o1, steps=3)
    m2 = _model()
    m2.load_state_dict(m1.state_dict())
    o2 = BF16StateAdamW(m2.parameters(), lr=1e-3)
    o2.load_state_dict(o1.state_dict())
    assert all(st["exp_avg"].dtype == torch.bfloat16 for st in o2.state.values())
    torch.manual_seed(123)  # the rounding noise does not come from the global RNG
    _train(m1, o1, steps=2)
    torch.manual_seed(456)
    _train(m2, o2, steps=2)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_rounding_noise_depends_on_seed_step_and_parameter_only():
    # what keeps DDP ranks in sync: same seed, same gradients -> same update, whatever the global RNG did
    results = []
    for global_seed, seed in ((1, 0), (2, 0), (1, 5)):
        torch.manual_seed(global_seed)
        m = _model()
        torch.manual_seed(global_seed)
        _train(m, BF16StateAdamW(m.parameters(), lr=1e-3, seed=seed), steps=3)
        results.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(results[0], results[1])
    assert not torch.equal(results[0], results[2])
