"""Lean fine-tuning experiment loop for EEGMAT (in-memory windows, per-subject input alignment, crops,
balanced sampling, EMA), reusing neuript's model builder and balanced loss. One process, one thread.

    python benchmarks/eegmat_exp/ft.py --name NAME --align chstd --epochs 6 --seeds 0,1,2 ...
"""
import argparse, copy, json, math, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import STORE, differenced, load_split, subject_transform
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from neuript.data.preprocess import alaw
from neuript.runtime import autocast, resolve_precision, seed_everything
from neuript.train.finetune import BalancedLoss, FinetuneConfig, build_classifier_for, load_finetune_data

warnings.filterwarnings("ignore")
p = argparse.ArgumentParser()
p.add_argument("--name", required=True)
p.add_argument("--store", default=STORE)
p.add_argument("--align", default="none", choices=["none", "chstd", "ea", "recstd"])
p.add_argument("--input", default="alaw", choices=["alaw", "linear"], help="alaw(x_uv) or x/20 (linear)")
p.add_argument("--scale-uv", type=float, default=20.0, help="aligned (unit-variance) signals are scaled to this µV std")
p.add_argument("--epochs", type=int, default=6)
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--wd", type=float, default=0.05)
p.add_argument("--pct-start", type=float, default=0.1)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--loss", default="balanced", choices=["balanced", "ce"])
p.add_argument("--ls", type=float, default=0.1)
p.add_argument("--sampler", default="balanced", choices=["all", "balanced"], help="balanced: per epoch all task + as many random rest windows")
p.add_argument("--crop", type=int, default=0, help="random crop length in samples for training (0: full window)")
p.add_argument("--amp-aug", type=float, default=0.0, help="random per-window gain exp(U(-a,a)) before companding")
p.add_argument("--ema", type=float, default=0.0)
p.add_argument("--freeze-epochs", type=int, default=0)
p.add_argument("--dropout", type=float, default=None)
p.add_argument("--d-model", type=int, default=32)
p.add_argument("--pretrained", default=None)
p.add_argument("--seeds", default="0")
p.add_argument("--precision", default="auto",
               help="auto: bf16 only with native bf16 (GPU, AVX512-BF16/AMX); emulated bf16 is 3.5-4x slower on AVX2")
p.add_argument("--pool", default="mean", choices=["mean", "meanstd"],
               help="IILP time pooling: mean (paper) or mean and log-std over time (a power-like feature)")
p.add_argument("--featnorm", default="none", choices=["none", "subject"],
               help="subject: standardise the pooled features per subject (stats of the current model over up to "
                    "--featnorm-n windows of the subject, refreshed each epoch; label-free, transductive at test)")
p.add_argument("--featnorm-n", type=int, default=24)
p.add_argument("--featnorm-crop", action="store_true",
               help="training-subject statistics from random crops of --crop samples (the training length)")
p.add_argument("--diff", action="store_true", help="first difference of the input (as probe.py --diff yes)")
p.add_argument("--preemph", type=float, default=1.0, help="coefficient of the --diff filter x[t] - a x[t-1]")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--save-feats", action="store_true", help="save IILP-pooled features of train/val (full windows) per seed")
args = p.parse_args()
torch.set_num_threads(args.threads)
out = Path("neuript_runs/eegmat_exp/ft") / args.name
out.mkdir(parents=True, exist_ok=True)

cfg = FinetuneConfig(stores=[args.store], preset="neuript_tiny", pretrained=args.pretrained)
if args.d_model != 32:
    d = args.d_model
    cfg.model_overrides.update(d_model=d, d_ff=d, expert_hidden=3 * d // 4, shared_hidden=d, n_heads=max(2, d // 16))
if args.dropout is not None:
    cfg.model_overrides.update(dropout=args.dropout)
data = load_finetune_data(cfg)

xtr, ytr, str_, _ = load_split(args.store, "train")
xva, yva, sva, _ = load_split(args.store, "val")
if args.align == "recstd":  # per recording (rest / task file) channel std: uses the recording id, still label-free
    raise SystemExit("recstd not implemented")
xtr = subject_transform(xtr, str_, args.align)
xva = subject_transform(xva, sva, args.align)
if args.align != "none":
    xtr, xva = xtr * args.scale_uv, xva * args.scale_uv
if args.diff:
    xtr, xva = differenced(xtr, xtr, args.preemph), differenced(xva, xtr, args.preemph)
xtr = torch.tensor(xtr, dtype=torch.float32)
xva = torch.tensor(xva, dtype=torch.float32)
ytr_t = torch.tensor(ytr)


def prep(x):
    return alaw(x, A=0.25) if args.input == "alaw" else x / 20.0


xva_in = prep(xva)
device = torch.device("cpu")
args.precision = resolve_precision(args.precision, device)  # recorded resolved in summary.json


FN = {"stats": None}  # (mu, sd) per window of the current forward, or None


@torch.no_grad()
def pooled_flat(model, x):
    model.eval(); FN["stats"] = None
    out_ = []
    for k in range(0, len(x), 64):
        with autocast(device, args.precision):
            out_.append(model.forward_head(model.forward_features(x[k:k + 64]), pre_logits=True).float())
    return torch.cat(out_)


def random_crop(x, n, rng):
    """A random ``n``-sample crop of each window of ``x`` (B, C, T), a new offset per window."""
    start = rng.integers(0, x.shape[-1] - n + 1, len(x))
    return torch.stack([x[i, :, s:s + n] for i, s in enumerate(start)])


def subject_stats(model, x, subj, rng, n=None, crop=0):
    """subject -> (mu, sd) of the pooled features over (up to n) windows of the subject. With ``crop`` the
    statistics come from random crops of that many samples, the length the training batches have: the log-std
    features of a 2.5 s crop and of a full 5 s window differ in scale, and full-window statistics applied to
    crops (the default, kept comparable with FINDINGS §6 and §10) give training losses of 2-10 in the first epochs."""
    st = {}
    for s_ in np.unique(subj):
        ids = np.flatnonzero(subj == s_)
        if n and len(ids) > n:
            ids = np.sort(rng.choice(ids, n, replace=False))
        f_ = pooled_flat(model, random_crop(x[ids], crop, rng) if crop else x[ids])
        st[s_] = (f_.mean(0), f_.std(0) + 1e-3)
    return st


def batch_stats(st, subj_b):
    return (torch.stack([st[s_][0] for s_ in subj_b]), torch.stack([st[s_][1] for s_ in subj_b]))


@torch.no_grad()
def predict(model, x, subj=None):
    st = subject_stats(model, x, subj, None) if args.featnorm == "subject" else None
    model.eval()
    logits = []
    for k in range(0, len(x), 64):
        FN["stats"] = batch_stats(st, subj[k:k + 64]) if st is not None else None
        with autocast(device, args.precision):
            logits.append(model(x[k:k + 64]).float().squeeze(-1))
    FN["stats"] = None
    return torch.cat(logits).numpy()


def metrics(y, logit):
    return {"bacc": balanced_accuracy_score(y, logit > 0), "auroc": roc_auc_score(y, logit)}


results = []
for seed in [int(s) for s in args.seeds.split(",")]:
    t0 = time.perf_counter()
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    model = build_classifier_for(cfg, data).to(device)
    if args.pool == "meanstd":
        import types
        head = model.final_layer
        head.linear = torch.nn.Linear(2 * head.linear.in_features, head.linear.out_features)

        def _pool(self, features, weights, flatten=True):
            out_ = []
            for f_ in features:
                w_ = weights.to(f_.dtype)
                out_.append(torch.einsum("bcd,gc->bgd", f_.mean(dim=2), w_))
                out_.append(torch.einsum("bcd,gc->bgd", torch.log(f_.float().var(dim=2) + 1e-4).to(f_.dtype) / 2, w_))
            out_ = torch.stack(out_, dim=1)
            return out_.flatten(1) if flatten else out_

        head.pool = types.MethodType(_pool, head)
    if args.featnorm == "subject":
        import types

        def _fhead(self, features, *, pre_logits=False):
            flat = features.flatten(1)
            if pre_logits:
                return flat
            if FN["stats"] is not None:
                mu, sd = FN["stats"]
                flat = ((flat.float() - mu) / sd).to(flat.dtype)
            return self.final_layer.classify(flat)

        model.forward_head = types.MethodType(_fhead, model)
    loss_fn = BalancedLoss(data.prior if args.sampler == "all" else np.array([0.5, 0.5]),
                           tau=1.0 if args.loss == "balanced" else 0.0, label_smoothing=args.ls, binary=True)
    pos, neg = np.flatnonzero(ytr == 1), np.flatnonzero(ytr == 0)
    n_epoch = 2 * len(pos) if args.sampler == "balanced" else len(ytr)
    steps = n_epoch // args.batch
    head_ids = set(id(p_) for p_ in model.final_layer.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps,
                                                pct_start=args.pct_start, anneal_strategy="cos", cycle_momentum=False)
    ema = copy.deepcopy(model) if args.ema else None
    hist = []
    for ep in range(args.epochs):
        for p_ in model.parameters():
            p_.requires_grad_(ep >= args.freeze_epochs or id(p_) in head_ids)
        model.train()
        idx = (np.concatenate([pos, rng.choice(neg, len(pos), replace=False)]) if args.sampler == "balanced"
               else np.arange(len(ytr)))
        idx = rng.permutation(idx)
        tl, tp, ty = [], [], []
        tr_st = (subject_stats(model, prep(xtr), str_, rng, args.featnorm_n, args.crop if args.featnorm_crop else 0)
                 if args.featnorm == "subject" else None)
        model.train()
        for b in range(steps):
            bi = idx[b * args.batch:(b + 1) * args.batch]
            x = xtr[bi]
            if args.crop:
                x = random_crop(x, args.crop, rng)
            if args.amp_aug:
                x = x * torch.exp(torch.empty(len(bi), 1, 1).uniform_(-args.amp_aug, args.amp_aug))
            x = prep(x)
            y = ytr_t[bi]
            opt.zero_grad(set_to_none=True)
            FN["stats"] = batch_stats(tr_st, str_[bi]) if tr_st is not None else None
            with autocast(device, args.precision):
                logit = model(x)
            FN["stats"] = None
            with autocast(device, args.precision):
                loss = loss_fn(logit, y) + 0.8 * model.aux_loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step(); sched.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(pm, 1 - args.ema)
                    for be, bm in zip(ema.buffers(), model.buffers()):
                        be.copy_(bm)
            tl.append(float(loss)); tp.append(logit.detach().float().squeeze(-1).numpy()); ty.append(y.numpy())
        tp, ty = np.concatenate(tp), np.concatenate(ty)
        lv = predict(model, xva_in, sva)
        yv = torch.tensor(yva, dtype=torch.float32)
        h = {"epoch": ep, "train_loss": float(np.mean(tl)), "train_bacc": balanced_accuracy_score(ty, tp > 0),
             "val_ce": float(F.binary_cross_entropy_with_logits(torch.tensor(lv), yv)), **{f"val_{k}": v for k, v in metrics(yva, lv).items()},
             "val_mean_logit": float(lv.mean()), "secs": time.perf_counter() - t0}
        if ema is not None:
            le = predict(ema, xva_in, sva)
            h.update({f"ema_{k}": v for k, v in metrics(yva, le).items()})
        hist.append(h)
        print(f"[{args.name} s{seed}] ep{ep} loss {h['train_loss']:.3f} trBAcc {h['train_bacc']:.3f} | val CE {h['val_ce']:.3f} "
              f"BAcc {h['val_bacc']:.3f} AUROC {h['val_auroc']:.3f} meanlogit {h['val_mean_logit']:+.2f}"
              + (f" | EMA {h['ema_bacc']:.3f}/{h['ema_auroc']:.3f}" if ema is not None else "") + f"  {h['secs']:.0f}s", flush=True)
    final = predict(ema if ema is not None else model, xva_in, sva)
    if args.save_feats:
        fm = ema if ema is not None else model
        for nm, xx in (("train", prep(xtr)), ("val", xva_in)):
            fs = []
            with torch.no_grad():
                for k in range(0, len(xx), 64):
                    with autocast(device, args.precision):
                        _, feats = fm(xx[k:k + 64], return_features=True)
                    fs.append(fm.final_layer.pool(fm.pooled_features(feats), fm.group_weights).float())
            np.save(out / f"feats_{nm}_seed{seed}.npy", torch.cat(fs).numpy())
    np.save(out / f"val_logits_seed{seed}.npy", final)
    r = {"seed": seed, "final": metrics(yva, final), "best_epoch_bacc": max(h["val_bacc"] for h in hist),
         "secs": time.perf_counter() - t0, "history": hist}
    results.append(r)
    print(f"[{args.name} s{seed}] FINAL BAcc {r['final']['bacc']:.3f} AUROC {r['final']['auroc']:.3f} ({r['secs']:.0f}s)", flush=True)

fb = np.array([r["final"]["bacc"] for r in results]); fa = np.array([r["final"]["auroc"] for r in results])
summary = {"args": vars(args), "bacc_mean": fb.mean(), "bacc_std": fb.std(), "auroc_mean": fa.mean(), "auroc_std": fa.std(),
           "n_seeds": len(results), "secs": sum(r["secs"] for r in results), "per_seed": results}
if len(results) > 1:  # seed ensemble: mean logit
    ens = np.mean([np.load(out / f"val_logits_seed{r['seed']}.npy") for r in results], axis=0)
    summary["ensemble"] = metrics(yva, ens)
json.dump(summary, open(out / "summary.json", "w"), indent=1, default=float)
print(f"SUMMARY {args.name}: BAcc {100*fb.mean():.1f} ± {100*fb.std():.1f}  AUROC {100*fa.mean():.1f} ± {100*fa.std():.1f}  "
      f"n={len(results)}  {summary['secs']:.0f}s" + (f"  ensemble {summary['ensemble']}" if 'ensemble' in summary else ""), flush=True)
