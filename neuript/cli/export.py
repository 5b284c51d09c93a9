"""`neuript export` — a fine-tuned classifier as an ONNX file or a ``torch.export`` archive (thin wrapper over
:mod:`neuript.inference.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def export_cmd(
    run: Annotated[Path, typer.Argument(help="A fine-tuning run (its first seed), a seed<k>/model directory or "
                                              "a model saved with save_pretrained().")],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx (onnxruntime; needs `pip install "
                                        "'neuript[onnx]'`) or pt2 (torch.export archive).")] = "onnx",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="File to write (default: model.onnx / "
                                                "model.pt2 next to the model directory).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="Encoder mode to export: paper or official (routing and "
                                                "masking rule; default: the model's own).")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Run the exported file and compare its "
                                         "logits with PyTorch's (batch sizes 1 and 5).")] = True,
    verify_on: Annotated[Optional[Path], typer.Option(help="Recording whose windows (the model's preprocessing) "
                                                      "are used for the check; default: synthetic windows.")] = None,
    opset: Annotated[Optional[int], typer.Option(help="ONNX opset (default: the exporter's).")] = None,
) -> None:
    """Export a fine-tuned classifier for its montage with a dynamic batch size (input: preprocessed, A-law
    companded windows; the input contract is stored in the file's metadata)."""
    from neuript.inference.export import EXPORT_FORMATS, _require_onnx, export_classifier, recording_model_input
    from neuript.model.io import locate_artifact
    from neuript.runtime import check_choice

    check_choice("format", format, tuple(EXPORT_FORMATS))
    if mode is not None:
        check_choice("mode", mode, ("paper", "official"))
    if format == "onnx":
        _require_onnx()
    directory = locate_artifact(run)
    target = Path(out) if out is not None else \
        Path(directory).parent / f"model{'.' + mode if mode else ''}{EXPORT_FORMATS[format]}"
    _check_out(target, Path(directory), verify_on)
    windows = None
    if verify and verify_on is not None:
        # the recording is read and preprocessed before anything is written: a bad one leaves earlier files as
        # they were
        from neuript.inference.artifacts import load_classifier

        model, meta = load_classifier(directory, device="cpu", **({"mode": mode} if mode else {}))
        windows = recording_model_input(model, meta, verify_on)
    res = export_classifier(directory, target, fmt=format, mode=mode, verify=verify, windows=windows, opset=opset)
    meta = res["metadata"]
    console.print(f"[green]exported[/] ({res['format']}, {res['mode']} mode): {res['path']}", highlight=False)
    console.print(f"input x: (batch, {meta['n_chans']}, {meta['n_times']}) at {float(meta['sfreq']):g} Hz, "
                  f"classes {meta['class_names']}", highlight=False)
    if res["max_abs_diff"] is not None:
        console.print(f"verified on {res['n_windows_checked']} windows: max |exported - PyTorch| logit "
                      f"difference {res['max_abs_diff']:.2e}", highlight=False)


def _check_out(target: Path, model_dir: Path, recording: Optional[Path]) -> None:
    """Refuse an output that would replace one of the model's own files or the recording verified on."""
    t = target.resolve()
    if recording is not None and (t == Path(recording).resolve()
                                  or (target.exists() and Path(recording).exists()
                                      and target.samefile(recording))):
        raise ValueError(f"--out {target} is the --verify-on recording itself; choose another output path")
    own = [f for f in model_dir.iterdir() if f.is_file()] if model_dir.is_dir() else []
    if any(t == f.resolve() for f in own):
        raise ValueError(f"--out {target} is a file of the model directory {model_dir} (it would replace the "
                         "model itself); choose another output path, e.g. the default (beside the model directory)")


def register(app: typer.Typer) -> None:
    app.command("export")(export_cmd)
