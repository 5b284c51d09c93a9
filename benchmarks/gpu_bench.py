"""GPU benchmark: paper-size NeurIPT (``neuript_base``) on one CUDA device — inference, fine-tuning and pretraining
steps (throughput and peak device memory) for fp32, bf16 and activation checkpointing against an in-run
reference-like baseline; how time and memory grow with channels and window length; the reference fixtures on the
GPU; ``torch.compile``; and the end-to-end ``neuript demo``.

Run ``python -m benchmarks gpu --out DIR`` on a machine with a GPU. Every result is appended to
``DIR/gpu_results.jsonl`` as soon as it is measured (an interrupted run keeps what it had); ``--report
DIR/gpu_results.jsonl`` turns such a file into the ``gpu`` section of BENCHMARKS.md (also on a machine without a
GPU). ``--budget-s`` skips the remaining sections once that much wall time has passed, in the order of the sections
(most important first). Times: CUDA-synchronised wall clock per step, median of ``--steps`` steps after
``--warmup`` warm-up steps. Memory: ``torch.cuda.max_memory_allocated`` during the timed steps (weights, optimizer
state and inputs included), and the static part before the first step.

``reference-like`` is the same in-run baseline as in ``benchmarks.model_bench`` (attention computed the reference
code's way: separate q/k/v projections, materialised scores and per-head masks, dropout on the probabilities, fp32,
no checkpointing, torch's default AdamW).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.model_bench import _positions, reference_like_forward

# The spec's pretraining figure: 2.2M windows x 40 epochs in about 30 h on 8 GPUs (batch 480).
PAPER_PRETRAIN_WIN_S_PER_GPU = 2.2e6 * 40 / (30 * 3600) / 8


@contextlib.contextmanager
def _reference_like_attention():
    from neuript.model.attention import MultiHeadAttention

    fast = MultiHeadAttention.forward
    MultiHeadAttention.forward = reference_like_forward
    try:
        yield
    finally:
        MultiHeadAttention.forward = fast


def _build(kind: str, preset: str, chans: int, dev, *, mode: str = "official", **kw):
    from neuript.model.presets import build

    kw = dict(mode=mode, positions=_positions(chans), **kw)
    if kind == "pretrain":
        return build(preset, pretrain=True, **kw).to(dev)
    return build(preset, n_outputs=2, groups="mean" if chans < 5 else "functional", **kw).to(dev)


def _train_step(model, kind: str, x, y, dev, bf16: bool = True):
    import torch

    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        if kind == "pretrain":
            out = model(x); loss = out["recon_loss"] + 0.8 * out["aux_loss"]
        else:
            loss = torch.nn.functional.cross_entropy(model(x).float(), y) + model.aux_loss
    loss.backward()


def measure(kind: str, variant: str, *, batch: int, chans: int = 20, times: int = 256, steps: int = 10,
            warmup: int = 3, preset: str = "base", mode: str = "official", compile_model: bool = False,
            device: str = "cuda") -> dict:
    """One configuration: median step time, windows/s and peak device memory (``device="cpu"`` only for a smoke
    test of this script: no memory figures there)."""
    import torch

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    reference_like = variant == "reference-like"
    bf16 = variant.startswith("bf16")
    ckpt = "ckpt" in variant
    row = dict(kind=kind, variant=variant, batch=batch, chans=chans, times=times, preset=preset, mode=mode,
               compiled=compile_model)
    model = opt = None
    try:
        with _reference_like_attention() if reference_like else contextlib.nullcontext():
            model = _build(kind, preset, chans, dev, mode=mode, grad_checkpointing=ckpt)
            if kind == "infer":
                model.eval()
            else:
                model.train()
                if reference_like:
                    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
                else:
                    from neuript.train.common import make_adamw

                    opt = make_adamw(model.parameters(), lr=1e-5, state="bf16" if "bf16state" in variant else "fp32")
            fwd = torch.compile(model) if compile_model else model
            x = torch.randn(batch, chans, times, device=dev)
            y = torch.randint(0, 2, (batch,), device=dev)

            def step():
                if kind == "infer":
                    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                        fwd(x)
                    return
                _train_step(fwd, kind, x, y, dev, bf16=bf16)
                opt.step()
                opt.zero_grad(set_to_none=True)

            sync()
            static = torch.cuda.memory_allocated() if cuda else 0
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            step()  # first step: allocator warm-up, cuBLAS/cuDNN heuristics, compilation
            sync()
            row["first_step_s"] = time.perf_counter() - t0
            for _ in range(warmup - 1):
                step()
            ts = []
            for _ in range(steps):
                sync()
                t0 = time.perf_counter()
                step()
                sync()
                ts.append(time.perf_counter() - t0)
            med = statistics.median(ts)
            row.update(step_ms=1e3 * med, spread_ms=1e3 * (max(ts) - min(ts)), win_s=batch / med,
                       static_gb=static / 1e9, peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else 0.0,
                       reserved_gb=torch.cuda.max_memory_reserved() / 1e9 if cuda else 0.0)
    except torch.cuda.OutOfMemoryError as e:
        row["error"] = "out of memory: " + str(e).split("\n")[0][:120]
    except Exception as e:  # noqa: BLE001 - a benchmark row records the failure and the run goes on
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    finally:
        del model, opt
        import gc

        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        if compile_model:
            torch._dynamo.reset()
    return row


def flops_per_window(kind: str, *, chans: int = 20, times: int = 256, preset: str = "base", device: str = "cuda",
                     batch: int = 4) -> dict:
    """Model FLOPs of one training step (forward + backward) per window, counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and attention; element-wise work is not counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    dev = torch.device(device)
    torch.manual_seed(0)
    model = _build(kind, preset, chans, dev).train()
    x = torch.randn(batch, chans, times, device=dev)
    y = torch.randint(0, 2, (batch,), device=dev)
    with FlopCounterMode(display=False) as fc:
        _train_step(model, kind, x, y, dev)
    fwd_bwd = fc.get_total_flops() / batch
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    return dict(kind=kind, chans=chans, times=times, preset=preset, train_flops=fwd_bwd,
                infer_flops=fc.get_total_flops() / batch)


def profile_step(kind: str, *, batch: int, out: Path, preset: str = "base", device: str = "cuda") -> dict:
    """CUDA kernel time of 3 bf16 training steps, grouped: matrix products, attention, everything else. The full
    kernel table goes to ``out``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device)
    torch.manual_seed(0)
    model = _build(kind, preset, 20, dev).train()
    from neuript.train.common import make_adamw

    opt = make_adamw(model.parameters(), lr=1e-5)
    x = torch.randn(batch, 20, 256, device=dev)
    y = torch.randint(0, 2, (batch,), device=dev)

    def step():
        _train_step(model, kind, x, y, dev)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    act = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=act) as prof:
        for _ in range(3):
            step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    ev = prof.key_averages()
    sort = "device_time_total" if hasattr(ev[0], "device_time_total") else "cuda_time_total"  # older torch
    out.write_text(ev.table(sort_by=sort if dev.type == "cuda" else "cpu_time_total", row_limit=40))
    groups = dict(gemm=0.0, attention=0.0, other=0.0)
    for e in ev:
        if getattr(getattr(e, "device_type", None), "name", "") != "CUDA":
            continue  # CPU-side ops: their kernels are separate CUDA events
        t = getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0)
        name = e.key.lower()
        if any(k in name for k in ("gemm", "cutlass", "xmma", "nvjet", "cublas")):
            groups["gemm"] += t
        elif any(k in name for k in ("flash", "fmha", "attention", "softmax")):
            groups["attention"] += t
        else:
            groups["other"] += t
    total = sum(groups.values()) or 1.0
    return dict(kind=kind, batch=batch, kernel_ms_per_step=total / 3 / 1e3,
                **{f"{k}_share": v / total for k, v in groups.items()})


def check_official(reference_dir: Path) -> dict:
    """The shared reference fixtures through ``load_reference`` on the GPU, fp32 with TF32 off."""
    import torch
    from safetensors.torch import load_file

    from neuript.official import load_reference

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = {}
    m = load_reference(reference_dir / "stage2_weights.safetensors", reference_dir / "config.json", stage=2)
    io = load_file(str(reference_dir / "stage2_io.safetensors"))
    with torch.no_grad():
        logits = m.cuda()(io["x"].transpose(1, 2).cuda()).cpu()
    out["stage2_logits_max_abs"] = (logits - io["logits"]).abs().max().item()
    m = load_reference(reference_dir / "stage1_weights.safetensors", reference_dir / "config.json", stage=1).cuda()
    io = load_file(str(reference_dir / "stage1_io.safetensors"))
    masks = [io[f"mask_info_{i}"].cuda() for i in range(6)]
    with torch.no_grad():
        pred = m(io["x"].transpose(1, 2).cuda(), mask=masks)["pred"].cpu()
    b, c, _ = pred.shape
    pred = pred.transpose(1, 2)[masks[0].cpu().transpose(1, 2)].view(b, -1, c)
    out["stage1_pred_max_abs"] = (pred - io["pred"]).abs().max().item()
    out["ok"] = max(out["stage2_logits_max_abs"], out["stage1_pred_max_abs"]) < 1e-4
    return out


def run_demo(out: Path, timeout: float) -> dict:
    """``neuript demo`` end to end on this machine (its device: the GPU)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "neuript", "demo", "--out", str(out)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timeout after {timeout:.0f} s")
    row = dict(wall_s=time.perf_counter() - t0, rc=p.returncode)
    if p.returncode:
        row["error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
        return row
    rep = json.loads((out / "finetune" / "report.json").read_text())
    agg = rep.get("aggregate", {})
    row["report"] = dict(split=rep.get("split"), n_windows=rep.get("n_windows"),
                         **{k: agg[k]["mean"] for k in ("balanced_accuracy", "auroc") if k in agg})
    log = out / "pretrain" / "log.csv"
    if log.exists():
        row["pretrain_log_tail"] = log.read_text().strip().splitlines()[-1]
    return row


# ------------------------------------------------------------------------------------------------ driver
def _env() -> dict:
    import torch

    p = torch.cuda.get_device_properties(0)
    return dict(torch=torch.__version__, cuda=torch.version.cuda, gpu=p.name, sm=f"{p.major}.{p.minor}",
                gpu_mem_gb=p.total_memory / 1e9, multiprocessors=p.multi_processor_count, cpus=os.cpu_count(),
                python=sys.version.split()[0])


SECTIONS = ("official", "main", "scaling", "demo", "compile", "batch", "flops", "profile")
PLAN = [("infer", 256, ["reference-like", "fp32", "bf16"]),
        ("finetune", 64, ["reference-like", "fp32", "bf16", "bf16-ckpt"]),
        ("pretrain", 16, ["reference-like", "fp32", "bf16", "bf16-ckpt"])]
SCALING = [(2, 256), (8, 256), (20, 256), (64, 256), (20, 64), (20, 640), (20, 1280), (20, 1920)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="folder for gpu_results.jsonl and the demo run")
    ap.add_argument("--demo-dir", type=Path, help="where the demo run goes (default: OUT/demo)")
    ap.add_argument("--reference", type=Path, help="folder with the official reference fixtures")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip the remaining sections after this")
    ap.add_argument("--quick", action="store_true", help="tiny preset, small batches (a smoke test of this script)")
    ap.add_argument("--sections", default=",".join(SECTIONS[:5]),
                    help=f"comma-separated, run in this order: {', '.join(SECTIONS)}")
    ap.add_argument("--compile", default="infer,finetune", help="which steps the compile section compiles")
    ap.add_argument("--device", default="cuda", help="cpu only to smoke-test this script (with --quick)")
    ap.add_argument("--report", type=Path, help="render a gpu_results.jsonl into BENCHMARKS.md and exit")
    ap.add_argument("--no-write", action="store_true", help="with --report: print only")
    args = ap.parse_args(argv)
    if args.report:
        text = render(args.report)
        print(text)
        if not args.no_write:
            from benchmarks._common import write_section

            print("written to", write_section("gpu", text))
        return 0

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "gpu_results.jsonl"
    t_start = time.perf_counter()

    def emit(section: str, row: dict) -> None:
        row = dict(section=section, **row)
        with results.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    emit("env", dict(_env() if args.device == "cuda" else {}, command=" ".join(sys.argv), steps=args.steps,
                     warmup=args.warmup))
    preset = "tiny" if args.quick else "base"
    scale = 8 if args.quick else 1
    common = dict(steps=args.steps, warmup=args.warmup, preset=preset, device=args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows are true fp32 (torch's default)

    def official():
        if not args.reference:
            return emit("skipped", dict(kind="official", why="no --reference"))
        try:
            emit("official", check_official(args.reference))
        except Exception as e:  # noqa: BLE001
            emit("official", dict(error=f"{type(e).__name__}: {e}"[:300]))

    def main_table():
        for kind, batch, variants in PLAN:
            for v in variants:
                if left() < 0:
                    emit("skipped", dict(kind=kind, variant=v))
                    continue
                emit("main", measure(kind, v, batch=max(batch // scale, 1), **common))

    def scaling():
        for c, t in SCALING:
            if left() < 60:
                emit("skipped", dict(kind="scaling", chans=c, times=t))
                continue
            for kind in ("infer", "finetune"):
                emit("scaling", measure(kind, "bf16", batch=32 // scale, chans=c, times=t, **common))

    def demo():
        if left() > 90:
            emit("demo", run_demo(args.demo_dir or args.out / "demo", timeout=max(left() - 30, 60)))
        else:
            emit("skipped", dict(kind="demo"))

    def compiled():
        for kind, batch in (("infer", 256), ("finetune", 64), ("pretrain", 16)):
            if kind not in args.compile.split(","):
                continue
            if left() < 120:  # compiling the paper-size model takes a minute or more
                emit("skipped", dict(kind="compile", what=kind))
                continue
            emit("compile", measure(kind, "bf16", batch=max(batch // scale, 1), compile_model=True, **common))

    def batch_sizes():  # the paper's per-GPU pretraining batch (480 / 8 GPUs), and MoE routing modes
        for kind, batch, v, mode in (("pretrain", 32, "bf16", "official"), ("pretrain", 64, "bf16-ckpt", "official"),
                                     ("pretrain", 16, "bf16", "paper"), ("finetune", 64, "bf16", "paper")):
            if left() < 20:
                emit("skipped", dict(kind=kind, batch=batch, variant=v, mode=mode))
                continue
            emit("batch", measure(kind, v, batch=max(batch // scale, 1), mode=mode, **common))

    def flops():
        for kind in ("finetune", "pretrain"):  # inference FLOPs come with the fine-tuning model (infer_flops)
            emit("flops", flops_per_window(kind, preset=preset, device=args.device))

    def profiled():
        for kind, batch in (("finetune", 64), ("pretrain", 16)):
            if left() < 20:
                emit("skipped", dict(kind="profile", what=kind))
                continue
            try:
                emit("profile", profile_step(kind, batch=max(batch // scale, 1), preset=preset, device=args.device,
                                             out=args.out / f"profile_{kind}.txt"))
            except Exception as e:  # noqa: BLE001
                emit("profile", dict(kind=kind, error=f"{type(e).__name__}: {e}"[:300]))

    run = dict(official=official, main=main_table, scaling=scaling, demo=demo, compile=compiled, batch=batch_sizes,
               flops=flops, profile=profiled)
    for name in args.sections.split(","):
        if name not in run:
            print(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
            return 2
        run[name]()
    print(f"total {time.perf_counter() - t_start:.0f} s", flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ report
def render(path: Path) -> str:
    rows = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
    env = next((r for r in rows if r["section"] == "env"), {})
    off = next((r for r in rows if r["section"] == "official"), None)
    main_rows = [r for r in rows if r["section"] == "main"]
    def shown(cmd: str) -> str:  # the recorded argv[0] is benchmarks/__main__.py
        return "python -m benchmarks gpu" + cmd.split("__main__.py gpu", 1)[1] if "__main__.py gpu" in cmd else cmd

    commands = ", then ".join(f"`{shown(e['command'])}`" for e in rows if e["section"] == "env" and e.get("command"))
    lines = ["## GPU (paper size `neuript_base`, `mode=\"official\"`)", ""]
    lines.append(
        f"Machine: {env.get('gpu', '?')} ({env.get('gpu_mem_gb', 0):.0f} GB, sm {env.get('sm', '?')}, "
        f"{env.get('multiprocessors', '?')} SMs), {env.get('cpus', '?')} CPU cores; torch {env.get('torch', '?')}, "
        f"CUDA {env.get('cuda', '?')}, Python {env.get('python', '?')}. Commands: {commands} (the rows below are "
        f"their output, rendered by `python -m benchmarks gpu --report {path}`). Each row: median of "
        f"{env.get('steps', '?')} CUDA-synchronised steps after {env.get('warmup', '?')} warm-up steps; a training "
        "step is forward, backward and an AdamW update. Peak = `torch.cuda.max_memory_allocated` (weights, "
        "optimizer state, inputs and activations); static = allocated before the first step. fp32 rows are true "
        "fp32 (TF32 off, torch's default). Variants as in the CPU table: `reference-like` = attention computed the "
        "reference code's way (materialised scores and per-head masks, dropout on the probabilities), fp32, torch's "
        "default AdamW; `bf16` = autocast; `-ckpt` = activation checkpointing per sub-layer.")
    lines.append("")
    if off:
        if "error" in off:
            lines.append(f"Reference fixtures on the GPU: error {off['error']}.")
        else:
            lines.append(f"Reference fixtures through `neuript.official.load_reference` on the GPU (fp32, TF32 off): "
                         f"stage-2 logits max |diff| {off['stage2_logits_max_abs']:.1e}, stage-1 pred max |diff| "
                         f"{off['stage1_pred_max_abs']:.1e} (tolerance 1e-4: {'met' if off['ok'] else 'MISSED'}).")
        lines.append("")
    fl = {r["kind"]: r for r in rows if r["section"] == "flops"}

    def tflops(r: dict) -> str:
        f = fl.get("finetune" if r["kind"] == "infer" else r["kind"])
        if not f or r.get("chans", 20) != f["chans"] or r.get("times", 256) != f["times"]:
            return "—"
        per = f["infer_flops"] if r["kind"] == "infer" else f["train_flops"]
        return f"{r['win_s'] * per / 1e12:.0f}"

    chk = next((r for r in rows if r["section"] == "checks"), None)
    if chk:
        text = (f"CUDA checks (`python -m benchmarks.gpu_checks`): `BF16StateAdamW` with fp32 state equals torch's "
                f"AdamW (max diff {chk['fp32_state_vs_torch_max_abs']:.1e}); its stochastic rounding is unbiased "
                f"(mean error {chk['sr_mean_minus_exact']:.1e}, {abs(chk['sr_mean_minus_exact']) / chk['sr_stderr']:.1f} "
                f"standard errors); the bf16 second moment follows the exact average to "
                f"{100 * abs(chk['v_tracking_rel_err']):.2f} %. Pretraining micro-batches vs the full batch: ")
        text += (f"{chk['pretrain_micro_vs_full_rel']:.1e} relative gradient difference." if
                 "pretrain_micro_vs_full_rel" in chk else f"{chk.get('pretrain_micro', 'not measured')}.")
        lines += [text, ""]
    lines += ["| step | batch | variant | windows/s | step ms | peak GB (static) | model TFLOP/s | x reference-like "
              "speed | reference-like peak / ours |", "|---|---|---|---|---|---|---|---|---|"]
    for r in main_rows:
        base = next((b for b in main_rows if b["kind"] == r["kind"] and b["variant"] == "reference-like"), {})
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['batch']} | {r['variant']} | {r['error']} | | | | | |")
            continue
        sp = f"{r['win_s'] / base['win_s']:.2f}x" if "win_s" in base else "—"
        mem = f"{base['peak_gb'] / r['peak_gb']:.2f}x" if base.get("peak_gb") and r["peak_gb"] else "—"
        lines.append(f"| {r['kind']} | {r['batch']} | {r['variant']} | {r['win_s']:.0f} | {r['step_ms']:.1f} | "
                     f"{r['peak_gb']:.2f} ({r['static_gb']:.2f}) | {tflops(r)} | {sp} | {mem} |")
    lines.append("")
    if fl:
        parts = [f"{k}: {v['train_flops'] / 1e12:.2f} TFLOP per window per training step, {v['infer_flops'] / 1e12:.2f} "
                 f"per inference" for k, v in fl.items()]
        lines += [f"Model TFLOP/s = windows/s x FLOPs per window, counted by `torch.utils.flop_counter.FlopCounterMode` "
                  f"(matrix products and attention only; {'; '.join(parts)}). This GPU's measured bf16 matrix rate is "
                  "about 790 TFLOP/s (KINDS.md of the device tool), fp32 without TF32 about 60.", ""]
    extra = [r for r in rows if r["section"] == "batch"]
    if extra:
        note = ""
        if any("bf16state" in r["variant"] for r in extra):
            note = (" `-bf16state` = AdamW moments in bfloat16 (`--optimizer-state bf16`), measured by "
                    "`python -m benchmarks.gpu_checks` (median of 5 steps after 2 warm-up steps). On the GPU it "
                    "saves 0.4 GB beside tens of GB of activations and costs speed (one parameter at a time): it is "
                    "meant for CPUs.")
        lines += ["Other batch sizes and the `paper` MoE routing (softmax over the top-k, no token dropping)." + note,
                  "",
                  "| step | batch | variant | routing | windows/s | peak GB | model TFLOP/s |", "|---|---|---|---|---|---|---|"]
        for r in extra:
            if "error" in r:
                lines.append(f"| {r['kind']} | {r['batch']} | {r['variant']} | {r['mode']} | {r['error']} | | |")
            else:
                lines.append(f"| {r['kind']} | {r['batch']} | {r['variant']} | {r['mode']} | {r['win_s']:.0f} | "
                             f"{r['peak_gb']:.2f} | {tflops(r)} |")
        lines.append("")
    prof = [r for r in rows if r["section"] == "profile" and "error" not in r]
    if prof:
        lines.append("Where the GPU time goes (`torch.profiler`, CUDA kernel time of 3 bf16 training steps): " + "; ".join(
            f"{r['kind']} batch {r['batch']}: {r['kernel_ms_per_step']:.0f} ms of kernels per step, matrix products "
            f"{100 * r['gemm_share']:.0f} %, attention {100 * r['attention_share']:.0f} %, everything else (dtype "
            f"casts, copies for layout changes, concatenation, LayerNorm, element-wise) {100 * r['other_share']:.0f} %"
            for r in prof) + ". The GPU path is bound by memory traffic of the glue operations, not by arithmetic.")
        lines.append("")
    pre = [r for r in main_rows + extra if r["kind"] == "pretrain" and "win_s" in r and r["variant"] != "reference-like"]
    if pre:
        best = max(pre, key=lambda r: r["win_s"])
        text = (f"For scale: the paper pretrained 2.2M windows x 40 epochs in about 30 h on 8 GPUs, about "
                f"{PAPER_PRETRAIN_WIN_S_PER_GPU:.0f} windows/s per GPU; our fastest pretraining row "
                f"({best['variant']}, batch {best['batch']}) runs {best['win_s']:.0f} windows/s on this GPU, "
                f"so one such GPU would take about {2.2e6 * 40 / best['win_s'] / 3600:.0f} h for the paper's "
                "40 epochs (data loading not included).")
        if "pretrain" in fl:
            need = PAPER_PRETRAIN_WIN_S_PER_GPU * fl["pretrain"]["train_flops"] / 1e12
            text += (f" At {fl['pretrain']['train_flops'] / 1e12:.1f} TFLOP per 20 x 256 window, the paper's rate would "
                     f"need {need:.0f} TFLOP/s sustained per GPU, more than an A100's bf16 peak (312): its windows "
                     "must cost less on average (fewer channels, say) or the 30 h is approximate; the spec does not "
                     "say which.")
        lines += [text, ""]
    sc = [r for r in rows if r["section"] == "scaling"]
    if sc:
        lines += ["### Scaling on the GPU (base, bf16, batch 32)", "",
                  "| channels | samples (s at 64 Hz) | inference windows/s | inference peak GB | fine-tune windows/s "
                  "| fine-tune peak GB |", "|---|---|---|---|---|---|"]
        keys = sorted({(r["chans"], r["times"]) for r in sc}, key=lambda k: (k[1] != 256, k[0], k[1]))
        for c, t in keys:
            cells = []
            for kind in ("infer", "finetune"):
                r = next((r for r in sc if r["chans"] == c and r["times"] == t and r["kind"] == kind), {})
                cells += [f"{r['win_s']:.0f}", f"{r['peak_gb']:.2f}"] if "win_s" in r else [r.get("error", "—"), ""]
            lines.append(f"| {c} | {t} ({t / 64:g} s) | " + " | ".join(cells) + " |")
        lines.append("")
    comp = [r for r in rows if r["section"] == "compile"]
    if comp:
        lines += ["### torch.compile (bf16)", ""]
        for r in comp:
            eager = next((m for m in main_rows if m["kind"] == r["kind"] and m["variant"] == "bf16"), {})
            if "error" in r:
                lines.append(f"- {r['kind']} batch {r['batch']}: failed — {r['error']}")
            else:
                ratio = f", {r['win_s'] / eager['win_s']:.2f}x eager" if "win_s" in eager else ""
                lines.append(f"- {r['kind']} batch {r['batch']}: {r['win_s']:.0f} windows/s{ratio}; first step "
                             f"(compilation) {r['first_step_s']:.0f} s; peak {r['peak_gb']:.2f} GB.")
        lines.append("")
    demo = next((r for r in rows if r["section"] == "demo"), None)
    if demo:
        if "error" in demo:
            lines.append(f"`neuript demo` on this machine: failed — {demo['error']}")
        else:
            rep = demo.get("report", {})
            lines.append(f"`neuript demo` end to end on this machine (device picked automatically: the GPU; the "
                         f"data preparation runs on the CPU): {demo['wall_s']:.0f} s wall time; balanced accuracy "
                         f"{100 * rep.get('balanced_accuracy', float('nan')):.1f} %, AUROC "
                         f"{100 * rep.get('auroc', float('nan')):.1f} % on the {rep.get('n_windows', '?')} windows "
                         f"of the {rep.get('split', '?')} split.")
        lines.append("")
    done = {(r["section"], r.get("kind")) for r in rows}
    skipped = [r for r in rows if r["section"] == "skipped" and (r["kind"], r.get("what")) not in done]
    if skipped:
        lines.append("Not measured (the run's time budget ran out): " + ", ".join(
            " ".join(str(v) for k, v in r.items() if k != "section") for r in skipped) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
