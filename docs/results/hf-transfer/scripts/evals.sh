#!/bin/bash
# Passkey before/after and perplexity 512..4096 (issue 16), SmolLM2-135M, CPU.
set -x
export OMP_NUM_THREADS=2
mkdir -p ev
export PYTHONPATH=/work/wt/evalrun/src
C="/work/main/.venv/bin/python -m cocattn"
git -C /work/wt/evalrun rev-parse HEAD > ev/commit.txt
D=/work/data/pypi
S2=runs/s2-lr6e-4/model
$C eval ppl $S2 --data $D --lengths 1024 --stride 1024 --max-docs 8 --max-tokens 1025 --device cpu --no-progress --out ev/ppl-heldout-s2.json
for m in smollm2-hf coca-t65k $S2; do
  n=$(echo $m | tr '/' '_')
  /usr/bin/time -f "%e s wall %U s user %M KB" $C eval passkey $m --lengths 1024 2048 --cases 16 --max-new-tokens 10 --device cpu --no-progress --out ev/passkey-$n.json
done
for spec in "smollm2-hf none" "smollm2-hf yarn" "$S2 none" "$S2 dynamic"; do
  set -- $spec; m=$1; r=$2; n=$(echo $m | tr '/' '_')-$r
  extra=""
  [ $r = yarn ] && extra="--rope-json {\"rope_type\":\"yarn\",\"factor\":4.0,\"original_max_position_embeddings\":8192}"
  [ $r = dynamic ] && extra="--rope dynamic --factor 4 --training-length 512"
  for L in 512 1024 2048 4096; do
    /usr/bin/time -f "%e s wall %U s user %M KB" $C eval ppl $m --data $D --lengths $L --stride $L --max-docs 4 --max-tokens $((L+1)) --device cpu --no-progress $extra --out ev/ppl-$n-$L.json
  done
done
