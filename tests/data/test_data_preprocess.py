"""Preprocessing: A-law, rejection, windows, re-referencing, filtering, read_raw errors."""

from __future__ import annotations

import math

import mne
import numpy as np
import pytest
import torch

from neuript.data.io import RecordingError, read_raw
from neuript.data.preprocess import (PreprocessConfig, alaw, event_windows, preprocess_raw, reject_windows,
                                     sliding_windows)
from neuript.electrodes import TCP_BIPOLAR, channel_positions


def _alaw_ref(x, A=0.25):
    d = math.e + math.log(A)
    return math.copysign(A * abs(x) / d if abs(x) < 1 / A else (1 + math.log(A * abs(x))) / d, x)


@pytest.mark.parametrize("x", [0.0, 0.5, -1.0, 3.999, 4.0, 10.0, -100.0, 1e4])
def test_alaw_values_numpy_and_torch(x):
    expected = _alaw_ref(x)
    np.testing.assert_allclose(alaw(np.array([x])), [expected], rtol=1e-12)
    t = alaw(torch.tensor([x], dtype=torch.float64))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), [expected], rtol=1e-12)


def test_alaw_known_numbers_and_shape():
    d = math.e + math.log(0.25)  # 1.33214...
    assert alaw(np.array([4.0]))[0] == pytest.approx(1 / d)
    assert alaw(np.array([100.0]))[0] == pytest.approx((1 + math.log(25)) / d)
    assert alaw(np.array([1.0]))[0] == pytest.approx(0.25 / d)
    x = np.linspace(-200, 200, 3999, dtype=np.float32).reshape(3, 1, -1)
    y = alaw(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.all(np.diff(alaw(np.linspace(-200, 200, 4001))) > 0), "A-law must be strictly increasing"
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(alaw(xt).numpy(), y, rtol=1e-6, atol=1e-7)


def test_reject_counts_each_reason_once():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 10, size=(6, 3, 100)).astype(np.float32)
    w[1, 0, 5] = np.nan
    w[2, 1] = 0.0                       # flat channel
    w[3, 2, 50] = 150.0                 # amplitude
    w[4, 0, 7] = -101.0                 # amplitude (negative)
    w[5, 1] = 0.0
    w[5, 2, 3] = np.inf                 # nan wins over flat
    keep, reason, counts = reject_windows(w, reject_uv=100.0, flat_uv=0.1)
    assert keep.tolist() == [True, False, False, False, False, False]
    assert reason.tolist() == ["", "nan", "flat", "amplitude", "amplitude", "nan"]
    assert counts == {"nan": 2, "flat": 1, "amplitude": 2}
    keep, _, counts = reject_windows(w, reject_uv=None, flat_uv=None)
    assert counts == {"nan": 2, "flat": 0, "amplitude": 0} and keep.sum() == 4


def test_sliding_and_event_windows():
    x = np.arange(2 * 25, dtype=np.float32).reshape(2, 25)
    w, s = sliding_windows(x, 10)
    assert w.shape == (2, 2, 10) and s.tolist() == [0, 10]
    np.testing.assert_array_equal(w[1], x[:, 10:20])
    w, s = sliding_windows(x, 10, 5)
    assert s.tolist() == [0, 5, 10, 15]
    assert sliding_windows(x, 30)[0].shape == (0, 2, 30)
    w, s, lab = event_windows(x, sfreq=1.0, onsets_s=[0, 12, 20], durations_s=[20, 0, 0], labels=[1, 2, 3],
                              n_times=5)
    assert s.tolist() == [0, 5, 10, 15, 12, 20] and lab.tolist() == [1, 1, 1, 1, 2, 3]


def _synthetic_raw(sfreq=256.0, seconds=20.0, names=("Fp1", "F7", "T3", "T5", "O1", "Fp2", "F8", "T4", "T6", "O2",
                                                     "C3", "Cz", "C4", "F3", "P3", "F4", "P4"), seed=0):
    rng = np.random.default_rng(seed)
    n = int(sfreq * seconds)
    data = rng.normal(0, 5e-6, size=(len(names), n))
    info = mne.create_info([f"EEG {c}" for c in names] + ["ECG ECG"], sfreq, ["eeg"] * len(names) + ["ecg"])
    return mne.io.RawArray(np.vstack([data, rng.normal(0, 1e-3, (1, n))]), info, verbose="error"), data


def test_tcp_derivation_exact_without_filters():
    raw, data = _synthetic_raw()
    cfg = PreprocessConfig(l_freq=None, h_freq=None, notch=None, sfreq=256.0)
    out, names, pos, sf = preprocess_raw(raw, cfg)
    assert names == list(TCP_BIPOLAR) and out.shape == (20, data.shape[1]) and sf == 256.0
    idx = {n: i for i, n in enumerate(["Fp1", "F7", "T3", "T5", "O1", "Fp2", "F8", "T4", "T6", "O2", "C3", "Cz",
                                       "C4", "F3", "P3", "F4", "P4"])}
    np.testing.assert_allclose(out[0], (data[idx["Fp1"]] - data[idx["F7"]]) * 1e6, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out[12], (data[idx["Fp1"]] - data[idx["F3"]]) * 1e6, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pos, channel_positions(TCP_BIPOLAR))


def test_average_reference_and_missing_electrode_error():
    raw, _ = _synthetic_raw()
    out, names, pos, _ = preprocess_raw(raw, PreprocessConfig(reference="average", l_freq=None, h_freq=None,
                                                              notch=None, sfreq=256.0))
    assert "ECG ECG" not in names and len(names) == 17 and names[2] == "T7"
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-3)
    raw.drop_channels(["EEG O2"])
    with pytest.raises(ValueError, match=r"O2.*missing|missing.*O2"):
        preprocess_raw(raw, PreprocessConfig())


def test_filters_and_resample():
    sf = 500.0
    t = np.arange(int(sf * 60)) / sf
    sig = 20e-6 * np.sin(2 * np.pi * 10 * t) + 20e-6 * np.sin(2 * np.pi * 50 * t) + 20e-6 * np.sin(2 * np.pi * 0.02 * t)
    info = mne.create_info(["Cz", "Pz"], sf, "eeg")
    raw = mne.io.RawArray(np.vstack([sig, np.zeros_like(sig)]), info, verbose="error")
    out, names, _, sfreq = preprocess_raw(raw, PreprocessConfig(reference="as_recorded", flat_uv=None))
    assert sfreq == 64.0 and out.shape == (2, 60 * 64) and out.dtype == np.float32
    x = out[0, 640:-640]  # away from the edges
    spec = np.abs(np.fft.rfft(x)) / len(x) * 2
    f = np.fft.rfftfreq(len(x), 1 / 64)
    assert spec[np.argmin(np.abs(f - 10))] == pytest.approx(20, rel=0.05), "10 Hz passes in µV"
    assert spec[f < 0.05].max() < 2, "0.02 Hz drift removed by the 0.1 Hz high-pass"
    # determinism
    out2, *_ = preprocess_raw(raw, PreprocessConfig(reference="as_recorded", flat_uv=None))
    np.testing.assert_array_equal(out, out2)


def test_config_roundtrip_and_validation():
    cfg = PreprocessConfig(reference="average", notch=60.0, window_s=5.0)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.n_times == 320 and cfg.stride == 320
    assert PreprocessConfig().l_freq == 0.1 and PreprocessConfig().h_freq == 30.0 and PreprocessConfig().sfreq == 64
    with pytest.raises(ValueError, match="unknown PreprocessConfig keys"):
        PreprocessConfig.from_dict({"refrence": "tcp"})
    with pytest.raises(ValueError):
        PreprocessConfig(reference="bogus")


def test_read_raw_errors_name_the_file(tmp_path, eegmat_dir):
    trunc = tmp_path / "Subject99_1.edf"
    blob = (eegmat_dir / "Subject00_2.edf").read_bytes()
    trunc.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(RecordingError, match=r"Subject99_1\.edf.*truncated"):
        read_raw(trunc)
    junk = tmp_path / "junk.edf"
    junk.write_bytes(b"0       garbage" * 3)
    with pytest.raises(RecordingError, match="junk.edf"):
        read_raw(junk)
    with pytest.raises(FileNotFoundError, match="nope.edf"):
        read_raw(tmp_path / "nope.edf")
    txt = tmp_path / "x.txt"
    txt.write_text("x")
    with pytest.raises(RecordingError, match=r"x\.txt.*unsupported"):
        read_raw(txt)


def test_real_eegmat_recording(eegmat_dir):
    raw = read_raw(eegmat_dir / "Subject00_2.edf")
    out, names, pos, sf = preprocess_raw(raw, PreprocessConfig(window_s=5.0))
    assert out.shape == (20, int(round(raw.n_times / raw.info["sfreq"] * 64)))
    assert np.isfinite(out).all() and 1 < np.median(np.abs(out)) < 100, "µV scale"
    w, s = sliding_windows(out, 320)
    assert len(w) == 12  # 62 s task run -> 12 windows of 5 s


@pytest.mark.parametrize("sf_in", [500.0, 160.0, 128.0, 256.0, 200.0])
def test_resample_is_accurate_in_time(sf_in):
    """Sample-accurate resampling: a shifted or smeared result would pass an amplitude-spectrum test."""
    from neuript.data.preprocess import resample

    t = np.arange(int(sf_in * 60)) / sf_in
    x = np.sin(2 * np.pi * 10 * t) + 0.5 * np.sin(2 * np.pi * 3.3 * t + 1.0)
    y = resample(x[None], sfreq_in=sf_in, sfreq_out=64.0)[0]
    t64 = np.arange(60 * 64) / 64.0
    want = np.sin(2 * np.pi * 10 * t64) + 0.5 * np.sin(2 * np.pi * 3.3 * t64 + 1.0)
    assert y.shape == want.shape
    assert np.abs(y - want)[128:-128].max() < 0.01


def test_positions_stored_in_file_are_used():
    names = ["EEG 000", "EEG 001", "EEG 002"]
    info = mne.create_info(names, 128.0, "eeg")
    locs = np.array([[0.0, 0.08, 0.05], [-0.05, 0.0, 0.07], [0.05, 0.0, 0.07]])
    for ch, loc in zip(info["chs"], locs):
        ch["loc"][:3] = loc
    raw = mne.io.RawArray(np.random.default_rng(0).normal(0, 1e-5, (3, 128 * 20)), info, verbose="error")
    out, ch_names, pos, _ = preprocess_raw(raw, PreprocessConfig(reference="average", notch=None))
    assert ch_names == names and out.shape == (3, 64 * 20)
    np.testing.assert_allclose(pos, locs)
    # without stored positions the same names are an error naming them and the fixes
    raw2 = mne.io.RawArray(raw.get_data(), mne.create_info(names, 128.0, "eeg"), verbose="error")
    with pytest.raises(Exception, match=r"'EEG 000'.*rename"):
        preprocess_raw(raw2, PreprocessConfig(reference="average"))
    out3, names3, _, _ = preprocess_raw(raw2, PreprocessConfig(reference="average"), rename={
        "EEG 000": "Fz", "EEG 001": "C3", "EEG 002": "C4"})
    assert names3 == ["Fz", "C3", "C4"]


def test_tcp_from_recorded_bipolar_channels():
    rng = np.random.default_rng(1)
    names = [f"EEG {p}" for p in TCP_BIPOLAR[::-1]]  # any order, 'EEG ' prefix
    data = rng.normal(0, 5e-6, (20, 2560))
    raw = mne.io.RawArray(data, mne.create_info(names, 256.0, "eeg"), verbose="error")
    out, ch_names, _, _ = preprocess_raw(raw, PreprocessConfig(l_freq=None, h_freq=None, notch=None, sfreq=256.0))
    assert ch_names == list(TCP_BIPOLAR)
    np.testing.assert_allclose(out, data[::-1] * 1e6, rtol=1e-5, atol=1e-4)
    # a reversed pair is negated
    raw.rename_channels({"EEG Fp1-F7": "EEG F7-Fp1"})
    out2, *_ = preprocess_raw(raw, PreprocessConfig(l_freq=None, h_freq=None, notch=None, sfreq=256.0))
    np.testing.assert_allclose(out2[0], -data[19] * 1e6, rtol=1e-5, atol=1e-4)


def test_rate_below_twice_the_band_pass_edge_is_refused_with_the_rate_and_filter():
    import mne

    from neuript.data.preprocess import PreprocessConfig, preprocess_raw

    info = mne.create_info(["Fp1", "Fp2", "Cz"], 50.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((3, 50 * 20)) * 20e-6, info, verbose="error")
    with pytest.raises(ValueError, match=r"sampled at 50 Hz, below twice the band-pass upper edge of 30 Hz"):
        preprocess_raw(raw, PreprocessConfig(reference="as_recorded", sfreq=64.0, window_s=4.0))
    data, *_ = preprocess_raw(raw, PreprocessConfig(reference="as_recorded", sfreq=64.0, window_s=4.0, h_freq=20.0))
    assert np.isfinite(data).all()
