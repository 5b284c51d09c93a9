"""One recording → model input: electrode matching, interpolation of missing electrodes, the model's own
preprocessing, windows and per-window quality flags.

Used by offline prediction (:func:`neuript.inference.predict_file`, :func:`neuript.inference.predict` on MNE
objects) and by the streaming predictor, so a file, an ``mne.io.Raw`` and a live stream are turned into windows
by the same code. The data layer knows nothing of models: it gets the channel names, window length and
:class:`~neuript.data.preprocess.PreprocessConfig` the model was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import warnings

import numpy as np

from neuript.data.preprocess import PreprocessConfig, flat_window_electrodes, preprocess_raw, sliding_windows

__all__ = ["ModelInput", "RecordingWindows", "model_channels", "recording_windows", "window_quality",
           "needed_electrodes", "check_amplitude",
           "check_sampling_rate", "default_max_interpolated"]


@dataclass(frozen=True)
class ModelInput:
    """What a model expects of its input: channel names in order, window length, preprocessing."""

    ch_names: tuple[str, ...]
    n_times: int
    preprocessing: PreprocessConfig

    @property
    def sfreq(self) -> float:
        return float(self.preprocessing.sfreq)


@dataclass
class RecordingWindows:
    """Windows of one recording in µV (n, C, T), ready for the input transform, with what to report per window."""

    windows: np.ndarray
    starts_s: np.ndarray
    sfreq: float
    n_times: int
    peak_uv: np.ndarray
    quality: np.ndarray
    interpolated: list[str] = field(default_factory=list)
    epoch: np.ndarray | None = None  # the epoch of each window, for mne.Epochs input
    source_sfreq: float = 0.0  # the recording's own rate (below ``sfreq``: the model saw upsampled data)

    @property
    def upsampled(self) -> bool:
        return 0 < self.source_sfreq < self.sfreq


def default_max_interpolated(n_needed: int) -> int:
    """How many of the ``n_needed`` electrodes ``allow_missing`` interpolates by default: a quarter (at least
    one). Beyond that the interpolated channels are mostly copies of their neighbours."""
    return max(1, n_needed // 4)


def check_sampling_rate(sfreq_in: float, sfreq_out: float, source: str) -> None:
    """Warn about a usable but unusual rate: not a whole number of Hz, or below the model's (upsampled)."""
    if sfreq_in < sfreq_out:
        warnings.warn(f"{source}: sampled at {sfreq_in:g} Hz, below the model's {sfreq_out:g} Hz; it is upsampled, "
                      f"so the band above {sfreq_in / 2:g} Hz is empty (flagged as upsampled in the output)",
                      UserWarning, stacklevel=3)
    elif abs(sfreq_in - round(sfreq_in)) > 1e-6:
        warnings.warn(f"{source}: unusual sampling rate {sfreq_in:g} Hz (not a whole number); resampled to "
                      f"{sfreq_out:g} Hz by a rational approximation of the ratio", UserWarning, stacklevel=3)


def needed_electrodes(ch_names: Sequence[str]) -> list[str]:
    """The canonical electrodes that the (monopolar or bipolar) channels ``ch_names`` are built from."""
    from neuript.electrodes import parse_channel

    out: list[str] = []
    for name in ch_names:
        for e in parse_channel(name).electrodes:
            if e not in out:
                out.append(e)
    return out


def _present_electrodes(raw, rename: dict[str, str] | None) -> dict[str, str]:
    """canonical electrode → raw channel name, for the monopolar EEG channels of ``raw``."""
    from neuript.electrodes import parse_channel

    out: dict[str, str] = {}
    for ch in raw.ch_names:
        spec = parse_channel((rename or {}).get(ch, ch))
        if spec.kind == "eeg" and spec.known:
            out.setdefault(spec.electrodes[0], ch)
    return out


def _interpolate_missing(raw, needed: list[str], rename: dict[str, str] | None):
    """Add the ``needed`` electrodes the recording lacks, by spherical-spline interpolation (MNE) from the
    electrodes it has. Returns a new Raw holding the monopolar EEG channels under canonical names."""
    import mne

    from neuript.electrodes import channel_positions

    present = _present_electrodes(raw, rename)
    missing = [e for e in needed if e not in present]
    raw = raw.copy().load_data().pick(list(present.values()))
    raw.rename_channels({ch: e for e, ch in present.items()})
    if missing:
        zeros = mne.io.RawArray(np.zeros((len(missing), raw.n_times)),
                                mne.create_info(missing, raw.info["sfreq"], "eeg"), verbose="error")
        raw.add_channels([zeros], force_update_info=True)
    names = list(raw.ch_names)
    pos = channel_positions(names)
    raw.set_montage(mne.channels.make_dig_montage(ch_pos=dict(zip(names, pos)), coord_frame="head"),
                    verbose="error")
    if missing:
        raw.info["bads"] = missing
        raw.interpolate_bads(reset_bads=True, origin="auto", verbose="error")
    return raw, missing


def model_channels(raw, spec: ModelInput, *, rename: dict[str, str] | None = None, allow_missing: bool = False,
                   max_interpolated: int | None = None, source: str | None = None,
                   flat_out: dict | None = None) -> tuple[np.ndarray, float, list[str]]:
    """Preprocess ``raw`` as the model's training data were and return its channels in the model's order.

    Returns
    -------
    data : ndarray (C, N) float32
        Microvolts at the model's rate, rows in ``spec.ch_names`` order.
    sfreq : float
    interpolated : list of str
        Electrodes the recording lacked, interpolated from their neighbours (only with ``allow_missing``).

    With ``allow_missing``, at most ``max_interpolated`` electrodes are interpolated (default
    :func:`default_max_interpolated`); more is an error naming them. ``flat_out``, if given, is filled with the recorded electrodes that are flat somewhere (see
    :func:`neuript.data.preprocess.preprocess_raw`).
    """
    from neuript.electrodes import parse_channel

    src = source or _source(raw)
    want = list(spec.ch_names)  # compared by electrode: "EEG T3" is "T7", "FP1-F7" is "Fp1-F7"
    needed = needed_electrodes(want)
    from neuript.electrodes import check_not_grid_cap

    check_not_grid_cap([(rename or {}).get(c, c) for c in raw.ch_names], src)
    present = _present_electrodes(raw, rename)
    missing = [e for e in needed if e not in present]
    interpolated: list[str] = []
    if missing:
        if not allow_missing:
            raise ValueError(
                f"{src}: the model needs electrodes {missing}, which the recording lacks (it has "
                f"{sorted(present) or 'no recognised EEG electrodes'}; channels: {list(raw.ch_names)}). Fix: map "
                "differently named channels with --rename OLD=NEW, or pass --allow-missing to interpolate the "
                "missing electrodes from their neighbours (spherical splines; predictions degrade with every "
                "interpolated electrode)."
            )
        limit = default_max_interpolated(len(needed)) if max_interpolated is None else int(max_interpolated)
        if len(missing) > limit:
            raise ValueError(
                f"{src}: the recording lacks {len(missing)} of the {len(needed)} electrodes the model needs "
                f"({missing}); --allow-missing interpolates at most {limit} (--max-interpolated). Beyond that the "
                "model mostly sees copies of neighbouring channels. Map differently named channels with --rename "
                "OLD=NEW, or raise --max-interpolated if you accept degraded predictions.")
        raw, interpolated = _interpolate_missing(raw, needed, rename)
        warnings.warn(f"{src}: interpolated {len(interpolated)} missing electrode(s) {interpolated} from their "
                      "neighbours (spherical splines); they are listed in the output's 'interpolated' column",
                      UserWarning, stacklevel=2)
        rename = None
    data, ch_names, _, sfreq = preprocess_raw(raw, spec.preprocessing, rename=rename, flat_out=flat_out)
    got, wanted = [parse_channel(c).canonical or c for c in ch_names], [parse_channel(c).canonical or c for c in want]
    if got != wanted:
        if sorted(got) != sorted(wanted):
            raise ValueError(f"{src}: preprocessing gave channels {list(ch_names)}, the model expects {want}")
        data = data[[got.index(c) for c in wanted]]
    return data, float(sfreq), interpolated



def window_quality(windows: np.ndarray, pp: PreprocessConfig, *,
                   dead: Sequence[Sequence[str]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag windows the training data would have rejected (amplitude, flat channel, NaN) instead of dropping
    them; returns the windows with NaN/inf zeroed, their peak |µV| and the flags (``"ok"`` or the reason).

    ``dead``: per window, the recorded electrodes flat in it that the model's montage hides (e.g. Fp1 inside
    Fp1-F7; :func:`neuript.data.preprocess.flat_window_electrodes`), flagged ``flat_electrode:<names>`` unless
    the window is ``nan``."""
    peak = np.abs(windows).max(axis=(1, 2)) if len(windows) else np.zeros(0)
    ptp = windows.max(axis=2) - windows.min(axis=2) if len(windows) else np.zeros((0, 0))
    quality = np.full(len(windows), "ok", dtype=object)
    if pp.reject_uv is not None:
        quality[peak > pp.reject_uv] = f"amplitude>{pp.reject_uv:g}uV"
    if pp.flat_uv is not None and len(windows):
        quality[(ptp < pp.flat_uv).any(axis=1)] = "flat_channel"
    for k, names in enumerate(dead or ()):
        if names:
            quality[k] = "flat_electrode:" + "+".join(names)
    quality[~np.isfinite(windows).all(axis=(1, 2))] = "nan"
    return np.nan_to_num(windows, nan=0.0, posinf=0.0, neginf=0.0), peak, quality


#: Bounds of a plausible scalp-EEG scale after preprocessing, in µV: the median absolute deviation of real
#: recordings here is 6-32 µV (EEGMAT, EEGMMIDB, Sleep-EDF), so 1 mV is 30x beyond the noisiest, and a signal whose
#: 99th percentile stays below 0.1 µV carries no EEG.
MAX_TYPICAL_UV = 1000.0
MIN_P99_UV = 0.1


def check_amplitude(data_uv: np.ndarray, source: str, ch_names: Sequence[str] | None = None) -> None:
    """Refuse signals whose scale is implausible for scalp EEG (typical: 10-100 µV), naming the likely cause.

    MNE objects hold volts; a signal written in µV but declared as volts is 10^6 too large, one in mV declared
    as µV 10^3 too large, one in volts declared as µV 10^6 too small. All-flat signals are not refused here
    (they are rejected or flagged as flat windows)."""
    finite = data_uv[np.isfinite(data_uv)]
    if finite.size == 0:
        return
    dev = np.abs(finite - np.median(finite))
    typical = float(np.median(dev))
    p99 = float(np.percentile(dev, 99))
    if typical > MAX_TYPICAL_UV:
        raise ValueError(
            f"{source}: the EEG's typical amplitude is {typical:.3g} µV after preprocessing (median absolute "
            f"deviation; scalp EEG: tens of µV, refused above {MAX_TYPICAL_UV:g}). Likely a unit error: microvolts "
            "stored as volts (x10^6) or millivolts as microvolts (x10^3). Fix the physical dimension in the file "
            "header, or, for an MNE object (which holds volts), rescale it: raw.apply_function(lambda x: x * 1e-6)."
        )
    if 0 < p99 < MIN_P99_UV:
        raise ValueError(
            f"{source}: 99 % of the EEG stays within {p99:.3g} µV after preprocessing, implausibly small for scalp "
            f"EEG (refused below {MIN_P99_UV:g} µV). Likely the values were scaled to volts twice, or the unit in "
            "the header says V where the numbers are µV-scaled volts. Check the file header's unit, or for an MNE "
            "object multiply the data by 1e6."
        )
    if ch_names is not None and data_uv.ndim == 2 and len(ch_names) == data_uv.shape[0] > 1:
        _check_channel_amplitude(data_uv, source, list(ch_names))


def _check_channel_amplitude(data_uv: np.ndarray, source: str, ch_names: list[str]) -> None:
    """Refuse a recording in which some channels (not all) have an implausible scale: one electrode recorded with
    another gain or unit would otherwise feed the model values 10^3 too large without any error."""
    from neuript.electrodes import parse_channel

    typical = np.array([float(np.median(np.abs(r - np.median(r)))) if r.size else 0.0
                        for r in (row[np.isfinite(row)] for row in data_uv)])
    bad = np.flatnonzero(typical > MAX_TYPICAL_UV)
    if not len(bad):
        return
    names = [ch_names[i] for i in bad]
    sets = [set(parse_channel(n).electrodes) or {n} for n in names]
    common = sorted(set.intersection(*sets)) if sets else []
    who = f"electrode {'/'.join(common)}" if common and len(names) > 1 else f"channel {names[0]}" \
        if len(names) == 1 else "these channels"
    others = float(np.median(np.delete(typical, bad))) if len(bad) < len(typical) else float("nan")
    raise ValueError(
        f"{source}: channel(s) {', '.join(names)} have a typical amplitude of "
        f"{', '.join(f'{typical[i]:.3g}' for i in bad)} µV after preprocessing (median absolute deviation; the other "
        f"channels {others:.3g} µV; refused above {MAX_TYPICAL_UV:g}): a wrong gain or unit on {who}. Check that "
        "channel's physical dimension and gain in the file header, or drop the channel (predict/embed: with "
        "--allow-missing it is then interpolated from its neighbours)."
    )


def _source(raw) -> str:
    fn = raw.filenames[0] if getattr(raw, "filenames", None) else None
    return str(fn) if fn else "the recording"


def recording_windows(raw, spec: ModelInput, *, stride_s: float | None = None, rename: dict[str, str] | None = None,
                      allow_missing: bool = False, max_interpolated: int | None = None,
                      source: str | None = None) -> RecordingWindows:
    """Windows of an ``mne.io.Raw`` (or ``mne.Epochs``: each epoch windowed on its own) for a model."""
    import mne

    src = source or _source(raw)
    if isinstance(raw, mne.BaseEpochs):
        return _epochs_windows(raw, spec, stride_s=stride_s, rename=rename, allow_missing=allow_missing,
                               max_interpolated=max_interpolated, source=src)
    flat: dict[str, np.ndarray] = {}
    data, sfreq, interpolated = model_channels(raw, spec, rename=rename, allow_missing=allow_missing,
                                               max_interpolated=max_interpolated, source=src, flat_out=flat)
    check_sampling_rate(float(raw.info["sfreq"]), sfreq, src)
    check_amplitude(data, src, ch_names=list(spec.ch_names))
    n_times = int(spec.n_times)
    stride = n_times if stride_s is None else max(1, int(round(stride_s * sfreq)))
    windows, starts = sliding_windows(data, n_times, stride)
    if len(windows) == 0:
        raise ValueError(f"{src}: {data.shape[1] / sfreq:.1f} s after preprocessing, shorter than one "
                         f"{n_times / sfreq:.1f} s window of the model")
    windows, peak, quality = window_quality(windows, spec.preprocessing,
                                            dead=flat_window_electrodes(flat, starts, n_times))
    return RecordingWindows(windows=windows, starts_s=starts / sfreq, sfreq=sfreq, n_times=n_times, peak_uv=peak,
                            quality=quality, interpolated=interpolated, source_sfreq=float(raw.info["sfreq"]))


def _epochs_windows(epochs, spec: ModelInput, *, stride_s, rename, allow_missing, max_interpolated,
                    source) -> RecordingWindows:
    """Each epoch as a short recording (note: the band-pass then sees only the epoch; filter long epochs)."""
    import dataclasses

    import mne

    # an epoch has no recording-level crop or minimum duration
    pp = dataclasses.replace(spec.preprocessing, crop_start_s=0.0, crop_end_s=0.0, min_duration_s=None)
    spec_e = ModelInput(ch_names=spec.ch_names, n_times=spec.n_times, preprocessing=pp)
    parts, epoch_of = [], []
    data = epochs.get_data(copy=False) if "copy" in epochs.get_data.__code__.co_varnames else epochs.get_data()
    for i, ep in enumerate(data):
        raw = mne.io.RawArray(ep, epochs.info, first_samp=0, verbose="error")
        try:
            with warnings.catch_warnings():
                if i:  # the same rate / interpolation notice for every epoch: say it once
                    warnings.simplefilter("ignore", UserWarning)
                rw = recording_windows(raw, spec_e, stride_s=stride_s, rename=rename, allow_missing=allow_missing,
                                       max_interpolated=max_interpolated, source=f"{source} epoch {i}")
        except ValueError as e:
            if "shorter than one" in str(e):
                raise ValueError(f"{source}: epoch {i} is shorter than the model's {spec.n_times / spec.sfreq:g} s "
                                 "window; make longer epochs (tmin/tmax) or use a model with shorter windows") from None
            raise
        rw.starts_s = rw.starts_s + float(epochs.tmin)
        parts.append(rw)
        epoch_of.append(np.full(len(rw.windows), i))
    if not parts:
        raise ValueError(f"{source}: the Epochs object holds no epochs")
    first = parts[0]
    return RecordingWindows(
        windows=np.concatenate([p.windows for p in parts]), starts_s=np.concatenate([p.starts_s for p in parts]),
        sfreq=first.sfreq, n_times=first.n_times, peak_uv=np.concatenate([p.peak_uv for p in parts]),
        quality=np.concatenate([p.quality for p in parts]), interpolated=first.interpolated,
        epoch=np.concatenate(epoch_of), source_sfreq=first.source_sfreq,
    )
