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
    recipe: str = typer.Argument(..., help="Dataset recipe: eegmat, eegmmidb, sleep_edfx, table (your own recordings "
                                           "listed in a CSV/TSV manifest), bids (a BIDS EEG dataset), ..."),
    source: Optional[Path] = typer.Option(None, "--source", "-s", help="Folder with the dataset's files (table: "
                                                                       "default the manifest's folder)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Window store directory to create or resume."),
    manifest: Optional[Path] = typer.Option(
        None, "--manifest", help="table: CSV/TSV file, one row per recording: path, subject[, session, split, label, "
                                 "events]; relative paths are resolved against its folder."),
    event_map: Optional[str] = typer.Option(
        None, "--event-map", help="table, bids: annotation/event description -> label, e.g. 'T1=left,T2=right' "
                                  "(other descriptions are not used)."),
    root: Optional[Path] = typer.Option(None, "--root", help="bids: the dataset's top folder (same as --source)."),
    task: Optional[str] = typer.Option(None, "--task", help="bids: the task to prepare (task-<NAME> in file names)."),
    split_by: Optional[str] = typer.Option(
        None, "--split-by", help="subject: split the recordings by subject with --seed (--val, --test fractions), "
                                 "instead of the recipe's own split (any recipe); recorded in the store."),
    val: Optional[float] = typer.Option(None, "--val", help="With --split-by subject: fraction of subjects in val "
                                                            "(default 0.15)."),
    test: Optional[float] = typer.Option(None, "--test", help="With --split-by subject: fraction of subjects in test "
                                                              "(default 0.15)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --split-by subject: seed (default 0)."),
    n_jobs: int = typer.Option(1, "--n-jobs", "-j", help="Worker processes (recordings run in parallel)."),
    dtype: str = typer.Option("float16", "--dtype", help="On-disk sample type: float16 or float32."),
    montage: Optional[str] = typer.Option(None, "--montage", help="Recipe montage option (e.g. tcp, average)."),
    window_s: Optional[float] = typer.Option(None, "--window-s", help="Window length in seconds."),
    notch: Optional[str] = typer.Option(None, "--notch", help="Mains frequency: 50, 60 or none."),
    sets: Optional[List[str]] = typer.Option(
        None, "--set", help="Recipe or preprocessing option KEY=VALUE (repeatable), e.g. --set reject_uv=100, "
                            "--set subjects=0,1,2, --set l_freq=0.5. See `neuript prepare RECIPE --list-options`."),
    list_options: bool = typer.Option(False, "--list-options", help="Print the recipe's options and exit."),
    rename: Optional[List[str]] = typer.Option(
        None, "--rename", help="Rename a channel before anything else, OLD=NEW (repeatable), or a mapping file "
                               "(.json object or two-column .csv/.tsv); recorded in the store."),
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
    try:
        source, split_wrap = _generic_options(recipe, cls, sets_d, source=source, manifest=manifest,
                                              event_map=event_map, root=root, task=task, split_by=split_by, val=val,
                                              test=test, seed=seed)
    except typer.BadParameter as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    if out is None:
        typer.echo("error: --out is required: the window store directory to create or resume", err=True)
        raise typer.Exit(2)
    recipe_opts = {k: v for k, v in sets_d.items() if k in cls.options}
    cfg_opts = {k: v for k, v in sets_d.items() if k not in cls.options}
    try:
        r = get_recipe(recipe, **recipe_opts)
        if split_wrap is not None:
            from neuript.data.splits import with_subject_split

            r = with_subject_split(r, **split_wrap)
        cfg = apply_config_overrides(r.config(), cfg_opts) if cfg_opts else r.config()
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning  # restored by catch_warnings
        try:
            from neuript.electrodes import read_rename

            report = prepare_store(r, source=source, out=out, config=cfg, n_jobs=n_jobs, dtype=dtype,
                                   progress=not quiet, overwrite=overwrite, rename=read_rename(rename) or None)
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


def _generic_options(recipe: str, cls, sets_d: dict[str, str], *, source: Path | None, manifest: Path | None,
                     event_map: str | None, root: Path | None, task: str | None, split_by: str | None,
                     val: float | None, test: float | None, seed: int | None) -> tuple[Path, dict | None]:
    """Map the generic-recipe flags onto recipe options (in ``sets_d``) and the source folder.

    Returns the source folder and, when ``--split-by subject`` is asked of a recipe without a ``split_by`` option,
    the arguments of :func:`neuript.data.splits.with_subject_split` (else None). Raises ``typer.BadParameter``
    with the one-line reason for a flag the recipe does not take.
    """
    from neuript.data.recipes import RECIPES

    def takers(opt: str) -> str:
        return ", ".join(sorted(n for n, c in RECIPES.items() if opt in c.options)) or "none"

    for opt, value, flag in (("manifest", manifest, "--manifest"), ("event_map", event_map, "--event-map"),
                             ("task", task, "--task")):
        if value is None:
            continue
        if opt not in cls.options:
            raise typer.BadParameter(f"{flag} is not an option of recipe {recipe!r} (recipes that take it: "
                                     f"{takers(opt)})")
        sets_d[opt] = str(value)
    if root is not None:
        if source is not None and Path(source).resolve() != Path(root).resolve():
            raise typer.BadParameter(f"--root {root} and --source {source} disagree; give one of them")
        source = root
    if source is None and manifest is not None:
        source = Path(manifest).parent  # relative paths in the manifest are resolved against its folder anyway
    if source is None:
        raise typer.BadParameter("--source is required: the folder with the dataset's files"
                                 + (" (bids: --root)" if recipe == "bids" else
                                    " (table: --manifest FILE.csv)" if recipe == "table" else ""))
    given = {k: v for k, v in (("val", val), ("test", test), ("seed", seed)) if v is not None}
    if split_by is None and given and cls.options.get("split_by", (None,))[0] == "subject":
        split_by = "subject"  # the recipe splits by subject by default (bids): --val/--test/--seed tune it
    if split_by is None:
        if given:
            raise typer.BadParameter(f"--{'/--'.join(given)} only apply with --split-by subject")
        return source, None
    if "split_by" in cls.options:  # the recipe splits by itself (table, bids): hand it the settings
        sets_d["split_by"] = split_by
        sets_d.update({k: str(v) for k, v in given.items()})
        return source, None
    if split_by != "subject":
        raise typer.BadParameter(f"--split-by {split_by!r}: recipe {recipe!r} can only be split by 'subject'")
    from neuript.data.splits import DEFAULT_SEED, DEFAULT_TEST, DEFAULT_VAL

    return source, {"val": float(given.get("val", DEFAULT_VAL)), "test": float(given.get("test", DEFAULT_TEST)),
                    "seed": int(given.get("seed", DEFAULT_SEED))}


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
