"""Units, implausible amplitudes and dead electrodes, on a real EEGMAT recording (issue 11 items 2 and 3)."""

from __future__ import annotations

import shutil
import warnings

import mne
import numpy as np
import pytest

from neuript.data.io import RecordingError, read_raw
from neuript.data.prepare import process_recording
from neuript.data.recipes import Recording, get_recipe
from neuript.electrodes import TCP_BIPOLAR
from neuript.data.recording import ModelInput, check_amplitude, recording_windows


def _with_units(src, dst, unit: str, only: int | None = None):
    """Copy an EDF, writing ``unit`` into the physical-dimension field of every (or one) signal."""
    shutil.copyfile(src, dst)
    b = bytearray(dst.read_bytes())
    ns = int(b[252:256])
    off = 256 + ns * 96
    for i in range(ns) if only is None else [only]:
        b[off + 8 * i: off + 8 * (i + 1)] = unit.ljust(8).encode("latin-1")
    dst.write_bytes(bytes(b))
    return dst


@pytest.fixture(scope="module")
def rec_path(eegmat_dir):
    return eegmat_dir / "Subject28_2.edf"


@pytest.fixture(scope="module")
def reference(rec_path):
    return read_raw(rec_path)


@pytest.mark.parametrize("unit, factor", [("uV", 1.0), ("µV", 1.0), ("mV", 1e3), ("V", 1e6), ("nV", 1e-3)])
def test_edf_physical_dimension_is_honoured(rec_path, reference, tmp_path, unit, factor):
    raw = read_raw(_with_units(rec_path, tmp_path / "r.edf", unit))
    np.testing.assert_allclose(raw.get_data(picks=[0]), reference.get_data(picks=[0]) * factor, rtol=1e-6)


def test_non_voltage_unit_on_an_electrode_is_refused_by_name(rec_path, tmp_path):
    with pytest.raises(RecordingError, match=r"not a voltage: EEG Fp2 \('BS'\)"):
        read_raw(_with_units(rec_path, tmp_path / "r.edf", "BS", only=1))


def test_non_voltage_unit_on_a_non_electrode_is_not_eeg(rec_path, tmp_path, reference):
    ecg = reference.ch_names.index("ECG ECG")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = read_raw(_with_units(rec_path, tmp_path / "r.edf", "BS", only=ecg))
    assert raw.get_channel_types()[ecg] == "bio"
    assert any("not used as EEG" in str(w.message) for w in caught)


@pytest.mark.parametrize("unit, match", [("mV", "microvolts stored as volts|millivolts as microvolts"),
                                         ("V", "unit error"), ("nV", "implausibly small")])
def test_wrong_scale_is_refused_in_prepare_and_predict(rec_path, tmp_path, unit, match):
    path = _with_units(rec_path, tmp_path / f"Subject28_2.edf", unit)
    recipe = get_recipe("eegmat")
    rec = Recording(path=path, dataset="eegmat", subject="28", session="2", recording="s28_2", split="val", label=1)
    with pytest.raises(ValueError, match=match):
        process_recording(rec, recipe, recipe.config(), tmp_path / "shards", "float16")
    spec = ModelInput(ch_names=TCP_BIPOLAR, n_times=320, preprocessing=recipe.config())
    with pytest.raises(ValueError, match=match):
        recording_windows(read_raw(path), spec)


def test_plausible_scales_pass():
    rng = np.random.default_rng(0)
    check_amplitude(rng.normal(0, 20, (4, 1000)), "eeg")
    check_amplitude(np.zeros((4, 1000)), "flat")  # flat is rejected per window, not here
    with pytest.raises(ValueError, match="typical amplitude"):
        check_amplitude(rng.normal(0, 5000, (4, 1000)), "x")


@pytest.fixture(scope="module")
def rest(eegmat_dir):
    return read_raw(eegmat_dir / "Subject28_1.edf")  # 182 s


def _dead_fp1(reference, tmp_path, seconds=60.0):
    raw = reference.copy()
    fp1 = raw.ch_names.index("EEG Fp1")
    n = int(seconds * raw.info["sfreq"])
    raw._data[fp1, :n] = raw._data[fp1, n]  # disconnected: constant
    path = tmp_path / "Subject28_2_raw.fif"
    raw.save(path, overwrite=True, verbose="error")
    return path, seconds


def test_dead_electrode_hidden_by_the_tcp_montage_is_rejected_in_prepare(rest, tmp_path):
    reference = rest
    path, seconds = _dead_fp1(reference, tmp_path)
    recipe = get_recipe("eegmat")
    rec = Recording(path=path, dataset="eegmat", subject="28", session="2", recording="s28_2", split="val", label=1)
    clean = Recording(path=tmp_path / "clean_raw.fif", dataset="eegmat", subject="28", session="2",
                      recording="clean", split="val", label=1)
    reference.save(clean.path, overwrite=True, verbose="error")
    cfg = recipe.config()
    m_clean = process_recording(clean, recipe, cfg, tmp_path / "shards", "float16")
    m_dead = process_recording(rec, recipe, cfg, tmp_path / "shards", "float16")
    assert m_clean["rejected"]["flat"] == 0
    window_s = cfg.n_times / cfg.sfreq
    # every window lying mostly in the dead first minute, and only those
    expected = int(np.floor((seconds - cfg.crop_start_s) / window_s + 0.5))
    assert abs(m_dead["rejected"]["flat"] - expected) <= 1, (m_dead["rejected"], expected)
    assert m_dead["n_windows"] == m_clean["n_windows"] - m_dead["rejected"]["flat"]
    assert min(m_dead["start"]) >= seconds - window_s


def test_dead_electrode_is_flagged_per_window_in_predict(rest, tmp_path):
    path, seconds = _dead_fp1(rest, tmp_path)
    pp = get_recipe("eegmat").config()
    spec = ModelInput(ch_names=TCP_BIPOLAR, n_times=pp.n_times, preprocessing=pp)
    rw = recording_windows(read_raw(path), spec)
    flagged = rw.quality == "flat_electrode:Fp1"
    assert flagged.any()
    assert np.all(rw.starts_s[flagged] < seconds)
    assert np.all(rw.quality[rw.starts_s > seconds] != "flat_electrode:Fp1")


def test_float16_overflow_names_the_channel(reference, tmp_path):
    raw = reference.copy()
    o2 = raw.ch_names.index("EEG O2")
    n = int(2 * raw.info["sfreq"])
    raw._data[o2, 20 * n: 21 * n] *= 1e4  # a 2 s burst beyond float16 (a whole channel's wrong gain is refused
    # earlier, by its typical amplitude: tests/hostile)
    path = tmp_path / "Subject28_2_raw.fif"
    raw.save(path, overwrite=True, verbose="error")
    recipe = get_recipe("eegmat")
    from neuript.data.recipes import apply_config_overrides

    cfg = apply_config_overrides(recipe.config(), {"reject_uv": "none"})
    rec = Recording(path=path, dataset="eegmat", subject="28", session="2", recording="r", split="val", label=1)
    with pytest.raises(ValueError, match=r"channel (T6-O2|P4-O2|O2)\S* reaches .* float16.*reject_uv"):
        process_recording(rec, recipe, cfg, tmp_path / "shards", "float16")
