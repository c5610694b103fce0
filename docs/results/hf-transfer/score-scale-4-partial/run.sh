#!/bin/bash
# SmolLM2-135M: attention transfer with coca score_scale=4, then stage 2; the same commands as docs/HF.md's second round
set -x
B=/work/main/.venv/bin
cd /tmp/exp/smolrun
export OMP_NUM_THREADS=1
/usr/bin/time -v $B/cocattn convert llama /tmp/exp/smollm2-hf coca-ss4-transfer --transfer --data /tmp/exp/data --coca score_scale=4 --quiet > transfer.log 2> transfer-time.txt
$B/cocattn eval ppl coca-ss4-transfer --data /tmp/exp/data --lengths 1024 --stride 1024 --max-docs 8 --max-tokens 1025 --device cpu --no-progress --out ppl-coca-ss4-transfer.json > ppl1.log 2>&1
$B/cocattn data build --preset pypi --out data-smollm2 --tokenizer /tmp/exp/smollm2-hf > data.log 2>&1
export OMP_NUM_THREADS=2
/usr/bin/time -v $B/cocattn train --config /work/main/docs/results/hf-transfer/stage2.yaml --init-from coca-ss4-transfer --stage 2 --data data-smollm2 --out s2 --no-progress train.steps=400 train.threads=2 train.lr=6e-4 train.min_lr=3e-5 > s2.log 2> s2-time.txt
$B/cocattn eval ppl s2/model --data /tmp/exp/data --lengths 1024 --stride 1024 --max-docs 8 --max-tokens 1025 --device cpu --no-progress --out ppl-coca-ss4-s2.json > ppl2.log 2>&1
$B/cocattn eval passkey s2/model --lengths 1024 2048 --cases 16 --max-new-tokens 10 --device cpu --no-progress --out passkey-coca-ss4-s2.json > pk.log 2>&1
$B/cocattn eval passkey coca-ss4-transfer --lengths 1024 2048 --cases 16 --max-new-tokens 10 --device cpu --no-progress --out passkey-coca-ss4-transfer.json > pk1.log 2>&1
echo done > DONE
