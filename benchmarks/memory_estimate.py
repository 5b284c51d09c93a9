"""How good is the memory estimate made before a run (``neuript.train.memory``)? Estimated vs measured peak RSS.

Each configuration runs in a fresh subprocess: build the model, estimate (two probe forwards at batch 1 and 2),
then two real AdamW training steps at the full batch; the peak RSS (``ru_maxrss``) of the process is the measured
value. ``--malloc mmap`` runs the child with glibc's mmap threshold fixed where neuript fixes it under checkpointing (``MMAP_THRESHOLD``, 1 MiB),
so freed tensors go back to the OS and peak RSS is close to what is live.

    python -m benchmarks.memory_estimate            # table into BENCHMARKS.md (section memory_estimate)
    python -m benchmarks.memory_estimate --quick    # fine-tuning rows only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks._common import REPO, machine, write_section

CHILD = r"""
import json, resource, sys, time, torch
from neuript.model.presets import build
from neuript.train.memory import estimate_training_memory
from neuript.train.pretrain import pretrain_forward
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
C, T, B, ck, pre = a["chans"], a["times"], a["batch"], a["ckpt"], a["pretrain"]
pos = torch.randn(C, 3, generator=torch.Generator().manual_seed(0)) * 0.05
kw = {} if pre else dict(n_chans=C, n_outputs=1, n_times=T, sfreq=64.0, positions=pos.tolist())
m = build(a["preset"], pretrain=pre, grad_checkpointing=ck, **kw)
m.train()
gen = torch.Generator().manual_seed(0)
def loss_of(n):
    x = torch.randn(n, C, T)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a["bf16"]):
        if pre:
            o = pretrain_forward(m, x, pos, masking="aamp", ratios=(0.5,), generator=gen)
            return o["recon_loss"] + 0.8 * o["aux_loss"]
        return m(x).float().mean() + 0.8 * m.aux_loss
opt = torch.optim.AdamW(m.parameters())
t0 = time.perf_counter()
est = estimate_training_memory(m, loss_of, batch_size=B)
t_est = time.perf_counter() - t0
times = []
for _ in range(2):
    t = time.perf_counter()
    opt.zero_grad(set_to_none=True); loss_of(B).backward(); opt.step()
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(dict(est=est.total_bytes, peak=peak, est_s=t_est, step_s=min(times), per_window=est.per_window_bytes)))
"""

FT = dict(preset="tiny", chans=20, times=320, pretrain=False, bf16=False)
PT = dict(preset="tiny", chans=64, times=256, pretrain=True, bf16=False)


def configs(quick: bool):
    rows = [dict(FT, batch=16, ckpt=False), dict(FT, batch=16, ckpt=True), dict(FT, batch=64, ckpt=False),
            dict(FT, batch=64, ckpt=True), dict(FT, batch=64, ckpt=True, malloc="mmap")]
    if not quick:
        rows += [dict(PT, batch=8, ckpt=False), dict(PT, batch=8, ckpt=True), dict(PT, batch=64, ckpt=True),
                 dict(PT, batch=64, ckpt=True, malloc="mmap")]
    return rows


def run(cfg: dict, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cfg.get("malloc") == "mmap":  # what neuript sets itself under checkpointing on a CPU
        from neuript.train.memory import MMAP_THRESHOLD

        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    arg = json.dumps({**cfg, "threads": threads})
    out = subprocess.run([sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    t0 = time.time()
    lines = ["| step | batch x C x T | grad_checkpointing | allocator | estimated GiB | measured peak GiB | "
             "estimate / measured | s per step |", "|---|---|---|---|---:|---:|---:|---:|"]
    for cfg in configs(args.quick):
        r = run(cfg, args.threads)
        kind = "pretrain" if cfg["pretrain"] else "fine-tune"
        alloc = "glibc, fixed mmap threshold (neuript's)" if cfg.get("malloc") == "mmap" else "glibc default"
        line = (f"| tiny {kind} fp32 | {cfg['batch']} x {cfg['chans']} x {cfg['times']} | {cfg['ckpt']} | {alloc} | "
                f"{r['est'] / 2**30:.2f} | {r['peak'] / 2**30:.2f} | {r['est'] / r['peak']:.2f} | {r['step_s']:.1f} |")
        print(line, flush=True)
        lines.append(line)
    text = "\n".join([
        "## Memory estimate before a run (issue 13)",
        f"Command: `python -m benchmarks.memory_estimate --threads {args.threads}`"
        f"{' --quick' if args.quick else ''} on {time.strftime('%Y-%m-%d %H:%M')}; {machine()}. "
        "Each row is a fresh process: the estimate `neuript finetune` / `neuript pretrain` make before training "
        "(two probe forwards at batch 1 and 2, saved-tensor bytes, gradients and AdamW state, the process's RSS), then "
        "two real training steps at the full batch; measured = the process's peak RSS; s per step = the faster of the two. "
        f"Total {(time.time() - t0) / 60:.1f} min.",
        "",
        *lines,
    ])
    write_section("memory_estimate", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
