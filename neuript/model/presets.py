"""Size presets. ``neuript_base`` is the paper's model (spec §2-3)."""

from __future__ import annotations

from .classifier import NeurIPT
from .pretrain import NeurIPTPretrain

__all__ = ["PRESETS", "preset_config", "neuript_tiny", "neuript_small", "neuript_base", "build", "parameter_counts"]

#: encoder hyperparameters per preset (all use merge (1,4,1,2,1,2) and experts (0,0,2,4,4,6))
PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=32, n_heads=2, d_ff=32, expert_hidden=24, shared_hidden=32),
    "small": dict(d_model=256, n_heads=8, d_ff=256, expert_hidden=192, shared_hidden=256),
    "base": dict(d_model=768, n_heads=8, d_ff=768, expert_hidden=512, shared_hidden=768),
}


def preset_config(preset: str, overrides: dict | None = None) -> dict:
    """Encoder hyperparameters of preset ``preset`` (``"tiny"`` or ``"neuript_tiny"``), with ``overrides``."""
    name = preset.removeprefix("neuript_")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {['neuript_' + p for p in PRESETS]}")
    return {**PRESETS[name], **(overrides or {})}


def build(name: str, *, pretrain: bool = False, **kwargs):
    """Build preset ``name``; ``pretrain=True`` gives :class:`NeurIPTPretrain`, else :class:`NeurIPT`.
    Keyword arguments override the preset / pass the channel description."""
    cls = NeurIPTPretrain if pretrain else NeurIPT
    return cls(**preset_config(name, kwargs))


def neuript_tiny(*, pretrain: bool = False, **kwargs):
    """d_model 32, 2 heads (head dim 16: the CPU flash-attention kernel is several times slower at head dim 8);
    sized for CPU demos and smoke runs."""
    return build("tiny", pretrain=pretrain, **kwargs)


def neuript_small(*, pretrain: bool = False, **kwargs):
    """d_model 256, 8 heads."""
    return build("small", pretrain=pretrain, **kwargs)


def neuript_base(*, pretrain: bool = False, **kwargs):
    """Paper size: d_model 768, 8 heads, d_ff 768, 6 blocks, expert hidden 512, shared hidden 768."""
    return build("base", pretrain=pretrain, **kwargs)


def parameter_counts(model) -> dict[str, int]:
    """Total and *active* parameters (a token passes the shared expert, the gate and ``top_k`` routed experts
    of each MoE; the other routed experts are inactive for it)."""
    from .moe import MixtureOfExperts

    total = sum(p.numel() for p in model.parameters())
    inactive = 0
    for mod in model.modules():
        if isinstance(mod, MixtureOfExperts):
            per_expert = sum(p.numel() for p in mod.experts[0].parameters())
            inactive += (mod.n_experts - mod.top_k) * per_expert
    return {"total": total, "active": total - inactive}
