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
_VERB_MODULES = ("neuript.cli.data", "neuript.cli.train", "neuript.cli.demo")


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
# traceback. NEURIPT_DEBUG=1 shows the traceback.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError)


def main() -> None:
    import os
    import sys

    _register()
    try:
        app()
    except _USER_ERRORS as err:
        if os.environ.get("NEURIPT_DEBUG"):
            raise
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error[/]: {err}", markup=True, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
