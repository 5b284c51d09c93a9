"""`neuript stream` — live predictions for a Lab Streaming Layer EEG stream (thin wrapper over
:mod:`neuript.inference.lsl`)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(stderr=True)

# columns first in this order; the class probabilities follow end_s
_LEAD = ("window", "start_s", "end_s", "stream_time")
_TAIL = ("predicted", "peak_uv", "quality", "interpolated", "latency_s", "delay_s")


def _columns(row: dict) -> list[str]:
    probs = [k for k in row if k.startswith("prob_")]
    rest = [k for k in row if k not in _LEAD and k not in _TAIL and k not in probs]
    return [*_LEAD, *probs, *_TAIL, *rest]


def _cell(key: str, value):
    if isinstance(value, float):
        # stream_time is an absolute clock reading: keep microseconds
        return f"{value:.6f}" if key == "stream_time" else f"{value:.6g}"
    return value


def stream_cmd(
    model: Annotated[Path, typer.Option("--model", "-m", help="Model directory (fine-tuning run, one seed's "
                                        "model/ folder, save_pretrained output) or a Hugging Face Hub id.")],
    lsl: Annotated[str, typer.Option("--lsl", help="Name of the LSL stream to read.")],
    stream_type: Annotated[Optional[str], typer.Option("--type", help="Only a stream of this LSL type (e.g. "
                                                       "EEG).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="CSV to write, one row per window as it "
                                                "comes (default: standard output).")] = None,
    marker_outlet: Annotated[Optional[str], typer.Option("--marker-outlet", help="Also push each window's "
                             "predicted class on an LSL marker stream of this name.")] = None,
    max_windows: Annotated[Optional[int], typer.Option("--max-windows", help="Stop after N windows.")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", help="Read S seconds of signal, then finish "
                        "its windows and stop.")] = None,
    unit: Annotated[str, typer.Option("--unit", help="Unit of the samples: auto (each channel's declared unit, "
                    "uV where none is declared), V, mV, uV or nV.")] = "auto",
    rename: Annotated[Optional[list[str]], typer.Option("--rename", help="Rename a channel, OLD=NEW "
                      "(repeatable), or a mapping file (.json object or two-column .csv/.tsv).")] = None,
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Interpolate electrodes the model needs "
                             "but the stream lacks (spherical splines) instead of failing.")] = False,
    max_interpolated: Annotated[Optional[int], typer.Option("--max-interpolated", help="With --allow-missing: "
                                "the most electrodes to interpolate.")] = None,
    context: Annotated[Optional[float], typer.Option("--context", help="Seconds of signal on each side of a "
                       "window (default: enough for output equal to `neuript predict`; less answers sooner and "
                       "approximates).")] = None,
    stride: Annotated[Optional[float], typer.Option(help="Window stride in seconds (default: the window "
                      "length).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the stream to appear.")] = 10.0,
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", help="A stream silent for this many seconds "
                            "has ended.")] = 10.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda ...")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 (default) or bf16 autocast.")] = "fp32",
) -> None:
    """Per-window class probabilities for a live LSL EEG stream, with the preprocessing the model was trained
    with (needs `pip install 'neuript[lsl]'`)."""
    from neuript.electrodes import read_rename
    from neuript.inference.lsl import LSLReader
    from neuript.runtime import check_positive

    check_positive("max-interpolated", max_interpolated, allow_none=True, integer=True, allow_zero=True)
    reader = LSLReader(model, name=lsl, stream_type=stream_type, unit=unit, rename=read_rename(rename) or None,
                       allow_missing=allow_missing, max_interpolated=max_interpolated, context_s=context,
                       stride_s=stride, max_windows=max_windows, duration_s=duration, marker_outlet=marker_outlet,
                       timeout_s=timeout, idle_timeout_s=idle_timeout, device=device, precision=precision)
    sp = reader.predictor
    console.print(f"reading {reader.source}: {len(reader.ch_names)} channels at {reader.sfreq:g} Hz; windows of "
                  f"{sp.n_times / sp.pp.sfreq:g} s, each answered {sp.latency_s:.2f} s after its end (right "
                  "context)" + (f"; markers on {marker_outlet!r}" if marker_outlet else ""), highlight=False,
                  soft_wrap=True)
    fh = sys.stdout if out is None else open(out, "w", newline="")
    writer, latencies = None, []
    try:
        with reader:
            for row in reader:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=_columns(row))
                    writer.writeheader()
                writer.writerow({k: _cell(k, v) for k, v in row.items()})
                fh.flush()  # a live table: every row is readable as soon as it is written
                latencies.append(row["latency_s"])
    except KeyboardInterrupt:
        console.print("stopped", highlight=False)
    finally:
        if out is not None:
            fh.close()
    if latencies:
        lat = sorted(latencies)
        console.print(f"{len(lat)} windows; latency per window median {1e3 * lat[len(lat) // 2]:.0f} ms, max "
                      f"{1e3 * lat[-1]:.0f} ms" + (f"; rows in {out}" if out is not None else ""), highlight=False)
    else:
        console.print("no window completed", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("stream")(stream_cmd)
