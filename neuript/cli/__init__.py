"""The ``neuript`` command. Thin: it parses arguments and calls the layers below.

Each group of verbs lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="neuript",
    help="NeurIPT EEG foundation model: prepare data, pretrain, fine-tune, evaluate, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

# Modules that add verbs to `app`. A module that is missing (not written yet) is skipped.
_VERB_MODULES = ("neuript.cli.data", "neuript.cli.train", "neuript.cli.demo", "neuript.cli.export",
                 "neuript.cli.stream")


@app.callback()
def _root() -> None:
    """NeurIPT EEG foundation model: prepare data, pretrain, fine-tune, evaluate, predict."""


_registered = False


def _register() -> None:
    """Add every verb module's commands to :data:`app` (once per process)."""
    global _registered
    if _registered:
        return
    _registered = True
    for name in _VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue
            raise
        module.register(app)


# Errors that describe bad input (a file, a channel, a setting) and say how to fix it: shown as one message, not a
# traceback (NEURIPT_DEBUG=1 shows the traceback). Anything else is a bug and is shown as one, with its traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from neuript._atomic import OutputError
    from neuript.data.io import RecordingError
    from neuript.data.prepare import PrepareError
    from neuript.train.checkpoint import CheckpointError

    return (ValueError, FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError,
            NotADirectoryError, RecordingError, PrepareError, CheckpointError, ImportError, OutputError)


def main() -> None:
    import os
    import sys

    _register()
    try:
        app()
    except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs below
        from rich.console import Console

        console = Console(stderr=True)
        if isinstance(err, ModuleNotFoundError):  # a missing optional dependency, not a missing neuript module
            user = bool(err.name) and not err.name.startswith("neuript")
        else:
            user = isinstance(err, _user_errors())
        if os.environ.get("NEURIPT_DEBUG") or not user:
            if not user:
                console.print("[bold red]internal error[/] (a bug in neuript, not in your input): please report it "
                              "with this traceback", markup=True, highlight=False)
            raise
        from rich.markup import escape

        # escaped: a message may hold brackets (`pip install 'neuript[onnx]'`); one line however wide the terminal
        console.print(f"[bold red]error[/]: {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
