"""Live EEG from Lab Streaming Layer (LSL): resolve a stream, run :class:`StreamingPredictor` on it, one row per
window; and :func:`replay_outlet`, which plays a recording file as an LSL stream (tests, demos).

Needs ``pylsl`` (``pip install 'neuript[lsl]'``; its wheels ship the native ``liblsl``).

Usage::

    with LSLReader("runs/ft", name="MyAmp", marker_outlet="neuript") as reader:
        for row in reader:                  # blocks; one dict per window, as the streaming predictor gives
            print(row["start_s"], row["predicted"], row["latency_s"])

What a row adds to :meth:`StreamingPredictor.push`'s (``window, start_s, end_s, prob_<class>..., predicted,
peak_uv, quality, interpolated``; ``start_s`` counts from the first sample read, as offline from a file's start):

``stream_time``
    the LSL timestamp of the window's first sample, in the sender's clock.
``latency_s``
    seconds from the reader receiving the last sample the row needed (the window and its right context; at the
    end of a stream, the moment the end was noticed) to the row being ready: the processing time.
``delay_s``
    seconds from the sender's timestamp of the window's last sample (time-corrected to this machine's clock) to
    the row being ready: the right context the filters wait for, plus transport, queueing and processing.
"""

from __future__ import annotations

import collections
import math
import threading
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__all__ = ["LSLReader", "stream_predictions", "resolve_stream", "stream_channels", "channel_scales",
           "unit_scale", "replay_outlet", "Replay", "DEFAULT_UNIT"]

#: Unit assumed for a channel whose stream metadata declares none: LSL EEG senders mostly send microvolts.
DEFAULT_UNIT = "uV"

_VOLTS = {"v": 1.0, "volt": 1.0, "volts": 1.0, "mv": 1e-3, "millivolt": 1e-3, "millivolts": 1e-3,
          "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "microvolt": 1e-6, "microvolts": 1e-6,
          "nv": 1e-9, "nanovolt": 1e-9, "nanovolts": 1e-9}

# pylsl channel format codes → numpy dtypes (liblsl's cf_* constants, stable across versions)
_DTYPES = {1: np.float32, 2: np.float64, 4: np.int32, 5: np.int16, 6: np.int8, 7: np.int64}


def _lsl():
    """``pylsl``, or an ImportError that says how to install it (also when pylsl lacks its native library)."""
    try:
        import pylsl
    except (ImportError, RuntimeError, OSError) as err:  # pylsl raises RuntimeError when liblsl is missing
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ImportError(f"LSL streams need pylsl with its liblsl library: pip install 'neuript[lsl]' "
                          f"({detail})") from None
    return pylsl


def _lost_error(pylsl) -> type[BaseException]:
    util = getattr(pylsl, "util", None)
    return getattr(util, "LostError", None) or getattr(pylsl, "LostError", RuntimeError)


def unit_scale(unit: str) -> float:
    """Volts per unit of ``unit`` (``"uV"``, ``"µV"``, ``"microvolts"``, ``"mV"``, ``"V"``, ``"nV"``, ...).

    Raises
    ------
    ValueError
        For a unit that is not a voltage.
    """
    key = str(unit).strip().lower()
    if key not in _VOLTS:
        raise ValueError(f"unknown unit {unit!r}: use one of V, mV, uV (µV, microvolts), nV")
    return _VOLTS[key]


# ----------------------------------------------------------------------------------------------- stream info
def resolve_stream(name: str | None = None, *, stream_type: str | None = None, timeout_s: float = 10.0):
    """The ``pylsl.StreamInfo`` of the stream called ``name`` (and/or of type ``stream_type``), waiting up to
    ``timeout_s`` seconds for it to appear.

    Raises
    ------
    ValueError
        When no such stream is found; the message lists the streams that are visible and how to make a stream on
        another machine discoverable.
    """
    pylsl = _lsl()
    if name is None and stream_type is None:
        raise ValueError("name an LSL stream (--lsl NAME) or a stream type")
    prop, value = ("name", name) if name is not None else ("type", stream_type)
    found = [s for s in pylsl.resolve_byprop(prop, value, minimum=1, timeout=float(timeout_s))
             if stream_type is None or s.type() == stream_type]
    if not found:
        visible = [f"{s.name()} ({s.type()}, {s.hostname()})" for s in pylsl.resolve_streams(1.0)]
        want = " of type ".join(repr(v) for v in (name, stream_type) if v is not None)
        raise ValueError(
            f"no LSL stream {want} found within {timeout_s:g} s; visible streams: {visible or 'none'}. Check that "
            "the sender runs; for a sender on another machine whose multicast does not reach this one, list its "
            "address in an lsl_api.cfg ([lab] KnownPeers = {HOST}) named by the LSLAPICFG environment variable")
    if len(found) > 1:
        warnings.warn(f"{len(found)} LSL streams match {value!r} (on {[s.hostname() for s in found]}); reading "
                      "the first", UserWarning, stacklevel=2)
    return found[0]


def stream_channels(info) -> list[dict]:
    """``label``, ``unit`` and ``type`` of each channel in a stream's description (``desc/channels/channel``,
    the XDF convention); ``None`` where the sender leaves one out."""
    out = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append({k: (ch.child_value(k).strip() or None) for k in ("label", "unit", "type")})
        ch = ch.next_sibling("channel")
    return out


def channel_scales(names: Sequence[str], units: Sequence[str | None], *, unit: str | None = None) -> np.ndarray:
    """Volts per stream unit for each channel.

    Parameters
    ----------
    names : sequence of str
        Channel labels (used in messages, and to tell EEG from other channels).
    units : sequence of str or None
        The unit each channel's metadata declares (``None``: none declared).
    unit : str, optional
        The unit of every channel, overriding the metadata (a disagreeing declaration is warned about).
        Default: each channel's declared unit, :data:`DEFAULT_UNIT` (µV) where none is declared.

    Raises
    ------
    ValueError
        A declared unit that is not a voltage on an electrode channel, without an explicit ``unit``.
    """
    from neuript.electrodes import parse_channel

    if unit is not None and str(unit).lower() != "auto":
        scale = unit_scale(unit)
        differ = [n for n, u in zip(names, units) if u and u.lower() in _VOLTS and _VOLTS[u.lower()] != scale]
        if differ:
            warnings.warn(f"--unit {unit} overrides the unit the stream declares for {differ}", UserWarning,
                          stacklevel=2)
        return np.full(len(names), scale)
    scales = []
    for n, u in zip(names, units):
        if not u:
            scales.append(unit_scale(DEFAULT_UNIT))
        elif u.lower() in _VOLTS:
            scales.append(_VOLTS[u.lower()])
        elif not (parse_channel(n).kind == "eeg" and parse_channel(n).known):
            scales.append(1.0)  # not an electrode the model reads: its unit does not matter
        else:
            raise ValueError(f"the stream declares unit {u!r} for electrode channel {n!r}, which is not a voltage; "
                             "pass the unit the samples are in with --unit (V, mV, uV, nV)")
    return np.asarray(scales, dtype=np.float64)


def _check_electrodes(names, spec, *, rename, allow_missing, max_interpolated, source) -> None:
    """Fail at the start, not after the first window's context, when the stream lacks electrodes the model needs
    (the rule of :func:`neuript.data.recording.model_channels`)."""
    from types import SimpleNamespace

    from neuript.data.recording import _present_electrodes, default_max_interpolated, needed_electrodes

    needed = needed_electrodes(spec.ch_names)
    present = _present_electrodes(SimpleNamespace(ch_names=list(names)), rename)
    missing = [e for e in needed if e not in present]
    if not missing:
        return
    if not allow_missing:
        raise ValueError(f"{source}: the model needs electrodes {missing}, which the stream lacks (it has "
                         f"{sorted(present) or 'no recognised EEG electrodes'}; channels: {list(names)}). Fix: map "
                         "differently named channels with --rename OLD=NEW, or pass --allow-missing to interpolate "
                         "them from their neighbours.")
    limit = default_max_interpolated(len(needed)) if max_interpolated is None else int(max_interpolated)
    if len(missing) > limit:
        raise ValueError(f"{source}: the stream lacks {len(missing)} of the {len(needed)} electrodes the model "
                         f"needs ({missing}); --allow-missing interpolates at most {limit} (--max-interpolated).")


# ----------------------------------------------------------------------------------------------------- reader
class LSLReader:
    """Predictions, window by window, for an LSL stream.

    Resolving the stream, reading its description and loading the model happen on construction (errors show at
    once); the stream is opened on iteration, which yields one row per window (see the module docstring for the
    columns) until ``max_windows`` rows, ``duration_s`` seconds of signal, or the end of the stream (no sample for
    ``idle_timeout_s`` seconds, or its sender lost). At an end other than ``max_windows`` the windows still waiting
    for right context are processed with what there is, as offline at a recording's end.

    Parameters
    ----------
    model : NeurIPT or path
        A classifier, or a model / fine-tuning run directory.
    name : str, optional
        The stream's name (``--lsl NAME``).
    stream_type : str, optional
        Its type (e.g. ``"EEG"``): the first stream of that type when no name is given, a filter otherwise.
    unit : str, optional
        The samples' unit (``V``, ``mV``, ``uV``, ``nV``) for every channel. Default (``None`` or ``"auto"``): each
        channel's ``unit`` from the stream's metadata, µV where none is declared.
    rename, allow_missing, max_interpolated
        Channel matching, as for :func:`neuript.inference.predict`.
    context_s, stride_s
        As for :class:`StreamingPredictor` (default context: output equal to offline ``predict``).
    max_windows : int, optional
        Stop after this many rows.
    duration_s : float, optional
        Read this many seconds of signal, then finish the windows it holds.
    marker_outlet : str, optional
        Name of an LSL marker stream (type ``Markers``, one string channel) to create: each window's predicted
        class is pushed on it, time-stamped with the window's start on this machine's LSL clock.
    timeout_s : float
        How long to wait for the stream to appear (and for its first clock offset).
    idle_timeout_s : float, optional
        A stream that sends nothing for this long has ended (``None``: wait for ever).
    device, precision, batch_size
        As for :func:`neuript.inference.predict_file`.
    """

    def __init__(self, model, *, name: str | None = None, stream_type: str | None = None, unit: str | None = None,
                 rename: dict[str, str] | None = None, allow_missing: bool = False,
                 max_interpolated: int | None = None, context_s: float | None = None, stride_s: float | None = None,
                 max_windows: int | None = None, duration_s: float | None = None, marker_outlet: str | None = None,
                 timeout_s: float = 10.0, idle_timeout_s: float | None = 10.0, device: str = "auto",
                 precision: str = "fp32", batch_size: int = 16) -> None:
        from neuript.data.recording import check_sampling_rate
        from neuript.inference.streaming import StreamingPredictor
        from neuript.runtime import check_positive

        check_positive("max-windows", max_windows, allow_none=True, integer=True)
        check_positive("duration", duration_s, allow_none=True)
        check_positive("timeout", timeout_s)
        check_positive("idle-timeout", idle_timeout_s, allow_none=True)
        self._pylsl = pylsl = _lsl()
        found = resolve_stream(name, stream_type=stream_type, timeout_s=timeout_s)
        # recover=True: with recover=False liblsl drops what is buffered as soon as the sender goes away
        self._inlet = pylsl.StreamInlet(found, max_buflen=360, recover=True)
        self.info = self._inlet.info(timeout=timeout_s)  # the full description (a resolved one has no channels)
        self.name = self.info.name()
        self.source = f"LSL stream {self.name!r}"
        self.sfreq = float(self.info.nominal_srate())
        if self.sfreq <= 0:
            raise ValueError(f"{self.source} has an irregular rate (no nominal sampling rate); EEG needs a regular one")
        self._dtype = _DTYPES.get(self.info.channel_format())
        if self._dtype is None:
            raise ValueError(f"{self.source} carries strings, not numeric samples")
        n = self.info.channel_count()
        chans = stream_channels(self.info)
        if len(chans) != n or not all(c["label"] for c in chans):
            # no usable labels: number the channels so that --rename can name them
            chans = [{"label": f"ch{i + 1}", "unit": None, "type": None} for i in range(n)]
            warnings.warn(f"{self.source} does not label its {n} channels; they are called ch1..ch{n}: name them "
                          "with --rename ch1=Fp1 ...", UserWarning, stacklevel=2)
        self.ch_names = [c["label"] for c in chans]
        self.scales = channel_scales(self.ch_names, [c["unit"] for c in chans], unit=unit)
        self.predictor = StreamingPredictor(model, ch_names=self.ch_names, sfreq=self.sfreq, context_s=context_s,
                                            stride_s=stride_s, rename=rename, device=device, precision=precision,
                                            batch_size=batch_size, allow_missing=allow_missing,
                                            max_interpolated=max_interpolated)
        _check_electrodes(self.ch_names, self.predictor.spec, rename=rename, allow_missing=allow_missing,
                          max_interpolated=max_interpolated, source=self.source)
        check_sampling_rate(self.sfreq, float(self.predictor.pp.sfreq), self.source)
        self.max_windows, self.duration_s = max_windows, duration_s
        self.timeout_s, self.idle_timeout_s = float(timeout_s), idle_timeout_s
        self.marker_name = marker_outlet
        self._markers = None
        if marker_outlet:
            minfo = pylsl.StreamInfo(marker_outlet, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                     f"neuript-{marker_outlet}")
            minfo.desc().append_child_value("source_stream", self.name)
            minfo.desc().append_child_value("classes", " ".join(self.predictor.labels))
            self._markers = pylsl.StreamOutlet(minfo)
        self.n_rows = 0

    def __enter__(self) -> "LSLReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the stream and the marker outlet."""
        self._inlet, self._markers = None, None

    def __iter__(self) -> Iterator[dict]:
        return self.rows()

    def rows(self) -> Iterator[dict]:
        """Open the stream and yield one row per window (see the class docstring for when it stops)."""
        pylsl, lost = self._pylsl, _lost_error(self._pylsl)
        if self._inlet is None:
            raise ValueError(f"{self.source}: this reader is closed")
        inlet = self._inlet
        inlet.open_stream(timeout=self.timeout_s)  # samples flow (and a replay starts) from here on
        try:
            self._clock = inlet.time_correction(timeout=self.timeout_s)
        except Exception:  # noqa: BLE001 - a sender that does not answer clock probes: assume the same clock
            self._clock = 0.0
        n_ch = len(self.ch_names)
        cap = max(1, int(self.sfreq))  # pull up to a second at a time
        buf = np.empty((cap, n_ch), dtype=self._dtype)
        limit = None if self.duration_s is None else int(round(self.duration_s * self.sfreq))
        self._chunks: collections.deque = collections.deque()  # (first sample index, timestamps)
        self._n_seen, last_data = 0, pylsl.local_clock()
        sp = self.predictor
        while True:
            try:
                sample, ts0 = inlet.pull_sample(timeout=0.2)
                if sample is None:
                    now = pylsl.local_clock()
                    if self.idle_timeout_s is not None and now - last_data >= self.idle_timeout_s:
                        break
                    continue
                # the rest of what has arrived, without waiting
                _, ts = inlet.pull_chunk(timeout=0.0, max_samples=cap, dest_obj=buf)
            except lost:
                warnings.warn(f"{self.source} was lost; finishing the windows read so far", UserWarning,
                              stacklevel=2)
                break
            arrival = last_data = pylsl.local_clock()
            data = np.vstack([np.asarray(sample, dtype=np.float64)[None], buf[:len(ts)].astype(np.float64)])
            stamps = np.concatenate([[ts0], np.asarray(ts, dtype=np.float64)])
            if limit is not None:
                data, stamps = data[: limit - self._n_seen], stamps[: limit - self._n_seen]
            self._chunks.append((self._n_seen, stamps))
            self._n_seen += len(stamps)
            for row in self._finish(sp.push((data * self.scales).T), arrival):
                yield row
                if self.max_windows is not None and self.n_rows >= self.max_windows:
                    return
            if limit is not None and self._n_seen >= limit:
                break
        ended = pylsl.local_clock()  # the remaining windows are ready to be computed from here on
        for row in self._finish(sp.flush(), ended):
            yield row
            if self.max_windows is not None and self.n_rows >= self.max_windows:
                return

    # ------------------------------------------------------------------------------------------- internals
    def _stamp(self, index: int) -> float:
        """The sender's timestamp of stream sample ``index``."""
        for first, stamps in self._chunks:
            if first <= index < first + len(stamps):
                return float(stamps[index - first])
        return math.nan

    def _finish(self, rows: list[dict], ready_from: float) -> list[dict]:
        if not rows:
            return rows
        sp = self.predictor
        try:  # the latest estimate of the sender's clock offset (cheap once the first one is known)
            self._clock = self._inlet.time_correction(timeout=0.0)
        except Exception:  # noqa: BLE001 - keep the last estimate
            pass
        now = self._pylsl.local_clock()
        for row in rows:
            a = int(round(row["start_s"] * self.sfreq))
            row["stream_time"] = self._stamp(a)
            row["latency_s"] = now - ready_from
            row["delay_s"] = now - (self._stamp(min(a + sp._win_in, self._n_seen) - 1) + self._clock)
            if self._markers is not None:
                self._markers.push_sample([row["predicted"]], row["stream_time"] + self._clock)
            if self.n_rows == 0 and not 0.05 <= row["peak_uv"] <= 1e4:
                warnings.warn(f"{self.source}: the first window peaks at {row['peak_uv']:.3g} µV after "
                              "preprocessing, implausible for scalp EEG: check the samples' unit (--unit; read as "
                              f"{sorted({_unit_name(s) for s in self.scales})})", UserWarning, stacklevel=3)
            self.n_rows += 1
        # forget the timestamps of samples no future window starts at or after
        keep = sp._next * sp._stride_in
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= keep:
            self._chunks.popleft()
        return rows


def _unit_name(scale: float) -> str:
    return {1.0: "V", 1e-3: "mV", 1e-6: "uV", 1e-9: "nV"}.get(float(scale), f"{scale:g} V")


def stream_predictions(model, **kwargs) -> Iterator[dict]:
    """Rows of :class:`LSLReader` ``(model, **kwargs)``, closing it at the end."""
    with LSLReader(model, **kwargs) as reader:
        yield from reader


# ----------------------------------------------------------------------------------------------------- replay
class Replay(threading.Thread):
    """A recording played as an LSL outlet in a background thread; made by :func:`replay_outlet`.

    The outlet exists (and can be resolved) from construction on; samples flow once a consumer has connected, so
    a reader started later misses nothing. ``error`` holds what went wrong in the thread, ``n_pushed`` the samples
    sent; :meth:`wait` joins and re-raises.
    """

    def __init__(self, data: np.ndarray, *, sfreq: float, ch_names: Sequence[str], ch_types: Sequence[str],
                 name: str, stream_type: str, unit: str, speed: float, chunk_s: float, channel_format: str,
                 source_id: str, wait_s: float, linger_s: float) -> None:
        super().__init__(name=f"lsl-replay-{name}", daemon=True)
        pylsl = _lsl()
        self._pylsl, self.data, self.sfreq, self.speed = pylsl, data, float(sfreq), float(speed)
        self.ch_names, self.stream_name = list(ch_names), name
        self.chunk = max(1, int(round(chunk_s * sfreq)))
        self.wait_s, self.linger_s = float(wait_s), float(linger_s)
        info = pylsl.StreamInfo(name, stream_type, data.shape[0], self.sfreq, channel_format, source_id)
        chans = info.desc().append_child("channels")
        for label, kind in zip(self.ch_names, ch_types):
            ch = chans.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
            ch.append_child_value("type", str(kind).upper())
        info.desc().append_child_value("manufacturer", "neuript replay")
        self.outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self.n_pushed = 0

    def stop(self) -> None:
        """Stop sending (the outlet closes)."""
        self._halt.set()

    def wait(self, timeout: float | None = None) -> None:
        """Join the thread; raise what went wrong in it, if anything."""
        self.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "Replay":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.join(5.0)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as err:  # noqa: BLE001 - handed to wait()
            self.error = err
        finally:
            self.outlet = None  # closes the stream

    def _run(self) -> None:
        pylsl = self._pylsl
        if not self.outlet.wait_for_consumers(self.wait_s):
            raise TimeoutError(f"LSL replay {self.stream_name!r}: no reader connected within {self.wait_s:g} s")
        rate = self.sfreq * self.speed  # samples per second of wall time
        t0 = pylsl.local_clock()
        n = self.data.shape[1]
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            due = t0 + (b - 1) / rate  # when its last sample is "acquired"
            if self._halt.wait(max(0.0, due - pylsl.local_clock())):
                return
            # each sample stamped with its acquisition time: faster than real time, the clock runs faster too
            stamps = (t0 + np.arange(a, b) / rate).tolist()
            self.outlet.push_chunk(np.ascontiguousarray(self.data[:, a:b].T), stamps)
            self.n_pushed = b
        self._halt.wait(self.linger_s)  # let the last chunk reach the readers before the outlet goes


def replay_outlet(path, name: str, *, speed: float = 1.0, start_s: float = 0.0, duration_s: float | None = None,
                  stream_type: str = "EEG", unit: str = "uV", chunk_s: float = 0.05, channel_format: str = "float32",
                  source_id: str | None = None, wait_s: float = 30.0, linger_s: float = 1.0,
                  start: bool = True) -> Replay:
    """Play a recording file as an LSL stream, in real time or ``speed`` times faster.

    Parameters
    ----------
    path : path
        Any recording :func:`neuript.data.io.read_raw` reads (EDF, BDF, FIF, ...).
    name : str
        The stream's name.
    speed : float
        Playback speed (1: real time). Samples are stamped with the time they are sent, so the stream's clock runs
        ``speed`` times faster than the samples' nominal rate, which the stream declares unchanged.
    start_s, duration_s : float
        The part of the recording to play (default: all of it).
    stream_type, unit, chunk_s, channel_format, source_id
        The stream's type, the unit its samples are sent in (declared per channel), samples per push (in seconds
        of signal), sample format and source id (default ``neuript-replay-<name>``).
    wait_s : float
        How long to wait for a reader before giving up (the thread then ends with a ``TimeoutError``).
    linger_s : float
        How long the outlet stays open after the last sample, so readers receive it.
    start : bool
        Start the thread (default); otherwise call ``.start()``.

    Returns
    -------
    Replay
        The thread; ``.stop()`` ends it early, ``.wait()`` joins it.
    """
    from neuript.data.io import read_raw
    from neuript.runtime import check_positive

    check_positive("speed", speed)
    check_positive("chunk_s", chunk_s)
    raw = read_raw(Path(path))
    sfreq = float(raw.info["sfreq"])
    a = int(round(start_s * sfreq))
    b = raw.n_times if duration_s is None else min(raw.n_times, a + int(round(duration_s * sfreq)))
    if b <= a:
        raise ValueError(f"{path}: nothing to replay between {start_s:g} s and {b / sfreq:g} s")
    data = raw.get_data(start=a, stop=b) / unit_scale(unit)  # MNE holds volts
    rep = Replay(data, sfreq=sfreq, ch_names=raw.ch_names, ch_types=raw.get_channel_types(), name=name,
                 stream_type=stream_type, unit=unit, speed=speed, chunk_s=chunk_s, channel_format=channel_format,
                 source_id=source_id or f"neuript-replay-{name}", wait_s=wait_s, linger_s=linger_s)
    if start:
        rep.start()
    return rep
