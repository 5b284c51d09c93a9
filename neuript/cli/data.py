"""``neuript prepare`` and ``neuript info``: build and inspect window stores."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import List, Optional

import typer


def _parse_sets(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or []:
        if "=" not in v:
            raise typer.BadParameter(f"--set expects KEY=VALUE, got {v!r}")
        k, val = v.split("=", 1)
        out[k.strip().replace("-", "_")] = val.strip()
    return out


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {message}", err=True)


def prepare(
    recipe: str = typer.Argument(..., help="Dataset recipe: eegmat, eegmmidb, sleep_edfx."),
    source: Path = typer.Option(..., "--source", "-s", help="Folder with the dataset's files."),
    out: Path = typer.Option(..., "--out", "-o", help="Window store directory to create or resume."),
    n_jobs: int = typer.Option(1, "--n-jobs", "-j", help="Worker processes (recordings run in parallel)."),
    dtype: str = typer.Option("float16", "--dtype", help="On-disk sample type: float16 or float32."),
    montage: Optional[str] = typer.Option(None, "--montage", help="Recipe montage option (e.g. tcp, average)."),
    window_s: Optional[float] = typer.Option(None, "--window-s", help="Window length in seconds."),
    notch: Optional[str] = typer.Option(None, "--notch", help="Mains frequency: 50, 60 or none."),
    sets: Optional[List[str]] = typer.Option(
        None, "--set", help="Recipe or preprocessing option KEY=VALUE (repeatable), e.g. --set reject_uv=100, "
                            "--set subjects=0,1,2, --set l_freq=0.5. See `neuript prepare RECIPE --source . --out . "
                            "--list-options`."),
    list_options: bool = typer.Option(False, "--list-options", help="Print the recipe's options and exit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rebuild a store that has other settings."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Preprocess a dataset into a window store (parallel, resumable: rerun the same command after a kill)."""
    from neuript.data.preprocess import PreprocessConfig
    from neuript.data.recipes import RECIPES, apply_config_overrides, get_recipe, list_recipes
    from neuript.data.prepare import PrepareError, format_info, prepare_store, store_info

    names = list_recipes()
    if recipe not in names:
        typer.echo(f"error: unknown recipe {recipe!r}; available: {', '.join(names)}", err=True)
        raise typer.Exit(2)
    cls = RECIPES[recipe]
    if list_options:
        typer.echo(f"recipe {recipe} options (--set KEY=VALUE):")
        for k, (default, help_) in cls.options.items():
            typer.echo(f"  {k:<16} default {default!r:<12} {help_}")
        typer.echo("preprocessing options (--set KEY=VALUE): " + ", ".join(PreprocessConfig().to_dict()))
        raise typer.Exit(0)
    sets_d = _parse_sets(sets)
    for k, v in (("montage", montage), ("window_s", window_s), ("notch", notch)):
        if v is not None:
            sets_d[k] = str(v)
    recipe_opts = {k: v for k, v in sets_d.items() if k in cls.options}
    cfg_opts = {k: v for k, v in sets_d.items() if k not in cls.options}
    try:
        r = get_recipe(recipe, **recipe_opts)
        cfg = apply_config_overrides(r.config(), cfg_opts) if cfg_opts else r.config()
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning  # restored by catch_warnings
        try:
            report = prepare_store(r, source=source, out=out, config=cfg, n_jobs=n_jobs, dtype=dtype,
                                   progress=not quiet, overwrite=overwrite)
        except PrepareError as err:
            typer.echo(format_info(store_info(out)), err=False)
            typer.echo(f"\nerror: {err}", err=True)
            raise typer.Exit(1)
        except (FileNotFoundError, FileExistsError, ValueError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2)
    typer.echo(format_info(store_info(out)))
    typer.echo(f"\nprepared {report['done']} recording(s), skipped {report['skipped']} already done, "
               f"in {report['seconds']:.1f} s")


def info(
    store: Path = typer.Argument(..., help="Window store directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Summarise a window store: recordings, windows per split and class, montages, rejections."""
    from neuript.data.prepare import format_info, store_info

    try:
        d = store_info(store)
    except (FileNotFoundError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    typer.echo(json.dumps(d, indent=1, default=str) if as_json else format_info(d))


def register(app: typer.Typer) -> None:
    """Add the data verbs (``prepare``, ``info``) to the ``neuript`` app."""
    app.command("prepare")(prepare)
    app.command("info")(info)
