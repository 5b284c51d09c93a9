"""Reading recordings: any MNE-supported EEG file, validated, with errors that name the file and the fix."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

__all__ = ["RecordingError", "read_raw", "check_edf_header", "SUPPORTED_SUFFIXES"]

#: File suffixes :func:`read_raw` understands (lower case).
SUPPORTED_SUFFIXES = (".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".set", ".vhdr", ".cnt")


class RecordingError(RuntimeError):
    """A recording could not be read or is not usable. The message names the file and what to do."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".fif.gz"):
        return ".fif.gz"
    return path.suffix.lower()


def check_edf_header(path: str | os.PathLike) -> dict:
    """Validate an EDF/EDF+/BDF header against the file size.

    MNE reads a truncated EDF without complaint and returns fewer samples than the header promises; a
    truncated download would then silently become a shorter recording. This check catches it.

    Returns
    -------
    dict
        ``n_records``, ``record_duration``, ``n_signals``, ``expected_bytes``, ``actual_bytes``.

    Raises
    ------
    RecordingError
        If the header is malformed or the file is shorter than the header says (truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    bytes_per_sample = 3 if _suffix(path) == ".bdf" else 2
    with open(path, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256:
            raise RecordingError(path, f"not a valid EDF/BDF file: only {size} bytes (an EDF header is 256+ bytes). "
                                       "Re-download or re-export the file.")
        try:
            header_bytes = int(head[184:192].decode("ascii").strip())
            n_records = int(head[236:244].decode("ascii").strip())
            duration = float(head[244:252].decode("ascii").strip())
            ns = int(head[252:256].decode("ascii").strip())
        except ValueError as err:
            raise RecordingError(path, f"corrupt EDF/BDF header ({err}). Re-download or re-export the file.") from None
        if ns <= 0 or header_bytes != 256 * (ns + 1):
            raise RecordingError(path, f"corrupt EDF/BDF header: {ns} signals but header size {header_bytes} bytes. "
                                       "Re-download or re-export the file.")
        fh.seek(256 + ns * 216)
        raw = fh.read(ns * 8)
    try:
        samples = [int(raw[i * 8:(i + 1) * 8].decode("ascii").strip()) for i in range(ns)]
    except ValueError:
        raise RecordingError(path, "corrupt EDF/BDF header: unreadable samples-per-record field. "
                                   "Re-download or re-export the file.") from None
    expected = header_bytes + (n_records * sum(samples) * bytes_per_sample if n_records > 0 else 0)
    if n_records > 0 and size < expected:
        got = (size - header_bytes) / max(1, sum(samples) * bytes_per_sample)
        raise RecordingError(
            path,
            f"truncated file: header promises {n_records} data records ({n_records * duration:.1f} s, "
            f"{expected} bytes) but the file has {size} bytes (~{got:.1f} records). The copy or download was "
            "interrupted: re-download it, or remove it from the source folder.",
        )
    with open(path, "rb") as fh:
        fh.seek(256)
        labels = [fh.read(16).decode("latin-1").strip() for _ in range(ns)]
        fh.seek(256 + ns * 96)
        units = [fh.read(8).decode("latin-1").strip() for _ in range(ns)]
    return dict(n_records=n_records, record_duration=duration, n_signals=ns, expected_bytes=expected,
                actual_bytes=size, labels=labels, units=units)


# Physical dimensions of a voltage, and their factor to volts. MNE's EDF/BDF reader scales µV and mV and leaves
# everything else as read (so nV would come out 10^9 too large, and a non-voltage unit is taken for volts).
_VOLTS = {"V": 1.0, "mV": 1e-3, "uV": 1e-6, "nV": 1e-9}
_MNE_EDF_SCALED = {"mV", "uV"}


def _unit_key(unit: str) -> str:
    return unit.strip().replace("\u03bc", "u").replace("\u00b5", "u").replace("\x83\xca", "u")


def _honour_edf_units(raw, path: Path, header: dict) -> None:
    """Apply the EDF/BDF physical dimension of every EEG channel that MNE does not (nV), and refuse EEG
    electrodes recorded in a unit that is not a voltage; other non-voltage channels are marked ``misc``-free
    (dropped from the EEG) with a warning."""
    from neuript.electrodes import parse_channel

    units = {lab: u for lab, u in zip(header["labels"], header["units"]) if "annotation" not in lab.lower()}
    types = raw.get_channel_types()
    rescale, refuse, drop = {}, {}, {}
    for ch, typ in zip(raw.ch_names, types):
        if typ != "eeg" or ch not in units or units[ch] == "":
            continue  # no unit written: MNE reads volts; the amplitude check catches a wrong scale
        key = _unit_key(units[ch])
        if key in _VOLTS:
            if key not in _MNE_EDF_SCALED and key != "V":
                rescale[ch] = _VOLTS[key]
            continue
        spec = parse_channel(ch)
        (refuse if spec.kind == "eeg" and spec.known else drop)[ch] = units[ch]
    if refuse:
        shown = ", ".join(f"{c} ({u!r})" for c, u in list(refuse.items())[:6])
        raise RecordingError(path, f"EEG channels with a physical unit that is not a voltage: {shown}"
                                   f"{' ...' if len(refuse) > 6 else ''}. EEG must be in V, mV, µV or nV. If these "
                                   "are EEG, fix the physical dimension in the file header (e.g. with EDFbrowser's "
                                   "header editor); if not, rename them so they are not taken for electrodes.")
    if drop:
        warnings.warn(f"{path}: channels {sorted(drop)} have non-voltage units {sorted(set(drop.values()))}; they "
                      "are not used as EEG", RuntimeWarning, stacklevel=3)
        raw.set_channel_types({ch: "bio" for ch in drop}, verbose="error")
    if rescale and not raw.preload:
        raw.load_data(verbose="error")
    for ch, factor in rescale.items():
        raw.apply_function(lambda x, f=factor: x * f, picks=[ch], verbose="error")


def _refuse_duplicate_electrodes(path: Path, header: dict) -> None:
    """Refuse an EDF/BDF whose header gives two signals the same electrode label: MNE renames them ``X-0``,
    ``X-1``, after which neither is taken for the electrode and the error would only say it is missing."""
    from neuript.electrodes import parse_channel

    seen: dict[str, list[int]] = {}
    for i, lab in enumerate(header["labels"]):
        if lab and "annotation" not in lab.lower():
            seen.setdefault(lab, []).append(i + 1)
    dup = {lab: idx for lab, idx in seen.items() if len(idx) > 1 and parse_channel(lab).kind != "non_eeg"}
    if dup:
        shown = "; ".join(f"{lab!r} (signals {', '.join(map(str, idx))})" for lab, idx in list(dup.items())[:6])
        raise RecordingError(path, f"duplicate channel labels in the header: {shown}. Which signal is which "
                                   "electrode cannot be known. Fix the labels in the file header (e.g. with "
                                   "EDFbrowser's header editor) or re-export the recording with unique labels; if "
                                   "you know which is which, MNE reads them as '<label>-0', '<label>-1': convert the "
                                   "file to FIF with those renamed.")


def read_raw(path: str | os.PathLike, *, preload: bool = True, check: bool = True):
    """Read one EEG recording with MNE.

    Parameters
    ----------
    path : str or path-like
        An EDF/EDF+/BDF/GDF, FIF, EEGLAB ``.set`` (with its ``.fdt``), BrainVision ``.vhdr`` or CNT file.
    preload : bool, default True
        Load the signals into memory.
    check : bool, default True
        Validate EDF/BDF headers against the file size (see :func:`check_edf_header`) and that the recording
        has samples and a positive sampling rate.

    Returns
    -------
    mne.io.Raw

    Raises
    ------
    FileNotFoundError
        The file (or a companion file such as ``.fdt``/``.eeg``) does not exist.
    RecordingError
        Unsupported format, corrupt or truncated file; the message names the file.
    """
    import mne

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such recording file")
    if not path.is_file():
        raise RecordingError(path, "is not a file")
    suffix = _suffix(path)
    if suffix not in SUPPORTED_SUFFIXES:
        raise RecordingError(path, f"unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    header = check_edf_header(path) if check and suffix in (".edf", ".bdf") else None
    readers = {
        ".edf": mne.io.read_raw_edf, ".bdf": mne.io.read_raw_bdf, ".gdf": mne.io.read_raw_gdf,
        ".fif": mne.io.read_raw_fif, ".fif.gz": mne.io.read_raw_fif, ".set": mne.io.read_raw_eeglab,
        ".vhdr": mne.io.read_raw_brainvision, ".cnt": mne.io.read_raw_cnt,
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            raw = readers[suffix](path, preload=preload, verbose="error")
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{path}: a file it needs is missing ({err})") from err
    except Exception as err:  # noqa: BLE001 - every reader failure becomes one clear error naming the file
        raise RecordingError(path, f"could not be read as {suffix} ({type(err).__name__}: {err}). "
                                   "The file is corrupt or not what its extension says.") from err
    if check:
        if len(raw.ch_names) == 0:
            raise RecordingError(path, "no EEG channels in this file: it holds no signal channels at all (only "
                                       "annotations, e.g. a Sleep-EDF hypnogram). Read the matching signal file "
                                       "(the PSG) instead; its annotations can be attached to it.")
        if raw.info["sfreq"] <= 0 or raw.n_times == 0:
            raise RecordingError(path, f"has no samples (n_times={raw.n_times}, sfreq={raw.info['sfreq']})")
        if header is not None:
            _refuse_duplicate_electrodes(path, header)
            _honour_edf_units(raw, path, header)
        if preload:
            data = raw._data
            bad = ~np.isfinite(data).all(axis=1)
            if bad.any():
                names = [raw.ch_names[i] for i in np.flatnonzero(bad)]
                warnings.warn(f"{path}: channels {names} contain NaN/Inf samples; windows touching them will be "
                              "rejected (reason 'nan')", RuntimeWarning, stacklevel=2)
    return raw
