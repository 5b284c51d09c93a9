#!/usr/bin/env bash
# Does pretraining pay? AAMP vs random masking, and pretraining steps, measured by linear probes (probe.py) of the
# pretrained tiny encoder on EEGMAT. Pretraining reads only the *training* recordings of the EEGMAT store
# (--split train: labels unused, validation subjects untouched). One process at a time, 2 threads.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONPATH=. ; PY=${PY:-.venv/bin/python}
S=neuript_runs/eegmat_exp/stores/eegmat; R=neuript_runs/eegmat_exp/pt
for arm in "aamp 50" "aamp 150" "random 150"; do
  set -- $arm; run=$R/$1_$2
  [[ -f $run/model/model.safetensors ]] || $PY -m neuript pretrain $S --split train --out $run --preset neuript_tiny \
      --masking $1 --max-steps $2 --batch-size 16 --lr 1e-3 --checkpoint-every 50 2>&1 | grep -v "win/s" | tail -2
  $PY benchmarks/eegmat_exp/probe.py --name pt_$1_$2 --pretrained $run --seeds 0 2>&1 | grep -E "PROBE|seed"
done
