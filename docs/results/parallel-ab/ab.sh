#!/bin/bash
echo -15 > /proc/self/autogroup
C="/work/main/.venv/bin/cocattn train --config tiny-cpu --data /work/data/pypi"
O="train.batch_size=32 train.steps=50 train.warmup=10 train.eval_interval=0 train.checkpoint_interval=0 train.progress=false"
for r in 1 2; do
rm -rf ab-*
OMP_NUM_THREADS=2 $C --out ab-two $O train.threads=2 > /dev/null 2>&1; echo "2thr: $(grep -o '"tokens_per_s": [0-9.]*' ab-two/train_result.json)"
OMP_NUM_THREADS=1 $C --out ab-one1 $O train.threads=1 >/dev/null 2>&1 & OMP_NUM_THREADS=1 $C --out ab-one2 $O train.threads=1 >/dev/null 2>&1; wait
echo "2x1thr: $(grep -o '"tokens_per_s": [0-9.]*' ab-one1/train_result.json) $(grep -o '"tokens_per_s": [0-9.]*' ab-one2/train_result.json)"
done
