"""Live inference: class probabilities for a stream of samples, window by window, preprocessed as offline.

The offline path (:func:`neuript.inference.predict_file`) filters and resamples a whole recording with
zero-phase filters, which look at the future as much as at the past. A stream has no future, so
:class:`StreamingPredictor` keeps a buffer and processes each window together with ``context_s`` seconds of
signal on both sides, then cuts the window out. With the default context (half the longest filter of the model's
preprocessing: 16.5 s for the paper's 0.1 Hz high-pass) the result equals the offline one up to rounding — at
the price of that much latency. A shorter context answers sooner and approximates (the deviation is measured in
docs/training.md). Window boundaries fall where the offline path puts them: every ``stride`` from the start of
the stream.

Usage::

    sp = StreamingPredictor("runs/ft", ch_names=amp_channel_names, sfreq=500.0)
    for chunk in amplifier:              # (n_channels, n_samples) in volts, any chunk size
        for row in sp.push(chunk):       # zero or more finished windows
            print(row["start_s"], row["predicted"], row["prob_task"])
    rows = sp.flush()                    # at the end: the windows still waiting for right context
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Sequence

import numpy as np

__all__ = ["StreamingPredictor", "default_context_s"]


def default_context_s(pp, sfreq_in: float) -> float:
    """Half the longest FIR filter that the preprocessing ``pp`` applies at ``sfreq_in`` (band-pass or notch), in
    seconds: the context on each side of a window beyond which the zero-phase filters do not reach."""
    import mne

    nyq = sfreq_in / 2
    h = pp.h_freq if (pp.h_freq is not None and pp.h_freq < nyq) else None
    lengths = [0]
    if pp.l_freq is not None or h is not None:
        lengths.append(len(mne.filter.create_filter(None, sfreq_in, pp.l_freq, h, verbose="error")))
    if pp.notch and pp.notch < nyq:
        # notch_filter's default FIR: Hamming window, 1 Hz transition bands -> 3.3 s long
        lengths.append(int(3.3 * sfreq_in))
    return max(lengths) / 2 / sfreq_in + 0.5  # + a margin for the resampler's anti-aliasing filter


class StreamingPredictor:
    """Window-by-window class probabilities on a live stream, with the model's own preprocessing.

    Parameters
    ----------
    model : NeurIPT or path
        A classifier, or a model / fine-tuning run directory (``neuript finetune``'s ``seed*/model`` or the run).
    ch_names : sequence of str
        The stream's channel names, in the order of the rows pushed (non-EEG channels are ignored as offline).
    sfreq : float
        The stream's sampling rate.
    context_s : float, optional
        Signal used on each side of a window. Default: :func:`default_context_s`, for which the output equals
        the offline path; less gives earlier answers that approximate it.
    stride_s : float, optional
        Window stride (default: the window length, non-overlapping).
    rename : dict, optional
        Stream channel name → electrode label, for non-standard names.
    allow_missing : bool, optional
        Interpolate electrodes the model needs but the stream lacks (as :func:`neuript.inference.predict`);
        default False: a missing electrode is an error at the first window.
    max_interpolated : int, optional
        With ``allow_missing``: the most electrodes to interpolate (default: a quarter of those needed).
    device, precision, batch_size
        As for :func:`neuript.inference.predict_file`.
    """

    def __init__(self, model, *, ch_names: Sequence[str], sfreq: float, context_s: float | None = None,
                 stride_s: float | None = None, rename: dict[str, str] | None = None, device: str = "auto",
                 precision: str = "fp32", batch_size: int = 16, allow_missing: bool = False,
                 max_interpolated: int | None = None) -> None:
        import mne

        from neuript.data.recording import ModelInput
        from neuript.inference.artifacts import input_feature_norm, input_transform, model_input
        from neuript.inference.predict import _as_model
        from neuript.runtime import check_precision, resolve_device

        check_precision(precision)
        self.device = resolve_device(device)
        self.model, self.meta = _as_model(model, self.device)
        align = (self.meta.get("input_transform") or {}).get("align", "none")
        if align != "none":
            # offline, a recording is aligned with its own windows; a stream has no whole recording to align with
            raise ValueError(f"this model was trained with --align {align}, which needs a whole recording: run it "
                             "with `neuript predict` on a recorded file, or stream a model trained with --align none")
        featnorm = input_feature_norm(self.meta)
        if featnorm != "none":
            raise ValueError(f"this model was trained with --feature-norm {featnorm}, which standardises features "
                             "with a whole recording's statistics: run it with `neuript predict` on a recorded "
                             "file, or stream a model trained with --feature-norm none")
        spec = model_input(self.meta)
        # a stream has no recording-level crop or minimum duration
        self.pp = dataclasses.replace(spec.preprocessing, crop_start_s=0.0, crop_end_s=0.0, min_duration_s=None)
        self.spec = ModelInput(ch_names=spec.ch_names, n_times=spec.n_times, preprocessing=self.pp)
        self._transform = input_transform(self.meta)
        self.ch_names, self.sfreq, self.rename = list(ch_names), float(sfreq), rename
        self.allow_missing, self.max_interpolated = bool(allow_missing), max_interpolated
        self._info = mne.create_info(self.ch_names, self.sfreq, ch_types="eeg")  # every segment's channel info
        self.precision, self.batch_size = precision, batch_size
        from neuript.inference.predict import _label_names

        n_out = int(self.meta.get("n_outputs") or 1)
        self.labels = _label_names(self.meta, 2 if n_out == 1 else n_out)
        self.n_times = int(spec.n_times)
        ratio = Fraction(self.pp.sfreq / self.sfreq).limit_denominator(10000)
        self._up, self._down = ratio.numerator, ratio.denominator  # input samples per step of the output grid
        stride_out = self.n_times if stride_s is None else max(1, int(round(stride_s * self.pp.sfreq)))
        if (stride_out * self._down) % self._up:
            raise ValueError(f"stride {stride_out / self.pp.sfreq:g} s does not fall on the input sample grid of "
                             f"{self.sfreq:g} Hz; choose a multiple of {self._up / self.pp.sfreq:g} s")
        self._stride_in = stride_out * self._down // self._up
        self._win_in = math.ceil(self.n_times * self._down / self._up)
        ctx = default_context_s(self.pp, self.sfreq) if context_s is None else float(context_s)
        if ctx < 0:
            raise ValueError(f"context_s must be >= 0, got {context_s}")
        # context in input samples, a multiple of the resampling period so segments stay on the output grid
        self.context_s = ctx
        self._ctx_in = math.ceil(ctx * self.sfreq / self._down) * self._down
        self._buf = np.zeros((len(self.ch_names), 0))
        self._buf_start = 0  # stream index of self._buf[:, 0]
        self._next = 0  # window index

    @property
    def latency_s(self) -> float:
        """Seconds between the end of a window and the moment its prediction can be made (the right context)."""
        return self._ctx_in / self.sfreq

    def push(self, chunk: np.ndarray) -> list[dict]:
        """Add samples ``(n_channels, n)`` in volts; returns a row per window that became complete."""
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2 or chunk.shape[0] != len(self.ch_names):
            raise ValueError(f"expected a chunk of shape ({len(self.ch_names)}, n_samples) for channels "
                             f"{self.ch_names}, got {chunk.shape}")
        self._buf = np.concatenate([self._buf, chunk], axis=1)
        return self._emit(final=False)

    def flush(self) -> list[dict]:
        """At the end of the stream: the windows that were waiting for right context, processed with what there
        is (as the offline path does at a recording's end)."""
        return self._emit(final=True)

    # ------------------------------------------------------------------------------------------- internals
    @property
    def _n_seen(self) -> int:  # samples pushed so far
        return self._buf_start + self._buf.shape[1]

    def _emit(self, *, final: bool) -> list[dict]:
        starts = []
        while True:
            a = self._next * self._stride_in  # window start, stream samples
            end = a + self._win_in
            if end > self._n_seen or (not final and end + self._ctx_in > self._n_seen):
                break
            starts.append(a)
            self._next += 1
        if not starts:
            return []
        rows = [self._window(a) for a in starts]
        keep_from = max(0, self._next * self._stride_in - self._ctx_in)
        if keep_from > self._buf_start:  # drop what no future window needs
            self._buf = self._buf[:, keep_from - self._buf_start:]
            self._buf_start = keep_from
        return self._predict(rows)

    def _window(self, a: int) -> dict:
        import mne

        from neuript.data.preprocess import flat_window_electrodes
        from neuript.data.recording import model_channels

        lo = max(0, a - self._ctx_in)
        hi = min(self._n_seen, a + self._win_in + self._ctx_in)
        seg = self._buf[:, lo - self._buf_start: hi - self._buf_start]
        raw = mne.io.RawArray(seg, self._info, verbose="error")
        flat: dict[str, np.ndarray] = {}
        data, _, interpolated = model_channels(raw, self.spec, rename=self.rename, allow_missing=self.allow_missing,
                                               max_interpolated=self.max_interpolated, source="the stream",
                                               flat_out=flat)
        off = (a - lo) * self._up // self._down
        # recorded electrodes that the model's montage hides, flat in this window (flagged as offline)
        dead = flat_window_electrodes(flat, np.array([off]), self.n_times)[0]
        return dict(start=a, window=data[:, off: off + self.n_times], interpolated=interpolated, dead=dead)

    def _predict(self, rows: list[dict]) -> list[dict]:
        from neuript.data.recording import window_quality
        from neuript.inference.predict import run_windows

        windows = np.stack([r["window"] for r in rows])
        windows, peak, quality = window_quality(windows, self.pp, dead=[r["dead"] for r in rows])
        probs = run_windows(self.model, windows, transform=self._transform, device=self.device,
                            batch_size=self.batch_size, what="probs", precision=self.precision)
        out = []
        for r, p, pk, q in zip(rows, probs, peak, quality):
            start_s = r["start"] / self.sfreq
            row = dict(window=int(r["start"] // self._stride_in), start_s=start_s,
                       end_s=start_s + self.n_times / self.pp.sfreq)
            row.update({f"prob_{name}": float(v) for name, v in zip(self.labels, p)})
            row.update(predicted=self.labels[int(np.argmax(p))], peak_uv=float(pk), quality=str(q),
                       interpolated=" ".join(r["interpolated"]))
            out.append(row)
        return out
