"""One model artifact: written by save_pretrained / fine-tuning / pretraining, read by from_pretrained, predict,
embed and streaming; release 0.1.0 run directories still load; a hub cache round trip works offline."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from neuript.inference import embed, load_classifier, predict
from neuript.inference.predict import predict_file
from neuript.model import NeurIPT, NeurIPTPretrain
from neuript.model.io import ARTIFACT_FORMAT, ARTIFACT_VERSION, read_metadata

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "release_0.1.0"
SAMPLE = REPO / "neuript" / "sample_data" / "eegmat"
TINY = {"d_model": 16, "n_heads": 2, "d_ff": 16, "expert_hidden": 8, "shared_hidden": 16,
        "merge_factors": [1, 4, 1, 2], "n_experts": [0, 0, 2, 4]}


def _eeg_raw(name="Subject21_1.edf"):
    raw = mne.io.read_raw_edf(SAMPLE / name, preload=True, verbose="error")
    raw.drop_channels(["EEG A2-A1", "ECG ECG"])
    return raw


def _cli(*args):
    from neuript.cli import _register, app

    _register()
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


# ---------------------------------------------------------------------------------------------- old releases
def test_release_010_finetune_run_loads_and_predicts_as_it_did():
    """A run directory written by release 0.1.0 (committed fixture) loads and gives the predictions that release
    wrote for the same recording."""
    model, meta = load_classifier(FIXTURES / "finetune_run")
    assert meta["format"] == ARTIFACT_FORMAT and meta["upgraded_from"] == "0.1.0"
    assert meta["label_names"] == {"0": "rest", "1": "task"} and meta["preprocessing"]["reference"] == "tcp"
    assert meta["provenance"]["seed"] == 0 and meta["input_transform"] == {"name": "alaw", "A": 0.25}
    table = predict(model, SAMPLE / "Subject21_1.edf")
    old = pd.read_csv(FIXTURES / "Subject21_1.predictions.csv")
    assert len(table) == len(old)
    np.testing.assert_allclose(table["prob_task"], old["prob_task"], atol=2e-6)
    assert list(table["predicted"]) == list(old["predicted"])


def test_release_010_pretraining_export_loads_into_a_classifier():
    pre = NeurIPTPretrain.from_pretrained(FIXTURES / "pretrain_run")  # run directory → its model/
    assert read_metadata(FIXTURES / "pretrain_run" / "model")["kind"] == "pretrain"
    clf = NeurIPT.from_pretrain(pre, n_outputs=1, ch_names=load_classifier(FIXTURES / "finetune_run")[0].ch_names)
    for k, v in pre.encoder.state_dict().items():
        torch.testing.assert_close(clf.encoder.state_dict()[k], v)
    with pytest.raises(ValueError, match="fixes"):
        NeurIPT.from_pretrain(pre, n_outputs=1, encoder_overrides={"d_model": 64})


# ---------------------------------------------------------------------------------------------- save_pretrained
def test_model_saved_in_python_runs_with_neuript_predict(tmp_path):
    raw = _eeg_raw()
    model = NeurIPT(n_outputs=2, n_times=320, sfreq=64, chs_info=raw.info["chs"], **TINY).eval()
    model.save_pretrained(tmp_path / "m", label_names={0: "rest", 1: "task"})
    meta = json.loads((tmp_path / "m" / "neuript.json").read_text())
    assert meta["format_version"] == ARTIFACT_VERSION and meta["n_chans"] == 19 and meta["sfreq"] == 64
    assert meta["input_window_seconds"] == 5.0 and len(meta["positions"]) == 19
    rec = tmp_path / "rec.v1.edf"
    shutil.copy(SAMPLE / "Subject21_1.edf", rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "records no preprocessing": the paper's defaults
        res = _cli("predict", rec, "--model", tmp_path / "m")
    assert res.exit_code == 0, res.output
    out = tmp_path / "rec.v1.predictions.csv"  # the whole stem is kept
    table = pd.read_csv(out)
    assert {"prob_rest", "prob_task", "predicted", "quality", "interpolated"} <= set(table.columns)
    assert len(table) == 36
    # the same numbers as in Python on the MNE object
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        direct = predict(model, raw)
    np.testing.assert_allclose(table["prob_task"], direct["prob_task"], atol=1e-5)


def test_finetune_artifact_holds_the_full_contract(finetuned):
    meta = json.loads((finetuned / "seed0" / "model" / "neuript.json").read_text())
    for key in ("n_chans", "n_outputs", "n_times", "sfreq", "input_window_seconds", "ch_names", "positions",
                "label_names", "preprocessing", "input_transform", "provenance", "metrics"):
        assert meta[key] is not None, key
    assert meta["kind"] == "finetune" and meta["preprocessing"]["reference"] == "tcp"
    assert meta["provenance"]["config"]["pretrained"] and meta["provenance"]["versions"]["torch"]
    model = NeurIPT.from_pretrained(finetuned)  # a run directory
    assert model.metadata["label_names"] == {"0": "rest", "1": "task"}
    assert model.input_window_seconds == 5.0 and model.n_chans == 20 and model.chs_info[0]["ch_name"] == "Fp1-F7"


def test_mne_raw_epochs_and_scale_errors(finetuned):
    model, _ = load_classifier(finetuned)
    raw = mne.io.read_raw_edf(SAMPLE / "Subject28_1.edf", preload=True, verbose="error")
    table = predict(model, raw)
    from_file = predict(model, SAMPLE / "Subject28_1.edf")  # an mne.io.Raw and its file give the same rows
    np.testing.assert_allclose(table["prob_task"], from_file["prob_task"], atol=1e-6)
    emb, starts = embed(model, raw)
    assert emb.shape[0] == len(table) and np.allclose(starts, table["start_s"])
    # embed = forward_head(forward_features(x), pre_logits=True): the linear layer of that gives the logits
    x = torch.randn(2, 20, 320)
    with torch.no_grad():
        feats = model.forward_features(x)
        torch.testing.assert_close(model.forward_head(feats), model(x))
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.final_layer.linear.in_features)
    # Epochs: each 20 s epoch gives 4 windows
    events = mne.make_fixed_length_events(raw, duration=20.0)
    epochs = mne.Epochs(raw, events, tmin=0.0, tmax=20.0 - 1 / raw.info["sfreq"], baseline=None, preload=True,
                        verbose="error")
    ep_table = predict(model, epochs)
    assert len(ep_table) == 4 * len(epochs) and set(ep_table["epoch"]) == set(range(len(epochs)))
    # µV stored as volts: a clear error naming the cause and the fix
    wrong = raw.copy().apply_function(lambda v: v * 1e6)
    with pytest.raises(ValueError, match="microvolts stored as volts"):
        predict(model, wrong)


def test_predict_file_refuses_to_overwrite_its_input(finetuned, tmp_path):
    rec = tmp_path / "rec.edf"
    shutil.copy(SAMPLE / "Subject28_1.edf", rec)
    before = rec.read_bytes()
    with pytest.raises(ValueError, match="input recording itself"):
        predict_file(rec, finetuned, out=rec)
    assert rec.read_bytes() == before


# ---------------------------------------------------------------------------------------------- hub
def _fake_hub_cache(cache: Path, repo_id: str, src: Path, commit: str = "0" * 40) -> None:
    """The layout huggingface_hub uses for a downloaded snapshot (models--owner--name/snapshots/<commit>)."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in src.iterdir():
        shutil.copy(f, snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_hub_round_trip_offline(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw = _eeg_raw()
    model = NeurIPT(n_outputs=1, n_times=320, sfreq=64, chs_info=raw.info["chs"], **TINY).eval()
    uploaded = {}

    import huggingface_hub

    def fake_upload(self, *, folder_path, repo_id, revision=None, commit_message=""):
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        shutil.copytree(folder_path, tmp_path / "pushed")
        return "https://huggingface.co/owner/name/commit/0"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: None)
    model.push_to_hub("owner/name")
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors", "neuript.json"]
    assert "d_model" in uploaded["card"] and "320 samples at 64" in uploaded["card"]
    (tmp_path / "pushed" / "README.md").unlink()
    _fake_hub_cache(tmp_path / "cache", "owner/name", tmp_path / "pushed")
    back = NeurIPT.from_pretrained("owner/name", cache_dir=tmp_path / "cache", local_files_only=True).eval()
    x = torch.randn(2, 19, 320)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
    with pytest.raises(FileNotFoundError, match="local hub cache"):
        NeurIPT.from_pretrained("owner/missing", cache_dir=tmp_path / "cache", local_files_only=True)


# ---------------------------------------------------------------------------------------------- README
def test_readme_python_snippet_runs_as_written(tmp_path, monkeypatch, shared_data):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    snippet = next(b for b in blocks if "from neuript.inference import predict" in b)
    shutil.copy(shared_data / "eegmat" / "Subject00_1.edf", tmp_path / "Subject00_1.edf")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        exec(compile(snippet, "README.md", "exec"), scope)
    assert len(scope["table"]) == 36 and (tmp_path / "my_model" / "neuript.json").is_file()
    assert scope["model"].metadata["label_names"] == {"0": "rest", "1": "task"}


def test_model_trained_with_alignment_aligns_a_new_recording_with_its_own_windows(finetuned, tmp_path):
    from neuript.data.align import align_windows
    from neuript.inference.artifacts import input_alignment

    model, meta = load_classifier(finetuned)
    plain = predict(model, SAMPLE / "Subject30_1.edf")
    model.metadata["input_transform"] = {"name": "alaw", "A": 0.25, "align": "channel", "align_by": "subject",
                                         "align_scale_uv": 20.0}
    model.save_pretrained(tmp_path / "aligned")
    aligned = predict(tmp_path / "aligned", SAMPLE / "Subject30_1.edf")
    assert len(aligned) == len(plain) and not np.allclose(aligned["prob_task"], plain["prob_task"])
    w = np.random.default_rng(0).standard_normal((6, 3, 64)) * 50
    np.testing.assert_allclose(input_alignment(model.metadata)(w), align_windows(w, ["r"] * 6, "channel"))


def test_predict_writes_mne_annotations_and_bids_events(finetuned, tmp_path):
    rec = tmp_path / "sub-28_task-rest_eeg.edf"
    shutil.copy(SAMPLE / "Subject28_1.edf", rec)
    res = _cli("predict", rec, "--model", finetuned, "--format", "annotations")
    assert res.exit_code == 0, res.output
    assert "windows; predicted" in res.output and "flagged" in res.output  # the per-recording summary
    ann = mne.read_annotations(tmp_path / "sub-28_task-rest_eeg.predictions_annot.fif")
    table = predict(finetuned, rec)
    assert len(ann) == len(table) and all(d.startswith("neuript/") for d in ann.description)
    np.testing.assert_allclose(ann.onset, table["start_s"])
    raw = mne.io.read_raw_edf(rec, verbose="error").set_annotations(ann)  # shows in MNE's browser
    assert len(raw.annotations) == len(table)
    assert _cli("predict", rec, "--model", finetuned, "--format", "bids").exit_code == 0
    ev = pd.read_csv(tmp_path / "sub-28_task-rest_events.tsv", sep="\t")
    assert list(ev.columns[:3]) == ["onset", "duration", "trial_type"] and len(ev) == len(table)
    assert set(ev["trial_type"]) <= {"rest", "task"}


def test_unwritable_output_names_the_path_and_leaves_nothing(tmp_path, monkeypatch):
    """A read-only or full location (simulated: this suite may run as root, for whom permissions do not apply)."""
    import errno
    import os
    import tempfile

    from neuript._atomic import atomic_path
    from neuript.inference.predict import default_output

    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "rec.edf").write_bytes(b"x")
    (folder / "out.csv").write_text("earlier output")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    with pytest.raises(OSError, match=r"cannot write .*archive/out.csv: the disk is full.*nothing was written"):
        with atomic_path(folder / "out.csv") as tmp:
            tmp.write_text("never")
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv", "rec.edf"]
    assert (folder / "out.csv").read_text() == "earlier output"
    monkeypatch.undo()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    assert default_output(folder / "rec.edf", ".predictions.csv") == Path.cwd() / "rec.predictions.csv"
    monkeypatch.undo()
    assert default_output(folder / "rec.edf", ".predictions.csv") == folder / "rec.predictions.csv"


def test_streaming_refuses_a_model_that_needs_whole_recording_alignment(finetuned, tmp_path):
    from neuript.inference import StreamingPredictor

    model, _ = load_classifier(finetuned)
    model.metadata["input_transform"] = {"name": "alaw", "A": 0.25, "align": "channel", "align_by": "subject"}
    with pytest.raises(ValueError, match="trained with --align channel"):
        StreamingPredictor(model, ch_names=["Fp1"], sfreq=500.0)
