"""`neuript demo`: the whole workflow on the bundled sample, offline, on a laptop CPU in a few minutes."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console

console = Console(stderr=True)


def demo_cmd(
    out: Path = typer.Option(Path("neuript_runs/demo"), "--out", "-o", help="Where stores, runs and reports go."),
    pretrain_steps: int = typer.Option(10, help="AAMP pretraining steps of the tiny model."),
    finetune_epochs: int = typer.Option(3, help="Fine-tuning epochs on EEGMAT."),
    seeds: str = typer.Option("0", help="Fine-tuning seeds, comma-separated."),
    n_jobs: int = typer.Option(2, help="Processes preparing recordings."),
) -> None:
    """prepare → AAMP-pretrain a tiny NeurIPT on EEGMMIDB → fine-tune on EEGMAT → evaluate → predict one file."""
    from neuript.train.demo import run_demo

    t0 = time.perf_counter()
    res = run_demo(out, pretrain_steps=pretrain_steps, finetune_epochs=finetune_epochs,
                   seeds=[int(s) for s in seeds.split(",") if s.strip()], n_jobs=n_jobs, log=console.print)
    console.rule("[bold green]neuript demo finished")
    console.print(f"in {time.perf_counter() - t0:.0f} s")
    for name, path in res.items():
        console.print(f"  {name:<22} {path}")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
