"""`neuript export`: a fine-tuned classifier as ONNX (run in onnxruntime) and as a torch.export archive, equal to
the PyTorch model on real EEGMAT windows at several batch sizes, in paper and official mode; the export-friendly
(dense) MoE routing equals the normal eval routing; exporting leaves the PyTorch model's outputs unchanged."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from neuript.data.preprocess import alaw
from neuript.data.store import WindowStore
from neuript.inference import load_classifier
from neuript.inference.export import ONNX_INSTALL, export_classifier, load_pt2
from neuript.model.moe import MixtureOfExperts, dense_routing

TOL = 1e-4  # the contract: |ONNX - PyTorch| logits within 1e-4


def _cli(*args):
    from neuript.cli import _register, app

    _register()
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def windows(stores) -> np.ndarray:
    """Model input for 10 real EEGMAT windows (store µV → A-law), both classes."""
    st = WindowStore.open(stores["eegmat"])
    labels = st.windows["label"].to_numpy()
    idx = np.concatenate([np.flatnonzero(labels == 0)[:5], np.flatnonzero(labels == 1)[:5]])
    return np.ascontiguousarray(alaw(st.read(idx)), dtype=np.float32)


@pytest.fixture(scope="module")
def cli_onnx(finetuned, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    res = _cli("export", finetuned, "--format", "onnx", "--out", out)
    assert res.exit_code == 0, res.output
    return out, res.output


def _ort_logits(path, x: np.ndarray, batch_size: int) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"x": x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)])


def _torch_logits(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def test_cli_onnx_matches_pytorch_on_real_windows_at_batch_1_and_5(cli_onnx, finetuned, windows):
    path, output = cli_onnx
    assert "verified on 8 windows" in output and "max |exported - PyTorch|" in output
    model, _ = load_classifier(finetuned)
    assert model.encoder.cfg.mode == "paper"
    for bs in (1, 5):
        diff = np.abs(_ort_logits(path, windows, bs) - _torch_logits(model, windows, bs)).max()
        print(f"paper, batch {bs}: max |onnx - torch| = {diff:.2e}")
        assert diff <= TOL
    import onnx

    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == "x" and graph.output[0].name == "logits"
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 20, 320]


def test_onnx_metadata_carries_the_input_contract(cli_onnx, finetuned):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(cli_onnx[0])).metadata_props}
    model, meta = load_classifier(finetuned)
    assert json.loads(props["ch_names"]) == list(model.ch_names)
    assert float(props["sfreq"]) == 64.0 and int(props["n_times"]) == 320 and int(props["n_chans"]) == 20
    assert json.loads(props["class_names"]) == ["rest", "task"] and props["output_activation"] == "sigmoid"
    assert json.loads(props["input_transform"])["name"] == "alaw"
    assert json.loads(props["preprocessing"])["reference"] == "tcp" and props["mode"] == "paper"
    assert np.allclose(json.loads(props["positions"]), model.positions.numpy())


def test_official_mode_onnx_matches_pytorch(finetuned, windows, tmp_path):
    res = export_classifier(finetuned, tmp_path / "official.onnx", mode="official", windows=windows)
    assert res["mode"] == "official" and res["max_abs_diff"] <= TOL and res["n_windows_checked"] == 10
    model, _ = load_classifier(finetuned, mode="official")
    paper, _ = load_classifier(finetuned)
    for bs in (1, 5):
        ref = _torch_logits(model, windows, bs)
        diff = np.abs(_ort_logits(res["path"], windows, bs) - ref).max()
        print(f"official, batch {bs}: max |onnx - torch| = {diff:.2e}")
        assert diff <= TOL
    # official routing (full softmax gates, capacity) is another function than paper routing
    assert np.abs(_torch_logits(paper, windows, 5) - _torch_logits(model, windows, 5)).max() > 1e-6


def test_torch_export_archive_and_pytorch_outputs_unchanged(finetuned, windows, tmp_path):
    model, _ = load_classifier(finetuned)
    x = torch.from_numpy(windows)
    with torch.no_grad():
        before = model(x)
    rng = torch.random.get_rng_state()
    res = export_classifier(model, tmp_path / "model.pt2", fmt="pt2", windows=windows)
    assert res["max_abs_diff"] <= TOL
    module, contract = load_pt2(res["path"])
    assert json.loads(contract["class_names"]) == ["rest", "task"]
    with torch.no_grad():
        assert module(x[:1]).shape == (1, 1) and module(x[:7]).shape == (7, 1)
    # the export path leaves the model as it was: eval outputs, mode, routing switch, global RNG
    assert not model.training and torch.equal(torch.random.get_rng_state(), rng)
    assert all(not m.dense for m in model.modules() if isinstance(m, MixtureOfExperts))
    with torch.no_grad():
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("routing", ["paper", "official"])
def test_dense_routing_equals_sparse_eval_routing(routing):
    torch.manual_seed(0)
    moe = MixtureOfExperts(d_model=8, n_experts=4, expert_hidden=6, shared_hidden=8, routing=routing).eval()
    with torch.no_grad():
        moe.gate.weight.mul_(8.0)  # peaked gates: experts overflow their capacity in official mode
        x = torch.randn(3, 50, 8)
        if routing == "official":
            _, top_idx, _ = moe.route(x.reshape(-1, 8))
            assert torch.bincount(top_idx.reshape(-1), minlength=4).max() > 150 // 4  # some tokens are dropped
        y, aux = moe(x)
        with dense_routing(moe):
            assert moe.dense
            y_dense, aux_dense = moe(x)
        assert not moe.dense
    torch.testing.assert_close(y_dense, y, rtol=0, atol=1e-6)
    torch.testing.assert_close(aux_dense, aux)
    moe.train()
    with dense_routing(moe):  # training keeps the sparse dispatch (dense is an eval-only export path)
        torch.manual_seed(1)
        y_train_dense, _ = moe(x)
    torch.manual_seed(1)
    torch.testing.assert_close(y_train_dense, moe(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_dense_routing_whole_model_on_real_windows(finetuned, windows, mode):
    model, _ = load_classifier(finetuned, mode=mode)
    x = torch.from_numpy(windows)
    with torch.no_grad():
        ref = model(x)
        with dense_routing(model):
            dense = model(x)
    torch.testing.assert_close(dense, ref, rtol=0, atol=1e-5)


def test_missing_onnx_dependency_is_one_line_with_the_install_command(finetuned, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(ImportError) as err:
        export_classifier(finetuned, tmp_path / "m.onnx")
    assert ONNX_INSTALL in str(err.value) and "onnxruntime" in str(err.value) and "\n" not in str(err.value)
    from neuript import cli

    monkeypatch.setattr(sys, "argv", ["neuript", "export", str(finetuned), "--out", str(tmp_path / "m.onnx")])
    with pytest.raises(SystemExit) as code:
        cli.main()
    assert code.value.code == 1
    err_text = capsys.readouterr().err
    assert "pip install 'neuript[onnx]'" in err_text and "Traceback" not in err_text
    assert not (tmp_path / "m.onnx").exists()


def test_bad_format_and_mode_are_refused(finetuned):
    with pytest.raises(ValueError, match="format"):
        export_classifier(finetuned, fmt="tflite")
    with pytest.raises(ValueError, match="mode"):
        export_classifier(finetuned, mode="fast")
