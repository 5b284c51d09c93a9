"""BDF and BrainVision through ``read_raw`` and the preprocessing, from a real EEGMAT recording.

No BDF or BrainVision file is among the shared data, so the tests write one: a real recording's first 20 s, in
each format's documented layout (BDF: BioSemi's 24-bit EDF variant; BrainVision: the ``.vhdr``/``.vmrk``/``.eeg``
triple with float32 samples). Reading it back must give the source signal, and the preprocessing must give the
same windows as for the EDF.
"""

from __future__ import annotations

import numpy as np
import pytest

from neuript.data.io import RecordingError, read_raw
from neuript.data.preprocess import PreprocessConfig, preprocess_raw

SECONDS = 20


def _field(value, width: int) -> bytes:
    text = str(value).encode("ascii")[:width]
    return text + b" " * (width - len(text))


def write_bdf(path, data_uv: np.ndarray, ch_names: list[str], sfreq: float) -> None:
    """BioSemi BDF: EDF header layout with a 0xFF "BIOSEMI" id, 24-bit little-endian samples, 1-s records."""
    n_ch, n = data_uv.shape
    per_record = int(sfreq)
    n_records = n // per_record
    dmin, dmax = -(2**23), 2**23 - 1
    pmin = np.floor(data_uv.min(axis=1)) - 1
    pmax = np.ceil(data_uv.max(axis=1)) + 1
    head = (b"\xffBIOSEMI" + _field("X X X X", 80) + _field("Startdate 01-JAN-2020 X X X", 80)
            + _field("01.01.20", 8) + _field("00.00.00", 8) + _field(256 * (n_ch + 1), 8) + _field("24BIT", 44)
            + _field(n_records, 8) + _field(1, 8) + _field(n_ch, 4))
    head += b"".join(_field(c, 16) for c in ch_names)
    head += b"".join(_field("AgAgCl electrode", 80) for _ in ch_names)
    head += b"".join(_field("uV", 8) for _ in ch_names)
    head += b"".join(_field(f"{v:.0f}", 8) for v in pmin) + b"".join(_field(f"{v:.0f}", 8) for v in pmax)
    head += b"".join(_field(dmin, 8) for _ in ch_names) + b"".join(_field(dmax, 8) for _ in ch_names)
    head += b"".join(_field("HP:0.1Hz LP:100Hz", 80) for _ in ch_names)
    head += b"".join(_field(per_record, 8) for _ in ch_names) + b"".join(_field("", 32) for _ in ch_names)
    assert len(head) == 256 * (n_ch + 1)
    scale = (pmax - pmin) / (dmax - dmin)
    digital = np.round((data_uv[:, : n_records * per_record] - pmin[:, None]) / scale[:, None] + dmin)
    digital = np.clip(digital, dmin, dmax).astype("<i4")
    # record-major: for each 1-s record, each channel's samples, 3 bytes each
    recs = digital.reshape(n_ch, n_records, per_record).transpose(1, 0, 2).reshape(-1)
    body = recs.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    path.write_bytes(head + body)


def write_brainvision(vhdr, data_uv: np.ndarray, ch_names: list[str], sfreq: float) -> None:
    """BrainVision Core Data Format 1.0: text header and markers, multiplexed float32 samples in µV."""
    eeg, vmrk = vhdr.with_suffix(".eeg"), vhdr.with_suffix(".vmrk")
    channels = "\n".join(f"Ch{i + 1}={name},,1,µV" for i, name in enumerate(ch_names))
    vhdr.write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\nMarkerFile={vmrk.name}\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={len(ch_names)}\nSamplingInterval={1e6 / sfreq:g}\n\n[Binary Infos]\n"
        f"BinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n{channels}\n", encoding="utf-8")
    vmrk.write_text(
        "Brain Vision Data Exchange Marker File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={eeg.name}\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n", encoding="utf-8")
    eeg.write_bytes(np.ascontiguousarray(data_uv.T, dtype="<f4").tobytes())


@pytest.fixture(scope="module")
def source(eegmat_dir):
    raw = read_raw(eegmat_dir / "Subject05_1.edf")
    raw.pick("eeg").crop(0, SECONDS, include_tmax=False)
    return raw


def _preprocessed(raw):
    return preprocess_raw(raw, PreprocessConfig(window_s=5.0))


@pytest.mark.parametrize("fmt", ["bdf", "vhdr"])
def test_written_recording_reads_back_and_preprocesses_like_the_edf(source, tmp_path, fmt):
    data_uv = source.get_data() * 1e6
    sfreq = source.info["sfreq"]
    path = tmp_path / f"Subject05_1.{fmt}"
    (write_bdf if fmt == "bdf" else write_brainvision)(path, data_uv, source.ch_names, sfreq)

    raw = read_raw(path)
    assert raw.ch_names == source.ch_names
    assert raw.info["sfreq"] == sfreq and raw.n_times == source.n_times
    got = raw.get_data(picks="eeg") * 1e6
    # BDF quantises to 24 bits of each channel's range; BrainVision stores float32
    tol = (data_uv.max() - data_uv.min()) / 2**23 if fmt == "bdf" else 1e-4
    np.testing.assert_allclose(got, data_uv, atol=tol, rtol=1e-6)

    ref, ref_names, ref_pos, ref_sf = _preprocessed(source)
    out, names, pos, sf = _preprocessed(raw)
    assert names == ref_names and sf == ref_sf == 64
    np.testing.assert_allclose(pos, ref_pos)
    np.testing.assert_allclose(out, ref, atol=1e-3)  # µV, after filtering and resampling
    assert 1 < np.median(np.abs(out)) < 100


def test_truncated_bdf_names_the_file(source, tmp_path):
    path = tmp_path / "cut.bdf"
    write_bdf(path, source.get_data() * 1e6, source.ch_names, source.info["sfreq"])
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) - 3 * 1000])
    with pytest.raises(RecordingError, match=r"cut\.bdf.*truncated"):
        read_raw(path)


def test_annotation_only_file_says_no_eeg_channels(shared_data):
    from neuript.data.io import RecordingError, read_raw

    hyp = shared_data / "formats" / "SC4001EC-Hypnogram.edf"
    with pytest.raises(RecordingError, match="no EEG channels in this file") as err:
        read_raw(hyp)
    assert str(hyp) in str(err.value)
