#!/bin/bash
# The natural-text runs of docs/LAB.md "Why CoCA learns to retrieve late", as run on 2026-12-07 on the
# 2-core AMD EPYC (torch 2.13.0+cpu), code of commits 3dc1a41..2f50c90 (the options arrived in 3dc1a41;
# nothing the runs use changed after it). Several ran side by side with the lab study: no timing is quoted.
set -e
cocattn data build --preset pypi --out DATA
T="cocattn train --config tiny-cpu --data DATA --no-progress train.keep_checkpoints=4"
OMP_NUM_THREADS=1 $T --out runs/coca-i08   model.attention=coca model.init_std=0.08   # whole-model init 0.08
OMP_NUM_THREADS=1 $T --out runs/rope-i08   model.attention=rope model.init_std=0.08
OMP_NUM_THREADS=1 $T --out runs/coca-ss4   model.attention=coca model.coca_score_scale=4
OMP_NUM_THREADS=1 $T --out runs/coca-tlr4  model.attention=coca model.coca_t_lr_mult=4
OMP_NUM_THREADS=1 $T --out runs/coca-ss16  model.attention=coca model.coca_score_scale=16
OMP_NUM_THREADS=1 $T --out runs/coca-qt    model.attention=coca model.coca_t_init_std=0.08 model.coca_q_init_std=0.04
L="train.steps=1800 train.checkpoint_interval=300 train.eval_interval=300 train.keep_checkpoints=6"
OMP_NUM_THREADS=1 $T --out runs/coca-long-rel model.attention=coca $L                    # the released CoCA, 3x the steps
OMP_NUM_THREADS=1 $T --out runs/coca-long-ss4 model.attention=coca model.coca_score_scale=4 $L
# passkey in-window (pk-*.json: each run's model; pkl-*: the long runs' checkpoints and model)
cocattn eval passkey runs/coca-ss4/model --lengths 128 --cases 50 --max-new-tokens 7 --out passkey/pk-coca-ss4.json
cocattn eval passkey runs/coca-long-rel/checkpoints/step_0000900 --lengths 128 --cases 50 --max-new-tokens 7 \
    --out passkey/pkl-long-rel-0900.json
# 1-16x for the long runs (pkx-*, pplx-*)
cocattn eval passkey runs/coca-long-rel/model --cases 50 --max-new-tokens 7 --batch-tokens 8192 --out pkx-long-rel-plain.json
cocattn eval passkey runs/coca-long-rel/model --cases 50 --max-new-tokens 7 --batch-tokens 8192 --rope dynamic --factor 4 \
    --out pkx-long-rel-dyn4.json
cocattn eval ppl runs/coca-long-rel/model --data DATA --lengths 128 256 512 1024 2048 --stride 128 --max-docs 10 \
    --max-tokens 2049 --batch-tokens 8192 --out pplx-long-rel.json
# the same three commands for runs/coca-long-ss4/model (pkx-long-ss4-*, pplx-long-ss4.json)
