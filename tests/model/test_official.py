"""Reference-code compatibility: fixtures to 1e-4 and state-dict round trips for other configurations."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from neuript.model import NeurIPT, NeurIPTPretrain
from neuript.official import load_reference, reference_positions, to_reference_state_dict


def _gather(pred, mask0):
    """Reference layout of stage-1 ``pred``: P (B,T,D)[M (B,T,D)].view(B, -1, D)."""
    b, c, _ = pred.shape
    return pred.transpose(1, 2)[mask0.transpose(1, 2)].view(b, -1, c)


def test_stage2_logits_match_reference(official_dir):
    m = load_reference(official_dir / "stage2_weights.safetensors", official_dir / "config.json", stage=2)
    io = load_file(str(official_dir / "stage2_io.safetensors"))
    with torch.no_grad():
        logits = m(io["x"].transpose(1, 2))
    assert logits.shape == io["logits"].shape
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)


def _stage1_pred(official_dir):
    m = load_reference(official_dir / "stage1_weights.safetensors", official_dir / "config.json", stage=1)
    io = load_file(str(official_dir / "stage1_io.safetensors"))
    masks = [io[f"mask_info_{i}"] for i in range(6)]
    with torch.no_grad():
        out = m(io["x"].transpose(1, 2), mask=masks)
    return _gather(out["pred"], masks[0]), io["pred"], m


def test_stage1_decoder_query_matches_dec_in(official_dir):
    _, _, m = _stage1_pred(official_dir)
    dec_in = load_file(str(official_dir / "stage1_weights.safetensors"))["dec_in"]
    q = m.decoder_query(dec_in.shape[1], dec_in.shape[2], m.positions)
    torch.testing.assert_close(q, dec_in[0], atol=1e-6, rtol=0)


def test_stage1_pred_matches_reference(official_dir):
    pred, ref, _ = _stage1_pred(official_dir)
    assert pred.shape == ref.shape
    torch.testing.assert_close(pred, ref, atol=1e-4, rtol=0)


def test_position_grid_matches_reference(official_dir):
    from neuript.model.embed import quantise_positions

    cfg = json.loads((official_dir / "config.json").read_text())
    pos = reference_positions(cfg["channels"], cfg["montage"])
    grid = quantise_positions(torch.as_tensor(pos))
    assert grid.tolist() == cfg["position_grid"]


# ---------------------------------------------------------------- other configurations, round trip
OTHER = dict(
    d_model=24, n_heads=3, d_ff=20, merge_factors=[2, 1, 3], n_experts=[1, 3, 0],
    expert_hidden=8, shared_hidden=12, mode="official", dropout=0.0,
)
CHANNELS = ["Fp1", "Fz", "C3-P3", "Cz", "O2", "T8", "Pz"]


def _write_reference(tmp_path, model, *, stage, n_outputs=None, groups=None, c_layers=None):
    state = to_reference_state_dict(model)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    cfg = dict(
        d_model=OTHER["d_model"], d_ff=OTHER["d_ff"], heads=OTHER["n_heads"], hidden=OTHER["expert_hidden"],
        hidden_shared=OTHER["shared_hidden"], data_dim=len(CHANNELS), out_len=50, experts=OTHER["n_experts"],
        merge=OTHER["merge_factors"], ncls=n_outputs, c_layers=c_layers, channels=CHANNELS,
        montage="standard_1005", groups=groups,
    )
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    return tmp_path / "w.safetensors", tmp_path / "c.json"


def test_stage2_round_trip_other_config(tmp_path):
    torch.manual_seed(0)
    groups = [[0, 1], [2, 3, 6], [4, 5]]
    pos = reference_positions(CHANNELS, "standard_1005")
    ours = NeurIPT(n_outputs=3, positions=pos, groups=groups, n_pooled_blocks=2, **OTHER).eval()
    w, c = _write_reference(tmp_path, ours, stage=2, n_outputs=3, groups=groups, c_layers=2)
    back = load_reference(w, c, stage=2)
    assert back.encoder.cfg.merge_factors == OTHER["merge_factors"]
    assert back.encoder.cfg.n_experts == OTHER["n_experts"]
    x = torch.randn(2, len(CHANNELS), 50)
    with torch.no_grad():
        torch.testing.assert_close(back(x), ours(x), atol=1e-5, rtol=0)


def test_stage1_round_trip_other_config(tmp_path):
    torch.manual_seed(1)
    pos = reference_positions(CHANNELS, "standard_1005")
    ours = NeurIPTPretrain(positions=pos, **OTHER).eval()
    w, c = _write_reference(tmp_path, ours, stage=1)
    back = load_reference(w, c, stage=1)
    x = torch.randn(2, len(CHANNELS), 50)
    mask = torch.rand(2, len(CHANNELS), 50) < 0.5
    with torch.no_grad():
        torch.testing.assert_close(back(x, mask=mask)["pred"], ours(x, mask=mask)["pred"], atol=1e-5, rtol=0)


def test_reference_shape_mismatch_is_reported(tmp_path):
    pos = reference_positions(CHANNELS, "standard_1005")
    ours = NeurIPT(n_outputs=3, positions=pos, groups=[[0, 1], [2, 3, 6], [4, 5]], n_pooled_blocks=2, **OTHER)
    w, c = _write_reference(tmp_path, ours, stage=2, n_outputs=3, groups=[[0, 1], [2, 3, 6], [4, 5]], c_layers=2)
    cfg = json.loads(c.read_text())
    cfg["c_layers"] = 3  # head width no longer matches
    c.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="classification layer"):
        load_reference(w, c, stage=2)
