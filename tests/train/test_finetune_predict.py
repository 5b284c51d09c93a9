"""Fine-tune (from a pretraining run and from scratch), evaluate, predict and embed on real recordings."""

from __future__ import annotations

import json
from pathlib import Path

import mne
import numpy as np
import pandas as pd
import pytest

from neuript.train.finetune import FinetuneConfig, finetune
from neuript.inference.predict import embed_file, predict_file
from neuript.train.pretrain import PretrainConfig, pretrain


def test_pretraining_outputs(pretrained):
    assert (pretrained / "reconstruction.png").stat().st_size > 1000
    log = pd.read_csv(pretrained / "log.csv")
    assert {"loss", "recon_loss", "aux_loss", "lr", "windows_per_s", "val_recon_loss"} <= set(log.columns)


def test_finetune_reports_validation_metrics_when_test_split_is_absent(finetuned):
    report = json.loads((finetuned / "report.json").read_text())
    assert report["split"] == "val" and "VALIDATION" in report["note"]
    assert set(report["per_seed"]) == {"seed0", "seed1"}
    for m in ("balanced_accuracy", "auc_pr", "auroc"):
        agg = report["aggregate"][m]
        assert agg["n"] == 2 and 0.0 <= agg["mean"] <= 1.0
    assert "VALIDATION" in (finetuned / "report.md").read_text()
    for png in ("confusion_matrix.png", "roc.png"):
        assert (finetuned / png).stat().st_size > 1000
    preds = pd.read_csv(finetuned / "seed0" / "predictions_val.csv")
    assert len(preds) == report["n_windows"] and set(preds["subject"].astype(str)) == {"28"}
    np.testing.assert_allclose(preds["prob_rest"] + preds["prob_task"], 1.0, atol=1e-5)


def test_finetune_skips_finished_seeds(finetuned, stores, pretrained):
    before = (finetuned / "seed0" / "model" / "model.safetensors").stat().st_mtime_ns
    # the fixture's settings (other settings would be refused: test_finetune_logs), one of its seeds
    finetune(FinetuneConfig(stores=[str(stores["eegmat"])], out=str(finetuned), pretrained=str(pretrained),
                            epochs=2, batch_size=16, lr=1e-3, seeds=[0], precision="bf16", max_train_batches=4,
                            device="cpu"))
    assert (finetuned / "seed0" / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_predict_unseen_recording_and_other_format_agree(finetuned, shared_data, tmp_path):
    edf = shared_data / "eegmat" / "Subject05_1.edf"  # a subject the model never saw
    csv_edf = predict_file(edf, finetuned, out=tmp_path / "a.csv", device="cpu")
    a = pd.read_csv(csv_edf)
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    n_windows = int(raw.n_times / raw.info["sfreq"] // 5)
    assert len(a) == n_windows
    assert list(a.columns[:3]) == ["window", "start_s", "end_s"]
    np.testing.assert_allclose(a["prob_rest"] + a["prob_task"], 1.0, atol=1e-5)
    assert set(a["predicted"]) <= {"rest", "task"}

    fif = tmp_path / "Subject05_1_raw.fif"  # the same recording as FIF
    raw.save(fif, verbose="error")
    b = pd.read_csv(predict_file(fif, finetuned, out=tmp_path / "b.csv", device="cpu"))
    np.testing.assert_allclose(a["prob_task"], b["prob_task"], atol=2e-3)

    emb_path = embed_file(fif, finetuned, out=tmp_path / "emb.npy", device="cpu")
    emb = np.load(emb_path)
    assert emb.shape[0] == n_windows and emb.ndim == 2 and np.isfinite(emb).all()
    assert np.load(tmp_path / "emb.times.npy").shape == (n_windows,)


def test_bf16_inference_is_close_to_fp32(finetuned, shared_data, tmp_path):
    edf = shared_data / "eegmat" / "Subject05_1.edf"
    a = pd.read_csv(predict_file(edf, finetuned, out=tmp_path / "a.csv", device="cpu"))
    b = pd.read_csv(predict_file(edf, finetuned, out=tmp_path / "b.csv", device="cpu", precision="bf16"))
    assert len(a) == len(b) and list(a.columns) == list(b.columns)
    diff = (a["prob_task"] - b["prob_task"]).abs()
    assert 0 < diff.max() < 0.05  # bf16 really ran (outputs moved), and only by rounding
    ea = np.load(embed_file(edf, finetuned, out=tmp_path / "ea.npy", device="cpu"))
    eb = np.load(embed_file(edf, finetuned, out=tmp_path / "eb.npy", device="cpu", precision="bf16"))
    assert np.abs(ea - eb).max() < 0.05 * np.abs(ea).max()
    with pytest.raises(ValueError, match="--precision"):
        predict_file(edf, finetuned, out=tmp_path / "c.csv", device="cpu", precision="fp16")


def _stream(sp, data, seed=0):
    rng, rows, i = np.random.default_rng(seed), [], 0
    while i < data.shape[1]:  # chunks of 0.1-4 s, as an amplifier driver might deliver them
        n = int(rng.integers(50, 2000))
        rows += sp.push(data[:, i:i + n])
        i += n
    return pd.DataFrame(rows + sp.flush())


def test_streaming_equals_offline_with_the_default_context(finetuned, shared_data, tmp_path):
    from neuript.inference.streaming import StreamingPredictor

    edf = shared_data / "eegmat" / "Subject05_1.edf"
    offline = pd.read_csv(predict_file(edf, finetuned, device="cpu", out=tmp_path / "offline.csv"))
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    sp = StreamingPredictor(finetuned, ch_names=raw.ch_names, sfreq=raw.info["sfreq"], device="cpu")
    assert sp.latency_s > 16  # half the 33 s FIR of the 0.1 Hz high-pass, on the 0.25 s resampling grid
    live = _stream(sp, raw.get_data())
    assert len(live) == len(offline) and list(live["window"]) == list(offline["window"])
    np.testing.assert_allclose(live["start_s"], offline["start_s"])
    np.testing.assert_allclose(live["prob_task"], offline["prob_task"], atol=1e-5)
    assert list(live["quality"]) == list(offline["quality"])


def test_streaming_flags_a_dead_electrode_as_offline(finetuned, shared_data, tmp_path):
    """An electrode that goes flat (disconnected) inside a bipolar pair: the live quality column names it for the
    same windows as the offline one."""
    from neuript.inference.streaming import StreamingPredictor

    raw = mne.io.read_raw_edf(shared_data / "eegmat" / "Subject05_1.edf", preload=True, verbose="error")
    raw.crop(0, 60)
    fp1 = raw.ch_names.index("EEG Fp1")
    raw._data[fp1, : int(20 * raw.info["sfreq"])] = 0.0  # dead for the first 20 s
    fif = tmp_path / "dead_fp1_raw.fif"
    raw.save(fif, verbose="error")
    offline = pd.read_csv(predict_file(fif, finetuned, device="cpu", out=tmp_path / "offline.csv"))
    assert (offline["quality"] == "flat_electrode:Fp1").any()
    sp = StreamingPredictor(finetuned, ch_names=raw.ch_names, sfreq=raw.info["sfreq"], device="cpu")
    live = _stream(sp, raw.get_data())
    assert list(live["quality"]) == list(offline["quality"])


def test_streaming_with_short_context_answers_sooner_and_approximates(finetuned, shared_data, tmp_path):
    from neuript.inference.streaming import StreamingPredictor

    edf = shared_data / "eegmat" / "Subject05_1.edf"
    offline = pd.read_csv(predict_file(edf, finetuned, device="cpu", out=tmp_path / "offline.csv"))
    raw = mne.io.read_raw_edf(edf, preload=True, verbose="error")
    sp = StreamingPredictor(finetuned, ch_names=raw.ch_names, sfreq=raw.info["sfreq"], context_s=2.0, device="cpu")
    assert sp.latency_s == 2.0
    first = []
    data = raw.get_data()
    win = int(5 * raw.info["sfreq"])
    first += sp.push(data[:, : win + int(2 * raw.info["sfreq"])])  # one window plus 2 s: its answer is due
    assert len(first) == 1 and first[0]["window"] == 0
    live = pd.DataFrame(first + _stream(sp, data[:, win + int(2 * raw.info["sfreq"]):]).to_dict("records"))
    assert len(live) == len(offline)
    diff = np.abs(live["prob_task"] - offline["prob_task"])
    assert 0 < diff.max() < 0.2  # filtered without the full context: close, not equal
    with pytest.raises(ValueError, match="shape"):
        sp.push(data[:3, :10])


def test_missing_electrode_is_named_and_can_be_interpolated(finetuned, shared_data, tmp_path):
    raw = mne.io.read_raw_edf(shared_data / "eegmat" / "Subject05_2.edf", preload=True, verbose="error")
    raw.drop_channels(["EEG Cz"])
    fif = tmp_path / "no_cz_raw.fif"
    raw.save(fif, verbose="error")
    with pytest.raises(ValueError, match=r"Cz.*lacks.*--allow-missing") as err:
        predict_file(fif, finetuned, out=tmp_path / "x.csv", device="cpu")
    assert str(fif) in str(err.value)
    with pytest.warns(UserWarning, match=r"interpolated 1 missing electrode\(s\) \['Cz'\]"):
        out = predict_file(fif, finetuned, out=tmp_path / "x.csv", allow_missing=True, device="cpu")
    table = pd.read_csv(out)  # a plain CSV (no comment line): the interpolated electrodes are a column
    assert len(table) > 0 and set(table["interpolated"]) == {"Cz"}
    assert set(table["source_sfreq"]) == {500.0} and not table["upsampled"].any()


def test_interpolation_has_a_limit(finetuned, shared_data, tmp_path):
    raw = mne.io.read_raw_edf(shared_data / "eegmat" / "Subject05_2.edf", preload=True, verbose="error")
    gone = ["EEG Cz", "EEG C3", "EEG C4", "EEG F3", "EEG P3", "EEG F4"]  # 6 of the 17 TCP electrodes
    raw.drop_channels(gone)
    fif = tmp_path / "six_missing_raw.fif"
    raw.save(fif, verbose="error")
    with pytest.raises(ValueError, match=r"lacks 6 of the 17 electrodes.*at most 4 \(--max-interpolated\)"):
        predict_file(fif, finetuned, out=tmp_path / "x.csv", allow_missing=True, device="cpu")
    with pytest.warns(UserWarning, match="interpolated 6 missing"):
        out = predict_file(fif, finetuned, out=tmp_path / "x.csv", allow_missing=True, max_interpolated=6,
                           device="cpu")
    assert len(pd.read_csv(out)["interpolated"].iloc[0].split()) == 6


def test_upsampled_recording_is_flagged(finetuned, shared_data, tmp_path):
    from neuript.inference.artifacts import load_classifier

    _, meta = load_classifier(finetuned)
    model_sfreq = float(meta["preprocessing"]["sfreq"])
    raw = mne.io.read_raw_edf(shared_data / "eegmat" / "Subject05_2.edf", preload=True, verbose="error")
    h = float(meta["preprocessing"]["h_freq"])
    rate = 2 * h + 2  # usable (above twice the band edge) but below the model's rate
    assert rate < model_sfreq  # the fixture model: 64 Hz, band edge 30 Hz
    raw.resample(rate, verbose="error")
    fif = tmp_path / "low_rate_raw.fif"
    raw.save(fif, verbose="error")
    with pytest.warns(UserWarning, match="upsampled"):
        out = predict_file(fif, finetuned, out=tmp_path / "x.csv", device="cpu")
    table = pd.read_csv(out)
    assert table["upsampled"].all() and set(table["source_sfreq"]) == {rate}


def test_recording_without_usable_electrodes_fails_clearly(finetuned, shared_data, tmp_path):
    eeglab = shared_data / "formats" / "test_raw.set"  # 'EEG 000' names: no electrode can be identified
    with pytest.raises(ValueError, match="needs electrodes") as err:
        predict_file(eeglab, finetuned, out=tmp_path / "y.csv", device="cpu")
    assert "test_raw.set" in str(err.value) and "--rename" in str(err.value)


def test_cli_reports_bad_input_as_one_message(finetuned, shared_data, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "neuript", "predict", str(shared_data / "formats" / "test_raw.set"),
                           "--model", str(finetuned), "--out", str(tmp_path / "z.csv"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "test_raw.set" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("verb,option,value", [("finetune", "--optimizer-state", "fp16"),
                                               ("pretrain", "--micro-batch", "0")])
def test_cli_rejects_bad_memory_options_before_reading_data(stores, tmp_path, verb, option, value):
    import subprocess
    import sys

    store = stores["eegmat" if verb == "finetune" else "eegmmidb"]
    proc = subprocess.run([sys.executable, "-m", "neuript", verb, str(store), "--out", str(tmp_path / "r"),
                           "--device", "cpu", option, value], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and option in proc.stderr and value in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r" / "run.json").exists()  # nothing was started
