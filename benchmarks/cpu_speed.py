"""CPU speed of the small presets against an older commit, side by side in one run (issue 13).

    python -m benchmarks.cpu_speed                       # full run (idle machine: ~15 min at 2 threads)
    python -m benchmarks.cpu_speed --threads 1 --pretrain-batch 4 --repeats 3   # what a shared machine allows

A git worktree of ``--rev`` (default 7049d13) is created in a temporary directory and removed at the end. Every
measurement runs in a fresh subprocess whose ``PYTHONPATH`` selects the old tree or this one (``OMP_NUM_THREADS``
and ``torch.set_num_threads`` = ``--threads`` for both), and old / new alternate within each repeat (the order
flips between repeats), so load that drifts during the run hits both alike; the table reports medians over the
repeats and the new/old ratio of the medians. Both sides use the same optimizer (fused ``torch.optim.AdamW``) and
the same step (forward, loss, backward, update), so only the model code differs.

Rows: ``neuript_tiny`` fine-tuning step (batch 16, 20 x 320, fp32, bf16 autocast, and each tree's default precision:
bf16 in 7049d13, ``auto`` now, which is fp32 on a CPU without native bf16), pretraining step (64 x 256,
``--pretrain-batch``; fp32 and default precision), peak RSS of one pretraining step at ``--memory-batch`` (64) on 64 channels (old side
stopped by an RSS watchdog at ``--max-rss-gb``), optionally (``--small``) ``neuript_small`` fine-tuning and
pretraining at small batches, and (``--thread-check``) the fine-tuning step of the new code at 1 vs ``--threads``
threads. Results are printed and written to BENCHMARKS.md (section ``cpu_speed``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- worker side
def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: KiB


def _rss_gb() -> float:
    from neuript.train.memory import current_rss

    return current_rss() / 1e9


def _watchdog(limit_gb: float) -> None:
    """Exit (code 3) when the RSS passes ``limit_gb``: the old code needs ~16 GB at pretraining batch 64."""
    import threading

    def watch():
        while True:
            if _rss_gb() > limit_gb:
                print(json.dumps(dict(stopped_gb=limit_gb)), flush=True)
                os._exit(3)
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()


def worker(job: dict) -> dict:
    import torch

    torch.set_num_threads(job["threads"])
    if job.get("max_rss_gb"):
        _watchdog(job["max_rss_gb"])
    import neuript
    from neuript.model.presets import build

    torch.manual_seed(0)
    b, c, t = job["batch"], job["chans"], job["times"]
    g = torch.Generator().manual_seed(c)
    pos = torch.randn(c, 3, generator=g) * 0.05
    pretrain = job["kind"] == "pretrain"
    kw = dict(positions=pos, grad_checkpointing=job.get("ckpt", False))
    if not pretrain:
        kw.update(n_outputs=2)
    model = build(job["preset"], pretrain=pretrain, **kw).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    x = torch.randn(b, c, t)
    y = torch.randint(0, 2, (b,))
    precision = job["precision"]
    if precision == "default":  # what `neuript finetune` / `neuript pretrain` of this tree run by default
        if pretrain:
            from neuript.train.pretrain import PretrainConfig as Config
        else:
            from neuript.train.finetune import FinetuneConfig as Config
        precision = Config().precision
        if precision == "auto":
            from neuript.runtime import resolve_precision

            precision = resolve_precision("auto", "cpu")
    bf16 = precision == "bf16"

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            if pretrain:
                out = model(x)
                loss = out["recon_loss"] + 0.8 * out["aux_loss"]
            else:
                loss = torch.nn.functional.cross_entropy(model(x).float(), y) + 0.8 * model.aux_loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(job["warmup"] + job["steps"]):
        t0 = time.perf_counter()
        step()
        if i >= job["warmup"]:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return dict(step_s=med, win_s=b / med, peak_gb=_peak_gb(), load=os.getloadavg()[0], neuript_file=neuript.__file__,
                precision=precision)


# ----------------------------------------------------------------------------------------------- driver side
def run_job(job: dict, tree: Path, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(job["threads"]),
               MKL_NUM_THREADS=str(job["threads"]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(job)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tree)
    except subprocess.TimeoutExpired:
        return dict(error=f"timeout after {timeout:.0f} s")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return dict(error=(p.stderr.strip().splitlines() or ["?"])[-1][:200])
    res = json.loads(lines[-1])
    if "neuript_file" in res and not res["neuript_file"].startswith(str(tree)):
        raise RuntimeError(f"worker imported {res['neuript_file']}, not the code of {tree}")
    return res


def _jobs(args) -> list[dict]:
    base = dict(threads=args.threads, warmup=1, steps=args.steps)
    ft = dict(base, kind="finetune", preset="tiny", batch=16, chans=20, times=320)
    pt = dict(base, kind="pretrain", preset="tiny", batch=args.pretrain_batch, chans=64, times=256)
    jobs = [
        dict(ft, name="tiny fine-tune fp32", precision="fp32"),
        dict(ft, name="tiny fine-tune bf16", precision="bf16"),
        dict(ft, name="tiny fine-tune, default precision", precision="default"),
        dict(pt, name="tiny pretrain fp32", precision="fp32"),
        dict(pt, name="tiny pretrain, default precision", precision="default"),
    ]
    if args.small:
        jobs += [
            dict(ft, name="small fine-tune fp32", preset="small", batch=2, precision="fp32", steps=2),
            dict(ft, name="small fine-tune bf16", preset="small", batch=2, precision="bf16", steps=2),
            dict(pt, name="small pretrain bf16", preset="small", batch=1, precision="bf16", steps=1),
        ]
    return jobs


def _fmt(v, spec=".2f"):
    return "—" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="7049d13", help="old commit to compare against")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per measurement (after 1 warm-up)")
    ap.add_argument("--pretrain-batch", type=int, default=16)
    ap.add_argument("--memory-batch", type=int, default=64)
    ap.add_argument("--max-rss-gb", type=float, default=8.0, help="RSS watchdog of the memory rows")
    ap.add_argument("--small", action="store_true", help="add neuript_small rows")
    ap.add_argument("--thread-check", action="store_true", help="new code's fine-tuning step at 1 thread too")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    started = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="neuript_old_"))
    old_tree = tmp / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old_tree), args.rev], check=True,
                   capture_output=True)
    old_sha = subprocess.run(["git", "-C", str(old_tree), "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
    new_sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "neuript/model"],
                                capture_output=True, text=True).stdout.strip())
    trees = {"old": old_tree, "new": REPO}
    rows = []
    try:
        for job in _jobs(args):
            res = {"old": [], "new": []}
            for r in range(args.repeats):
                for side in (("old", "new") if r % 2 == 0 else ("new", "old")):
                    out = run_job(job, trees[side], args.timeout)
                    res[side].append(out)
                    print(f"  {job['name']:24s} {side}: {_fmt(out.get('win_s'))} win/s "
                          f"(peak {_fmt(out.get('peak_gb'))} GB, load {_fmt(out.get('load'), '.1f')}) "
                          f"{out.get('error', '')}", flush=True)
            rows.append((job, res))
        thread_rows = []
        if args.thread_check and args.threads != 1:
            job = dict(_jobs(args)[0], name="tiny fine-tune fp32, new code")
            res = {"1": [], str(args.threads): []}
            for r in range(args.repeats):
                for n in (("1", str(args.threads)) if r % 2 == 0 else (str(args.threads), "1")):
                    out = run_job(dict(job, threads=int(n)), REPO, args.timeout)
                    res[n].append(out)
                    print(f"  threads {n}: {_fmt(out.get('win_s'))} win/s", flush=True)
            thread_rows.append((job, res))
        mem_rows = []
        if not args.no_memory:
            mjob = dict(kind="pretrain", preset="tiny", batch=args.memory_batch, chans=64, times=256,
                        precision="fp32", threads=args.threads, warmup=0, steps=1, max_rss_gb=args.max_rss_gb)
            for side, ckpt in (("new", True), ("old", True), ("old", False), ("new", False)):
                out = run_job(dict(mjob, ckpt=ckpt), trees[side], args.timeout)
                mem_rows.append((side, ckpt, out))
                print(f"  memory {side} ckpt={ckpt}: {out}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old_tree)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    text = _report(args, rows, thread_rows, mem_rows, old_sha, new_sha, dirty, time.time() - started)
    print(text)
    if not args.no_write:
        sys.path.insert(0, str(REPO))
        from benchmarks._common import write_section

        write_section("cpu_speed", text)
    return 0


def _median(results: list[dict], key: str):
    vals = [r[key] for r in results if key in r]
    return statistics.median(vals) if vals else None


def _load_range(rows) -> str:
    loads = [r["load"] for _, res in rows for side in res.values() for r in side if "load" in r]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "?"


def _report(args, rows, thread_rows, mem_rows, old_sha, new_sha, dirty, wall_s) -> str:
    sys.path.insert(0, str(REPO))
    from benchmarks._common import machine
    from neuript.runtime import native_cpu_bf16

    cmd = "python -m benchmarks.cpu_speed " + " ".join(a for a in sys.argv[1:])
    new_label = f"{new_sha}{' + uncommitted model changes' if dirty else ''}"
    lines = [
        f"## CPU speed of the small presets vs {old_sha} (issue 13)",
        "",
        f"Machine: {machine()}; native bf16 (AVX512-BF16 or AMX): {'yes' if native_cpu_bf16() else 'no'}; "
        f"1-min load average at the end of the measurements {_load_range(rows)}. Old and new were measured "
        "alternately (order flipped each repeat), so load that drifts during the run hits both alike.",
        f"Command: `{cmd.strip()}` on {time.strftime('%Y-%m-%d %H:%M')}; old = worktree of {old_sha}, new = "
        f"{new_label}; {args.threads} thread(s) (`OMP_NUM_THREADS` and `torch.set_num_threads`), fused AdamW on both "
        f"sides; windows/s = batch / median step time of {args.steps} steps after 1 warm-up, median over "
        f"{args.repeats} repeats (each a fresh subprocess). Total {wall_s / 60:.1f} min.",
        "",
        "| step | batch x C x T | old windows/s | new windows/s | new / old | old runs | new runs | precision old / new |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for job, res in rows:
        o, n = _median(res["old"], "win_s"), _median(res["new"], "win_s")
        ratio = f"{n / o:.2f}x" if o and n else "—"
        runs = {s: ", ".join(_fmt(r.get("win_s")) for r in res[s]) for s in res}
        prec = {s: "/".join(sorted({r.get("precision", "?") for r in res[s]})) for s in res}
        lines.append(f"| {job['name']} | {job['batch']} x {job['chans']} x {job['times']} | {_fmt(o)} | {_fmt(n)} | "
                     f"{ratio} | {runs['old']} | {runs['new']} | {prec['old']} / {prec['new']} |")
    for job, res in thread_rows:
        one, many = _median(res["1"], "win_s"), _median(res[str(args.threads)], "win_s")
        lines += ["", f"Threads (new code, {job['name']}): 1 thread {_fmt(one)} windows/s, {args.threads} threads "
                      f"{_fmt(many)} windows/s ({_fmt(one / many if one and many else None)}x for 1 thread)."]
    if mem_rows:
        lines += ["", f"Peak RSS of one tiny pretraining step (fp32, batch {args.memory_batch} x 64 x 256, "
                      f"`ru_maxrss`; watchdog at {args.max_rss_gb:.0f} GB):", "",
                  "| code | grad_checkpointing | peak RSS GB | step s |", "|---|---|---|---|"]
        for side, ckpt, out in mem_rows:
            if "stopped_gb" in out:
                peak = f"> {out['stopped_gb']:.1f} (stopped)"
            else:
                peak = _fmt(out.get("peak_gb")) if "peak_gb" in out else out.get("error", "?")
            lines.append(f"| {side} | {ckpt} | {peak} | {_fmt(out.get('step_s'), '.1f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
