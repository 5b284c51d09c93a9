"""Reference-code compatibility: state-dict conversion and loading of reference checkpoints.

The reference implementation (Crossformer-derived) names its modules differently; this module maps our
state-dict keys to the reference layout and back, derives our hyperparameters from a reference config
(``official_reference/config.json`` format) plus the tensor shapes, and builds our models in ``mode="official"``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from safetensors.torch import load_file

__all__ = [
    "to_reference_key",
    "to_reference_state_dict",
    "from_reference_state_dict",
    "reference_positions",
    "config_from_reference",
    "load_reference",
    "REFERENCE_BUFFERS",
]

#: reference keys that are buffers, not weights
REFERENCE_BUFFERS = re.compile(r"(\.pe_t|\.pe_3d|^dec_in)$")

_PREFIX_RULES: list[tuple[str, str]] = [
    (r"^encoder\.value_embedding\.", "enc_value_embedding."),
    (r"^encoder\.blocks\.(\d+)\.merge\.proj\.", r"encoder.encode_blocks.\1.merge_layer.linear_trans."),
    (r"^encoder\.blocks\.(\d+)\.merge\.norm\.", r"encoder.encode_blocks.\1.merge_layer.norm."),
    (r"^encoder\.blocks\.(\d+)\.tsa\.", r"encoder.encode_blocks.\1.encode_layers.0."),
    (r"^decoder\.layers\.(\d+)\.tsa\.", r"decoder.decode_layers.\1.self_attention."),
    (r"^decoder\.layers\.(\d+)\.", r"decoder.decode_layers.\1."),
    (r"^final_layer\.linear\.", "classification_head.classification_layer."),
]
_SEGMENT_RULES: list[tuple[str, str]] = [
    (r"\.time_attn\.", ".time_attention."),
    (r"\.channel_attn\.", ".dim_attention."),
    (r"\.cross_attn\.", ".cross_attention."),
    (r"\.q_proj\.", ".query_projection."),
    (r"\.k_proj\.", ".key_projection."),
    (r"\.v_proj\.", ".value_projection."),
    (r"\.out_proj\.", ".out_projection."),
    (r"\.ffn1\.", ".MLP1."),
    (r"\.ffn2\.", ".MLP2."),
    (r"\.norm_q\.", ".norm1_q."),
    (r"\.norm_kv\.", ".norm1_kv."),
    (r"\.mlp\.", ".MLP."),
    (r"\.pred\.", ".linear_pred."),
    (r"(experts\.\d+|shared_expert)\.fc1\.", r"\1.net.0."),
    (r"(experts\.\d+|shared_expert)\.fc2\.", r"\1.net.2."),
    (r"\.fc1\.", ".0."),
    (r"\.fc2\.", ".2."),
]


def to_reference_key(key: str) -> str:
    """Our state-dict key -> the reference code's key."""
    for pat, rep in _PREFIX_RULES:
        key, n = re.subn(pat, rep, key)
        if n:
            break
    for pat, rep in _SEGMENT_RULES:
        key = re.sub(pat, rep, key)
    return key


def to_reference_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our model's weights in the reference layout (buffers such as ``pe_t`` are not included)."""
    return {to_reference_key(k): v for k, v in model.state_dict().items()}


def from_reference_state_dict(
    model: torch.nn.Module, reference: Mapping[str, torch.Tensor], *, strict: bool = True
) -> torch.nn.Module:
    """Load reference-layout weights into ``model`` (buffers ignored); mismatches raise with the key lists."""
    own = model.state_dict()
    mapping = {to_reference_key(k): k for k in own}
    ref_keys = {k for k in reference if not REFERENCE_BUFFERS.search(k)}
    missing = sorted(r for r in mapping if r not in reference)
    unexpected = sorted(ref_keys - set(mapping))
    shapes = sorted(
        f"{r}: reference {tuple(reference[r].shape)} vs ours {tuple(own[o].shape)}"
        for r, o in mapping.items()
        if r in reference and tuple(reference[r].shape) != tuple(own[o].shape)
    )
    if (missing or unexpected) and strict or shapes:
        raise ValueError(
            "reference state dict does not match the model built from its config:\n"
            + "".join(f"  missing: {k}\n" for k in missing)
            + "".join(f"  unexpected: {k}\n" for k in unexpected)
            + "".join(f"  shape: {k}\n" for k in shapes)
        )
    state = {o: reference[r].to(own[o].dtype) for r, o in mapping.items() if r in reference}
    model.load_state_dict(state, strict=strict)
    return model


def _split_pair(name: str) -> list[str]:
    return [p for p in re.split(r"\s*-\s*", name.strip()) if p]


def reference_positions(channels: Sequence[str], montage: str) -> np.ndarray:
    """Channel positions as the reference code computes them: MNE standard montage positions
    (``get_positions()["ch_pos"]``), a bipolar channel at the midpoint of its two electrodes; names are
    matched case-insensitively. Newer MNE names ``standard_1020``/``standard_1005`` ``colin27_*``."""
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            mt = mne.channels.make_standard_montage(montage)
        except ValueError:
            mt = mne.channels.make_standard_montage(montage.replace("standard_", "colin27_"))
    table = {k.lower(): np.asarray(v, dtype=np.float64) for k, v in mt.get_positions()["ch_pos"].items()}
    out, unknown = [], []
    for ch in channels:
        parts = _split_pair(ch)
        try:
            out.append(np.mean([table[p.lower()] for p in parts], axis=0))
        except KeyError:
            unknown.append(ch)
    if unknown:
        raise ValueError(f"channels {unknown} are not in MNE montage {montage!r}")
    return np.stack(out)


def _block_indices(keys, pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})


def config_from_reference(config: dict, state: Mapping[str, torch.Tensor], *, stage: int = 2) -> dict:
    """Our constructor arguments for a reference model, from its config and tensor shapes."""
    keys = list(state)
    d_model = state["enc_value_embedding.linear.weight"].shape[0]
    blocks = _block_indices(keys, r"encoder\.encode_blocks\.(\d+)\.")
    merge, experts = [], []
    d_ff = expert_hidden = shared_hidden = None
    for i in blocks:
        p = f"encoder.encode_blocks.{i}."
        norm = state.get(p + "merge_layer.norm.weight")
        merge.append(1 if norm is None else norm.shape[0] // d_model)
        gate = state.get(p + "encode_layers.0.MLP1.gate.weight")
        experts.append(0 if gate is None else gate.shape[0])
        if gate is None:
            d_ff = state[p + "encode_layers.0.MLP1.0.weight"].shape[0] // 2
        else:
            expert_hidden = state[p + "encode_layers.0.MLP1.experts.0.net.0.weight"].shape[0] // 2
            shared_hidden = state[p + "encode_layers.0.MLP1.shared_expert.net.0.weight"].shape[0] // 2
    if stage == 1 and d_ff is None:
        d_ff = state["decoder.decode_layers.0.MLP.0.weight"].shape[0] // 2
    d_ff = d_ff or config.get("d_ff", d_model)
    cfg_merge = config.get("merge")
    if cfg_merge is not None and list(cfg_merge) != merge:
        raise ValueError(f"config merge {cfg_merge} disagrees with the state dict ({merge})")
    cfg_exp = config.get("experts")
    if cfg_exp is not None and list(cfg_exp) != experts:
        raise ValueError(f"config experts {cfg_exp} disagrees with the state dict ({experts})")
    channels = config["channels"]
    positions = reference_positions(channels, config.get("montage", "standard_1020"))
    grid = config.get("position_grid")
    if grid is not None:
        from .embed import quantise_positions

        ours = quantise_positions(torch.as_tensor(positions), config.get("grid_size", 50)).numpy()
        if not np.array_equal(ours, np.asarray(grid)):
            warnings.warn("computed position grid differs from config['position_grid']; using the config's grid")
        positions = np.asarray(grid, dtype=np.float64)  # integer grid: quantising it again is the identity
    out = dict(
        d_model=d_model,
        n_heads=int(config["heads"]),
        d_ff=int(d_ff),
        merge_factors=merge,
        n_experts=experts,
        expert_hidden=int(expert_hidden or config.get("hidden", d_model)),
        shared_hidden=int(shared_hidden or config.get("hidden_shared", d_model)),
        mode="official",
        dropout=0.0,
        ch_names=list(channels),
        positions=positions.tolist(),
        n_chans=len(channels),
        n_times=config.get("out_len"),
    )
    if stage == 2:
        w = state["classification_head.classification_layer.weight"]
        groups = config.get("groups")
        c_layers = int(config.get("c_layers", len(blocks)))
        if groups is None:
            groups = "functional"
            n_groups = w.shape[1] // (d_model * (c_layers + 1))
        else:
            n_groups = len(groups)
        if w.shape[1] != (c_layers + 1) * n_groups * d_model:
            raise ValueError(
                f"classification layer has {w.shape[1]} inputs; expected (c_layers+1)*groups*d_model = "
                f"{(c_layers + 1) * n_groups * d_model}"
            )
        out.update(n_outputs=w.shape[0], groups=groups, n_pooled_blocks=c_layers)
    return out


def load_reference(
    weights_path: str | Path, config_path: str | Path, stage: int = 2, **overrides
) -> torch.nn.Module:
    """Load a reference checkpoint into our modules in ``official`` mode.

    Parameters
    ----------
    weights_path : path
        safetensors file with the reference state dict.
    config_path : path
        JSON config in the format of ``official_reference/config.json``.
    stage : {1, 2}
        1 = pretraining model (:class:`~neuript.model.pretrain.NeurIPTPretrain`),
        2 = fine-tuning model (:class:`~neuript.model.classifier.NeurIPT`).
    **overrides
        Constructor arguments to override.

    Returns
    -------
    The model in eval mode.
    """
    config = json.loads(Path(config_path).read_text())
    state = load_file(str(weights_path))
    kwargs = config_from_reference(config, state, stage=stage)
    kwargs.update(overrides)
    if stage == 2:
        from .classifier import NeurIPT

        model = NeurIPT(**kwargs)
    elif stage == 1:
        from .pretrain import NeurIPTPretrain

        model = NeurIPTPretrain(**kwargs)
    else:
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    from_reference_state_dict(model, state)
    return model.eval()
