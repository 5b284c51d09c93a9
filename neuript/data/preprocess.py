"""Preprocessing: channel selection, re-referencing, filtering, resampling, windowing, rejection, companding.

Defaults follow the paper (spec §1): 20-channel TCP bipolar montage, band-pass 0.1-30 Hz, notch at mains,
resample to 64 Hz, microvolts, reject |x| > 100 µV and flat channels, A-law companding with A = 0.25.
Everything is deterministic (MNE FIR filters and polyphase/FFT resampling have no randomness).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Sequence

import numpy as np

from neuript.electrodes import TCP_BIPOLAR, UnknownChannelError, channel_positions, check_not_grid_cap, \
    parse_channel

__all__ = [
    "PreprocessConfig",
    "preprocess_raw",
    "sliding_windows",
    "event_windows",
    "reject_windows",
    "REJECT_REASONS",
    "alaw",
    "preemphasis",
    "preemphasis_gain",
    "tcp_montage",
    "resample",
]

#: Rejection reasons, in the order they are tested (a window is counted under its first reason only).
REJECT_REASONS = ("nan", "flat", "amplitude")


@dataclass
class PreprocessConfig:
    """Preprocessing settings; defaults are the paper's (spec §1).

    Attributes
    ----------
    reference : {"tcp", "average", "as_recorded", "bipolar"}
        ``tcp``: build the 20 double-banana pairs of :data:`~neuript.electrodes.TCP_BIPOLAR` from monopolar
        channels (or take them as recorded if the file is already bipolar). ``average``: common average
        reference over the selected monopolar EEG channels. ``as_recorded``: keep the selected channels as they
        are. ``bipolar``: the pairs in ``bipolar_pairs``.
    channels : list of str, optional
        Keep only these channels (matched by canonical name, so ``"T3"`` finds ``"EEG T3"``); order is kept.
    bipolar_pairs : list of str, optional
        ``"A-B"`` pairs for ``reference="bipolar"``.
    drop_unknown : bool
        Drop channels whose name is not a known electrode (with a warning naming them) instead of raising.
    l_freq, h_freq : float or None
        Band-pass edges in Hz (None disables that edge).
    notch : float or None
        Mains frequency in Hz (50 or 60); harmonics below Nyquist are notched too. None disables.
    sfreq : float
        Target sampling rate (Hz).
    window_s, stride_s : float
        Window length and stride in seconds (stride = window: non-overlapping).
    reject_uv : float or None
        Reject windows with any ``|x| > reject_uv`` µV; None disables (windows are still counted and the peak
        amplitude is recorded per window).
    flat_uv : float or None
        A channel whose peak-to-peak within a window is below this many µV is flat; the window is rejected.
    min_duration_s : float or None
        Recordings shorter than this (before cropping) are skipped (pretraining rule: 300 s).
    crop_start_s, crop_end_s : float
        Seconds cut from the start / end of every recording (pretraining rule: 60 / 60).
    montage : str
        MNE montage used for electrode positions.
    """

    reference: Literal["tcp", "average", "as_recorded", "bipolar"] = "tcp"
    channels: list[str] | None = None
    bipolar_pairs: list[str] | None = None
    drop_unknown: bool = False
    l_freq: float | None = 0.1
    h_freq: float | None = 30.0
    notch: float | None = 50.0
    sfreq: float = 64.0
    window_s: float = 4.0
    stride_s: float | None = None
    reject_uv: float | None = 100.0
    flat_uv: float | None = 0.1
    min_duration_s: float | None = None
    crop_start_s: float = 0.0
    crop_end_s: float = 0.0
    montage: str = "standard_1005"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reference not in ("tcp", "average", "as_recorded", "bipolar"):
            raise ValueError(f"reference must be tcp, average, as_recorded or bipolar, got {self.reference!r}")
        if self.reference == "bipolar" and not self.bipolar_pairs:
            raise ValueError("reference='bipolar' needs bipolar_pairs, e.g. ['Fpz-Cz', 'Pz-Oz']")
        if self.sfreq <= 0 or self.window_s <= 0:
            raise ValueError("sfreq and window_s must be positive")
        if self.stride_s is not None and self.stride_s <= 0:
            raise ValueError("stride_s must be positive")
        if self.h_freq is not None and self.h_freq >= self.sfreq / 2:
            raise ValueError(f"h_freq={self.h_freq} Hz must be below the target Nyquist frequency {self.sfreq / 2} Hz")

    @property
    def n_times(self) -> int:
        """Samples per window at the target rate."""
        return int(round(self.window_s * self.sfreq))

    @property
    def stride(self) -> int:
        """Stride in samples at the target rate."""
        return int(round((self.stride_s or self.window_s) * self.sfreq))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise (a typo must not silently fall back to a default)."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown PreprocessConfig keys {sorted(unknown)}; valid keys: {sorted(names)}")
        return cls(**d)


# ----------------------------------------------------------------------------------------------------------
# Montage building
# ----------------------------------------------------------------------------------------------------------


def _source(raw) -> str:
    try:
        fn = raw.filenames[0]
        return str(fn) if fn else "<in-memory raw>"
    except Exception:  # noqa: BLE001
        return "<in-memory raw>"


def tcp_montage(data: np.ndarray, ch_names: Sequence[str], *, pairs: Sequence[str] = TCP_BIPOLAR,
                source: str = "<recording>") -> np.ndarray:
    """Bipolar derivations ``A - B`` from monopolar (or already-bipolar) channels, matched by canonical name.

    Raises
    ------
    UnknownChannelError-like ValueError
        Naming the electrodes that are missing from ``ch_names``.
    """
    mono: dict[str, int] = {}
    bip: dict[tuple[str, str], int] = {}
    for i, n in enumerate(ch_names):
        spec = parse_channel(n)
        if spec.kind == "eeg" and spec.known:
            mono.setdefault(spec.electrodes[0], i)
        elif spec.kind == "bipolar":
            bip.setdefault(spec.electrodes, i)
    out = np.empty((len(pairs), data.shape[1]), dtype=data.dtype)
    missing: list[str] = []
    for k, pair in enumerate(pairs):
        a, b = parse_channel(pair).electrodes
        if (a, b) in bip:
            out[k] = data[bip[(a, b)]]
        elif (b, a) in bip:
            out[k] = -data[bip[(b, a)]]
        elif a in mono and b in mono:
            out[k] = data[mono[a]] - data[mono[b]]
        else:
            missing += [e for e in (a, b) if e not in mono]
    if missing:
        miss = sorted(set(missing))
        raise ValueError(
            f"{source}: cannot build the bipolar montage: electrodes {miss} are missing (channels present: "
            f"{list(ch_names)}). Fix: rename the channels that hold them (--rename OLD=NEW or a mapping file; "
            "rename= in Python), or use reference='average' / 'as_recorded' for this dataset."
        )
    return out


def monopolar_flat(data_uv: np.ndarray, *, sfreq: float, flat_uv: float, segment_s: float = 1.0) -> np.ndarray:
    """(C, N) bool: samples lying in a ``segment_s`` segment where the channel's peak-to-peak is below
    ``flat_uv`` (a dead or disconnected electrode). Run on the recorded channels, before any re-reference: a flat
    Fp1 in ``Fp1-F7`` is the inverted F7, not flat, so after the montage it could no longer be seen."""
    n = data_uv.shape[1]
    seg = max(1, int(round(segment_s * sfreq)))
    n_seg = -(-n // seg)
    pad = np.pad(data_uv, ((0, 0), (0, n_seg * seg - n)), mode="edge").reshape(len(data_uv), n_seg, seg)
    flat_seg = (pad.max(axis=2) - pad.min(axis=2)) < flat_uv
    return np.repeat(flat_seg, seg, axis=1)[:, :n]


def flat_window_electrodes(flat: dict[str, np.ndarray], starts: np.ndarray, n_times: int,
                           min_fraction: float = 0.5) -> list[list[str]]:
    """For each window (start sample, ``n_times`` long): the electrodes flat over at least ``min_fraction`` of it."""
    out: list[list[str]] = [[] for _ in range(len(starts))]
    for name, mask in flat.items():
        csum = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        stop = np.minimum(np.asarray(starts, np.int64) + n_times, len(mask))
        frac = (csum[stop] - csum[np.asarray(starts, np.int64)]) / n_times
        for k in np.flatnonzero(frac >= min_fraction):
            out[k].append(name)
    return out


def preprocess_raw(raw, config: PreprocessConfig | None = None, *, rename: dict[str, str] | None = None,
                   flat_out: dict | None = None):
    """Preprocess one recording (the same code path ``prepare`` uses).

    Steps: channel selection (non-EEG dropped, unknown names raise or are dropped with a warning), optional
    crop, re-reference (TCP / average / as recorded / custom bipolar), band-pass, notch, resample.

    Parameters
    ----------
    raw : mne.io.Raw
        A recording, e.g. from :func:`neuript.data.io.read_raw`.
    config : PreprocessConfig, optional
        Defaults to the paper's settings.
    flat_out : dict, optional
        If given, filled with ``electrode -> (N,) bool`` at the output rate for every recorded (monopolar)
        electrode that is flat somewhere (:func:`monopolar_flat` with ``config.flat_uv``; nothing when
        ``flat_uv`` is None). Windows that lie mostly on such samples are rejected (``prepare``) or flagged
        (``predict``) even where a bipolar or average montage hides the dead electrode.
    rename : dict, optional
        Raw channel name → electrode label, for non-standard names (``{"EEG 000": "Fp1"}``).

    Returns
    -------
    data : numpy.ndarray (C, N) float32
        Microvolts at ``config.sfreq``.
    ch_names : list of str
        Output channel names (canonical labels, or the pairs for bipolar montages).
    positions : numpy.ndarray (C, 3)
        Head-frame positions in metres (bipolar: midpoints).
    sfreq : float
    """
    import mne

    cfg = config or PreprocessConfig()
    src = _source(raw)
    rename = dict(rename or {})
    names = [rename.get(n, n) for n in raw.ch_names]
    check_not_grid_cap(names, src)
    sfreq_in = float(raw.info["sfreq"])
    duration = raw.n_times / sfreq_in
    if cfg.min_duration_s is not None and duration < cfg.min_duration_s:
        raise ValueError(f"{src}: recording is {duration:.1f} s, shorter than min_duration_s={cfg.min_duration_s}")

    # --- channel selection ---------------------------------------------------------------------------
    types = raw.get_channel_types()
    keep: list[int] = []
    unknown: list[str] = []
    for i, (n, t) in enumerate(zip(names, types)):
        spec = parse_channel(n)
        if t not in ("eeg", "seeg", "ecog", "misc") or spec.kind == "non_eeg":
            continue
        if not spec.known:
            loc = np.asarray(raw.info["chs"][i]["loc"][:3], dtype=float)
            if np.all(np.isfinite(loc)) and np.any(loc != 0) and cfg.reference in ("as_recorded", "average"):
                keep.append(i)  # position stored in the file
                continue
            unknown.append(raw.ch_names[i])
            continue
        keep.append(i)
    if unknown:
        if cfg.drop_unknown:
            warnings.warn(f"{src}: dropping channels with unknown names {unknown}", RuntimeWarning, stacklevel=2)
        elif cfg.reference in ("as_recorded", "average") or not keep:
            err = UnknownChannelError(unknown, source=src)
            raise err
        # tcp/bipolar: unknown extra channels are simply not used by the montage
    if cfg.channels is not None:
        want = [(parse_channel(c).canonical or c) for c in cfg.channels]
        have = {(parse_channel(names[i]).canonical or names[i]): i for i in keep}
        missing = [c for c, w in zip(cfg.channels, want) if w not in have]
        if missing:
            raise ValueError(f"{src}: requested channels {missing} not found; available: "
                             f"{[names[i] for i in keep]}")
        keep = [have[w] for w in want]
    if not keep:
        raise ValueError(f"{src}: no EEG channels left after dropping non-EEG channels ({raw.ch_names})")

    # --- data in µV, crop --------------------------------------------------------------------------------
    start = int(round(cfg.crop_start_s * sfreq_in))
    stop = raw.n_times - int(round(cfg.crop_end_s * sfreq_in))
    if stop - start <= 0:
        raise ValueError(f"{src}: nothing left after cropping {cfg.crop_start_s} s + {cfg.crop_end_s} s "
                         f"from a {duration:.1f} s recording")
    data = raw.get_data(picks=keep, start=start, stop=stop) * 1e6
    sel_names = [names[i] for i in keep]
    flat_in = None
    if flat_out is not None and cfg.flat_uv is not None:
        mono = [k for k, n in enumerate(sel_names) if parse_channel(n).kind != "bipolar"]
        flat_in = {(parse_channel(sel_names[k]).canonical or sel_names[k]): m
                   for k, m in zip(mono, monopolar_flat(data[mono], sfreq=sfreq_in, flat_uv=cfg.flat_uv)) if m.any()}

    # --- reference ------------------------------------------------------------------------------------
    info_for_pos = None
    if cfg.reference in ("tcp", "bipolar"):
        try:
            data = tcp_montage(data, sel_names, source=src, **({"pairs": cfg.bipolar_pairs}
                                                                if cfg.reference == "bipolar" else {}))
        except ValueError as err:
            if not unknown:
                raise
            # the missing electrode is likely among the labels that were not recognised: name them
            raise ValueError(f"{err} Channels with unrecognised labels: {unknown[:20]}; if one of them holds a "
                             f"missing electrode, rename it (e.g. --rename '{unknown[0]}=<electrode>').") from None
        out_names = list(TCP_BIPOLAR) if cfg.reference == "tcp" else list(cfg.bipolar_pairs)
    else:
        if cfg.reference == "average":
            bip = [n for n in sel_names if parse_channel(n).kind == "bipolar"]
            if bip:
                raise ValueError(f"{src}: common average reference needs monopolar channels; {bip} are bipolar. "
                                 "Use reference='as_recorded' or drop them.")
            data = data - data.mean(axis=0, keepdims=True)
        out_names = [parse_channel(n).canonical or n for n in sel_names]
        info_for_pos = mne.pick_info(raw.info, keep)
        info_for_pos = mne.Info(info_for_pos) if not isinstance(info_for_pos, mne.Info) else info_for_pos
        # positions looked up by the (possibly renamed) original names
        info_for_pos = _renamed_info(info_for_pos, dict(zip(info_for_pos["ch_names"], out_names)))

    # --- filter, notch, resample (MNE, deterministic) -----------------------------------------------------
    if cfg.h_freq is not None and sfreq_in < 2 * cfg.h_freq:
        # the low-pass could not act: the result would silently lack the band the model was trained on
        raise ValueError(
            f"{src}: sampled at {sfreq_in:g} Hz, below twice the band-pass upper edge of {cfg.h_freq:g} Hz "
            f"({cfg.l_freq}-{cfg.h_freq} Hz); it cannot carry the band the preprocessing expects. Use a recording "
            f"sampled at {2 * cfg.h_freq:g} Hz or more, or prepare with a lower upper edge (--set h_freq=...)."
        )
    data = np.ascontiguousarray(data, dtype=np.float64)
    nyq = sfreq_in / 2
    h = cfg.h_freq if (cfg.h_freq is not None and cfg.h_freq < nyq) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "filter longer than signal" on short recordings
        if cfg.l_freq is not None or h is not None:
            data = mne.filter.filter_data(data, sfreq_in, cfg.l_freq, h, verbose="error")
        if cfg.notch:
            freqs = np.arange(cfg.notch, nyq - 1e-6, cfg.notch)
            if len(freqs):
                data = mne.filter.notch_filter(data, sfreq_in, freqs, verbose="error")
    if abs(sfreq_in - cfg.sfreq) > 1e-9:
        data = resample(data, sfreq_in=sfreq_in, sfreq_out=cfg.sfreq)
    positions = channel_positions(out_names, montage=cfg.montage, info=info_for_pos)
    if flat_in:
        # output sample i sits at input sample i * sfreq_in / sfreq_out
        idx = np.minimum((np.arange(data.shape[1]) * (sfreq_in / cfg.sfreq)).astype(np.int64), stop - start - 1)
        flat_out.update({name: m[idx] for name, m in flat_in.items()})
    return data.astype(np.float32), out_names, positions, float(cfg.sfreq)


def resample(data: np.ndarray, *, sfreq_in: float, sfreq_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis (MNE / scipy ``resample_poly``, Kaiser anti-aliasing FIR).

    Polyphase rather than MNE's default FFT method: measured on a 10 Hz + 3.3 Hz sine, 500 → 64 Hz, the FFT
    method is off by 13 % of the amplitude (a non-integer ratio), polyphase by 0.2 %; and 500 → 128 → 64 Hz
    agrees with 500 → 64 Hz to 0.03 µV with polyphase vs 17 µV with FFT on real EEGMAT data.
    """
    import mne
    from fractions import Fraction

    ratio = Fraction(sfreq_out / sfreq_in).limit_denominator(10000)
    if abs(float(ratio) - sfreq_out / sfreq_in) > 1e-9 * sfreq_out / sfreq_in:
        raise ValueError(f"cannot resample {sfreq_in} Hz to {sfreq_out} Hz with a rational ratio")
    return mne.filter.resample(data, up=ratio.numerator, down=ratio.denominator, method="polyphase",
                               verbose="error")


def _renamed_info(info, mapping):
    import mne

    info = info.copy()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne.rename_channels(info, {k: v for k, v in mapping.items() if k != v})
    except Exception:  # noqa: BLE001 - duplicate names after canonicalisation: keep original names
        return info
    return info


# ----------------------------------------------------------------------------------------------------------
# Windows
# ----------------------------------------------------------------------------------------------------------


def sliding_windows(data: np.ndarray, n_times: int, stride: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-length windows with a stride.

    Parameters
    ----------
    data : array (C, N)
    n_times : int
        Window length in samples.
    stride : int, optional
        Step in samples (default: ``n_times``, non-overlapping). A trailing partial window is dropped.

    Returns
    -------
    windows : array (n, C, n_times), a copy
    starts : array (n,) int64, start sample of each window
    """
    stride = int(stride or n_times)
    if n_times <= 0 or stride <= 0:
        raise ValueError("n_times and stride must be positive")
    n = data.shape[-1]
    if n < n_times:
        return np.empty((0, data.shape[0], n_times), dtype=data.dtype), np.empty(0, dtype=np.int64)
    starts = np.arange(0, n - n_times + 1, stride, dtype=np.int64)
    view = np.lib.stride_tricks.sliding_window_view(data, n_times, axis=-1)  # (C, N-T+1, T)
    return np.ascontiguousarray(view[:, starts].transpose(1, 0, 2)), starts


def event_windows(
    data: np.ndarray,
    *,
    sfreq: float,
    onsets_s: Sequence[float],
    durations_s: Sequence[float] | None = None,
    labels: Sequence[int],
    n_times: int,
    stride: int | None = None,
    offset_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows locked to events/annotations.

    An event with a duration at least one window long is cut into windows with ``stride`` inside
    ``[onset, onset + duration)``; a shorter (or zero-duration) event gives one window starting at
    ``onset + offset_s``. Windows running past the end of the data are dropped.

    Returns
    -------
    windows (n, C, n_times), starts (n,) in samples, labels (n,)
    """
    stride = int(stride or n_times)
    durations_s = list(durations_s) if durations_s is not None else [0.0] * len(onsets_s)
    starts: list[int] = []
    labs: list[int] = []
    n = data.shape[-1]
    for on, du, lab in zip(onsets_s, durations_s, labels):
        s0 = int(round((on + offset_s) * sfreq))
        length = int(round(du * sfreq))
        if length >= n_times:
            ss = range(s0, s0 + length - n_times + 1, stride)
        else:
            ss = [s0]
        for s in ss:
            if 0 <= s and s + n_times <= n:
                starts.append(s)
                labs.append(int(lab))
    st = np.asarray(starts, dtype=np.int64)
    if len(st) == 0:
        return np.empty((0, data.shape[0], n_times), dtype=data.dtype), st, np.asarray(labs, dtype=np.int64)
    win = np.stack([data[:, s:s + n_times] for s in st])
    return win, st, np.asarray(labs, dtype=np.int64)


def reject_windows(
    windows: np.ndarray, *, reject_uv: float | None = 100.0, flat_uv: float | None = 0.1
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Decide which windows to keep.

    Parameters
    ----------
    windows : array (n, C, T), microvolts
    reject_uv : float or None
        Reject when any ``|x| > reject_uv``.
    flat_uv : float or None
        Reject when any channel's peak-to-peak is below ``flat_uv``.

    Returns
    -------
    keep : bool array (n,)
    reason : object array (n,) — ``""`` for kept windows, else the first failing reason of
        :data:`REJECT_REASONS` (``"nan"``, ``"flat"``, ``"amplitude"``)
    counts : dict reason → number of windows rejected for it (each window counted once)
    """
    n = windows.shape[0]
    reason = np.full(n, "", dtype=object)
    if n == 0:
        return np.ones(0, bool), reason, {r: 0 for r in REJECT_REASONS}
    finite = np.isfinite(windows).all(axis=(1, 2))
    reason[~finite] = "nan"
    w = np.where(np.isfinite(windows), windows, 0.0)
    if flat_uv is not None:
        ptp = w.max(axis=2) - w.min(axis=2)
        flat = (ptp < flat_uv).any(axis=1)
        reason[(reason == "") & flat] = "flat"
    if reject_uv is not None:
        amp = np.abs(w).max(axis=(1, 2)) > reject_uv
        reason[(reason == "") & amp] = "amplitude"
    keep = reason == ""
    counts = {r: int((reason == r).sum()) for r in REJECT_REASONS}
    return keep, reason, counts


# ----------------------------------------------------------------------------------------------------------
# A-law companding
# ----------------------------------------------------------------------------------------------------------


def alaw(x, A: float = 0.25):
    """A-law companding of spec §1 (reference-code form, Euler's e in the denominator).

    ``y = sign(x) * A|x| / (e + ln A)`` for ``|x| < 1/A``, else ``sign(x) * (1 + ln(A|x|)) / (e + ln A)``.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Signal in microvolts.
    A : float, default 0.25

    Returns
    -------
    Same type, shape and (floating) dtype as ``x``.
    """
    if A <= 0:
        raise ValueError("A must be positive")
    denom = math.e + math.log(A)
    try:
        import torch

        if isinstance(x, torch.Tensor):
            ax = x.abs()
            small = A * ax / denom
            large = (1.0 + torch.log(torch.clamp(A * ax, min=1.0))) / denom
            return torch.sign(x) * torch.where(ax < 1.0 / A, small, large)
    except ImportError:  # pragma: no cover
        pass
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    ax = np.abs(x)
    small = A * ax / denom
    large = (1.0 + np.log(np.maximum(A * ax, 1.0))) / denom
    return (np.sign(x) * np.where(ax < 1.0 / A, small, large)).astype(x.dtype, copy=False)


def preemphasis(x: np.ndarray, coef: float, gain: float = 1.0) -> np.ndarray:
    """Pre-emphasis along time, ``gain * (x[t] - coef * x[t-1])`` (the first sample uses ``x[-1] = x[0]``).

    EEG power falls roughly as 1/f, so a model reading raw windows is dominated by the slowest rhythms, and on
    EEGMAT the low-frequency cue of the training subjects inverts on some unseen ones (docs/training.md).
    ``coef = 1`` is the first difference (a flat spectrum for 1/f signals); ``0 < coef < 1`` tilts it less.
    ``gain`` restores the amplitude range the A-law companding that follows was designed for
    (:func:`preemphasis_gain`).

    Parameters
    ----------
    x : numpy.ndarray (..., T)
        Signal in microvolts.
    coef : float
        Filter coefficient in [0, 1]; 0 returns ``gain * x``.
    gain : float
        Scale of the filtered signal.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    prev = np.concatenate([x[..., :1], x[..., :-1]], axis=-1)
    return ((x - coef * prev) * gain).astype(x.dtype, copy=False)


def preemphasis_gain(x: np.ndarray, coef: float) -> float:
    """The gain that gives pre-emphasised windows ``x`` (n, C, T) µV the standard deviation of the raw ones."""
    x = np.asarray(x, dtype=np.float64)
    sd = float(preemphasis(x, coef).std())
    return float(x.std()) / sd if sd > 0 else 1.0
