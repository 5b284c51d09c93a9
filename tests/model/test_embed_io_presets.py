"""Electrode encodings, checkpoint I/O and preset sizes."""

import json
import shutil

import pytest
import torch

from neuript.model import CheckpointMismatchError, NeurIPT, NeurIPTPretrain
from neuript.model.embed import ElectrodeEncoding, axis_dims, quantise_positions
from neuript.model.presets import PRESETS, build, parameter_counts

TINY = dict(d_model=32, n_heads=4, d_ff=32, expert_hidden=16, shared_hidden=32)


def test_axis_dims():
    assert axis_dims(768) == (256, 256, 256)
    assert axis_dims(32) == (10, 10, 12)
    assert axis_dims(30) == (10, 10, 10) or axis_dims(30) == (8, 8, 14)
    assert sum(axis_dims(50)) == 50


def test_grid_depends_on_montage_continuous_does_not():
    pos = torch.randn(8, 3) * 0.05
    grid = ElectrodeEncoding(d_model=24, mode="grid")
    cont = ElectrodeEncoding(d_model=24, mode="continuous")
    sub = [1, 3, 4]
    torch.testing.assert_close(cont(pos)[sub], cont(pos[sub]))
    assert not torch.allclose(grid(pos)[sub], grid(pos[sub]))
    q = quantise_positions(pos)
    assert q.min() == 0 and q.max() == 49 and (q.min(0).values == 0).all()


def test_save_load_round_trip(tmp_path):
    m = NeurIPT(n_outputs=3, n_chans=4, positions=torch.randn(4, 3) * 0.05, groups=[[0, 1], [2, 3]], **TINY).eval()
    m.save_pretrained(tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "neuript.json"]
    m2 = NeurIPT.from_pretrained(tmp_path / "ck").eval()
    x = torch.randn(2, 4, 64)
    torch.testing.assert_close(m(x), m2(x))
    assert m2.groups == [[0, 1], [2, 3]]

    p = NeurIPTPretrain(positions=torch.randn(4, 3) * 0.05, **TINY).eval()
    p.save_pretrained(tmp_path / "pt")
    p2 = NeurIPTPretrain.from_pretrained(tmp_path / "pt").eval()
    mask = torch.rand(2, 4, 64) < 0.3
    torch.testing.assert_close(p(x, mask=mask)["pred"], p2(x, mask=mask)["pred"])


def test_mismatched_checkpoint_lists_keys(tmp_path):
    m = NeurIPT(n_outputs=3, n_chans=4, positions=torch.randn(4, 3) * 0.05, groups="mean", **TINY)
    m.save_pretrained(tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    cfg["n_experts"] = [0, 0, 2, 4, 4, 4]
    cfg["n_outputs"] = 5
    (tmp_path / "ck" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError) as err:
        NeurIPT.from_pretrained(tmp_path / "ck")
    msg = str(err.value)
    assert "final_layer.linear.weight" in msg and "encoder.blocks.5.tsa.ffn1.gate.weight" in msg
    assert "missing keys" in msg or "unexpected keys" in msg


def test_preset_parameter_counts():
    pos = torch.randn(20, 3) * 0.05
    groups = [[0, 4, 12, 16], [8, 9, 10, 11, 13, 14, 17, 18], [3, 7, 15, 19], [1, 2, 8], [5, 6, 11]]
    base = build("base", n_outputs=6, positions=pos, groups=groups)
    counts = parameter_counts(base)
    assert counts["total"] == 92_373_286  # = sum of weight shapes in stage2_paper_keys.tsv
    assert round(counts["active"] / 1e6, 1) == 73.5
    pre = build("base", pretrain=True, positions=pos)
    assert parameter_counts(pre)["total"] == 179_110_439  # = stage1_paper_keys.tsv
    tiny = parameter_counts(build("tiny", n_outputs=6, positions=pos, groups=groups))
    assert tiny == {"total": 183_174, "active": 145_030}  # d 32 / 2 heads (docs/model.md)
    assert parameter_counts(build("tiny", pretrain=True, positions=pos))["total"] == 335_079
    assert PRESETS["tiny"]["d_model"] // PRESETS["tiny"]["n_heads"] >= 16  # CPU flash kernel: head dim >= 16
    small = parameter_counts(build("small", n_outputs=6, positions=pos, groups=groups))
    assert tiny["total"] < small["total"] < counts["total"]
    assert set(PRESETS) == {"tiny", "small", "base"}


def test_damaged_checkpoints_give_one_clear_error(tmp_path):
    m = NeurIPT(n_outputs=2, n_chans=4, positions=torch.randn(4, 3) * 0.05, groups="mean", **TINY)
    m.save_pretrained(tmp_path / "ok")
    for name, damage in (("truncated", lambda d: (d / "model.safetensors").write_bytes(
                              (d / "model.safetensors").read_bytes()[:1000])),
                         ("fake", lambda d: (d / "model.safetensors").write_bytes(b"not a safetensors file")),
                         ("badjson", lambda d: (d / "config.json").write_text("{not json")),
                         ("unknownkey", lambda d: (d / "config.json").write_text(
                              (d / "config.json").read_text().replace('"d_ff"', '"d_fff"')))):
        d = tmp_path / name
        shutil.copytree(tmp_path / "ok", d)
        damage(d)
        with pytest.raises(CheckpointMismatchError) as err:
            NeurIPT.from_pretrained(d)
        assert str(d) in str(err.value), name
    wide = NeurIPT(n_outputs=2, n_chans=4, positions=torch.randn(4, 3) * 0.05, groups="mean",
                   **{**TINY, "d_model": TINY["d_model"] * 2, "d_ff": TINY["d_ff"] * 2})
    with pytest.raises(CheckpointMismatchError, match="tensor\\(s\\) differ; likely cause: the checkpoint is of "
                                                      "another model size"):
        from neuript.model.io import check_state_dict

        check_state_dict(wide, m.state_dict(), source="x")


def test_a_cross_validation_run_is_not_taken_for_one_model(tmp_path):
    from neuript.model.io import CONFIG_NAME, WEIGHTS_NAME, locate_artifact

    for fold in ("fold-0", "fold-1"):
        model = tmp_path / "cv" / fold / "seed0" / "model"
        model.mkdir(parents=True)
        (model / WEIGHTS_NAME).write_bytes(b"")
        (model / CONFIG_NAME).write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"cross-validation run: it holds 2 models.*fold-0/seed0/model"):
        locate_artifact(tmp_path / "cv")
    assert locate_artifact(tmp_path / "cv" / "fold-1" / "seed0" / "model").name == "model"
