#!/usr/bin/env bash
# One GPU session in a fixed time budget, most important first: the CUDA tests, the attention and
# training benchmarks, then the small-gpu preset (`cocattn reproduce`) for as long as the budget
# lasts (a rerun resumes it), then compiled-attention benchmarks with what is left. Everything it
# writes goes to $RESULTS (default runs/gpu) and is packed into $RESULTS/gpu-session.tgz.
#
#   BUDGET=570 REPRO_KINDS='[rope,coca]' DATA=runs/data-full bash scripts/gpu_session.sh
#   STEPS="tests bench-attention reproduce" bash scripts/gpu_session.sh     # a subset, in this order
#   REPRO_ARGS= REPRO_KINDS='[rope,coca,coca-strict,alibi]' STEPS=reproduce bash scripts/gpu_session.sh
#                                       # the preset's full evaluation (1-64x, factors 2/4/8)
#   STEPS="tests bench-attention bench-alibi eval-timing" bash scripts/gpu_session.sh
#       eval-timing: the preset's whole evaluation (4 kinds, 1-64x, factors 2/4/8) on models trained
#       for only 30 steps: it costs what the real one costs (the work does not depend on the
#       weights), so its per-stage wall_s plus the training time measured elsewhere gives the
#       preset's time even where a session's device budget is shorter than the preset.
#
# A lent machine gives 15 min of device time, 10 min per command. What is still unmeasured (session
# 3): the eager CoCA/RoPE ratio at 2K-4K with the rewritten feature maps, ALiBi on FlexAttention,
# and the small-gpu evaluation's wall time. Two calls cover them:
#   STEPS="tests bench-attention bench-alibi" BUDGET=400 bash scripts/gpu_session.sh
#   STEPS=eval-timing BUDGET=420 bash scripts/gpu_session.sh      # carry runs/data-full
# eval-timing's report states the FLOP rate its evaluation achieved. If the step stops early, each
# result JSON's wall_s against the per-setting FLOP of `cocattn reproduce --plan --preset small-gpu
# --data runs/data-full` (31.1 PFLOP of evaluation in all) gives the rate (session 4).
#
# Uses the python3 on PATH (a CUDA build of torch) with this checkout on PYTHONPATH: nothing is
# installed. DATA must be a `cocattn data build --preset full --vocab-size 16384` directory.
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-570}
RESULTS=${RESULTS:-runs/gpu}
DATA=${DATA:-runs/data-full}
REPRO_OUT=${REPRO_OUT:-runs/gpu-small}
REPRO_KINDS=${REPRO_KINDS:-[rope,coca]}
REPRO_ARGS=${REPRO_ARGS-eval.multiples=[1,2,4,8,16] eval.factors=[4]}
STEPS=${STEPS:-tests bench-attention bench-triton bench-alibi bench-train reproduce bench-compiled}
BENCH_KINDS=${BENCH_KINDS:-rope,coca,coca-strict,nope,coca-einsum}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$RESULTS"
start=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - start) )); }

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $RESULTS/NAME.log
    local name=$1 limit=$2
    shift 2
    local remaining
    remaining=$(left)
    (( limit > remaining - 15 )) && limit=$(( remaining - 15 ))
    if (( limit < 20 )); then
        echo "== $name: skipped, $remaining s of the budget left"
        return
    fi
    echo "== $name (limit ${limit} s, $(date -u +%T))"
    timeout --signal=INT --kill-after=10 "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    tail -n 25 "$RESULTS/$name.log"
    echo "== $name: rc=$rc after $(( $(date +%s) - start )) s"
}

{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    python3 -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, torch.cuda.get_device_name())"
    nproc
} 2>&1 | tee "$RESULTS/machine.txt"

for name in $STEPS; do
    case $name in
    tests) step tests 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_triton_features.py ;;
    bench-attention) step bench-attention 150 python3 -m cocattn bench attention --kinds "$BENCH_KINDS" \
        --out "$RESULTS/bench-attention-gpu.json" ;;
    bench-triton) COCATTN_FEATURES=triton step bench-triton 150 python3 -m cocattn bench attention \
        --kinds rope,coca,coca-strict --out "$RESULTS/bench-attention-triton-gpu.json" ;;
    bench-alibi) step bench-alibi 90 python3 -m cocattn bench attention --kinds rope,alibi --lengths 2k,4k,8k,16k \
        --out "$RESULTS/bench-attention-alibi-gpu.json" ;;
    bench-train) step bench-train 120 python3 -m cocattn bench train --config small-gpu \
        --kinds rope,coca,coca-strict,alibi,nope --steps 10 --out "$RESULTS/bench-train-gpu.json" ;;
    reproduce) step reproduce $(( $(left) - ${RESERVE:-20} )) python3 -m cocattn reproduce --preset small-gpu \
        --data "$DATA" --out "$REPRO_OUT" --quiet "eval.kinds=$REPRO_KINDS" $REPRO_ARGS ;;
    eval-timing) step eval-timing $(( $(left) - ${RESERVE:-20} )) python3 -m cocattn reproduce --preset small-gpu \
        --data "$DATA" --out "${EVAL_TIMING_OUT:-runs/gpu-eval-timing}" --quiet train.steps=30 train.warmup=10 \
        train.compile=false train.eval_interval=30 train.checkpoint_interval=30 ;;
    bench-compiled) step bench-compiled 120 python3 -m cocattn bench attention --compile --kinds rope,coca,coca-strict \
        --lengths 2k,4k,16k --out "$RESULTS/bench-attention-compiled-gpu.json" ;;
    *) echo "unknown step $name"; exit 2 ;;
    esac
done

# Pack what came out (no weights or optimizer state: they are large and reproducible).
tar czf "$RESULTS/gpu-session.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='step_*' \
    "$RESULTS"/*.log "$RESULTS"/*.json "$RESULTS"/machine.txt "$REPRO_OUT" "${EVAL_TIMING_OUT:-runs/gpu-eval-timing}" \
    2>/dev/null
ls -la "$RESULTS"
echo "gpu_session: $(( $(date +%s) - start )) s"
