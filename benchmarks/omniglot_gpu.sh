#!/usr/bin/env bash
# The GPU figures of issue 2 in one lease: the MAML meta-step benchmark and Omniglot training.
#
#   bash benchmarks/omniglot_gpu.sh probe OUT            # bench_maml on CUDA + a few steps of each Omniglot setting
#   bash benchmarks/omniglot_gpu.sh graph OUT            # the CUDA-graph tests, and bench_maml of the default
#                                                        # (a CUDA graph) against eager steps and higher
#                                                        # (5-way shapes; 20-way shapes without higher)
#   bash benchmarks/omniglot_gpu.sh train OUT N5 N20 S   # 5-way and 20-way 1-shot side by side, N5 / N20
#                                                        # iterations (0: not that one), each stopped after
#                                                        # S seconds at most; FLAGS: more options for both
#   bash benchmarks/omniglot_gpu.sh resume OUT RUN.tgz WAYS S   # continue a packed run (5- or 20-way, as
#                                                        # trained) for at most S seconds, then evaluate it
#                                                        # and pack it again
#   bash benchmarks/omniglot_gpu.sh cold OUT N [S]       # time to accuracy: 5-way 1-shot alone for N iterations
#                                                        # (stopped after S seconds at most) from a cold start
#                                                        # (empty decoded-image cache), wall time of the whole
#                                                        # run, final 600-task eval included
#
# Needs METARL_DATA (a folder holding omniglot/images_*.zip) and the project importable (PYTHONPATH=.
# or installed). Each run folder is packed into OUT/<run>.tgz with its metrics, TensorBoard events,
# checkpoint and eval.json. A run stopped by its time limit is evaluated from its last checkpoint
# (600 test tasks) into <run>/eval_checkpoint.json.
set -uo pipefail
phase=${1:?probe, graph, train, resume or cold}
out=${2:?output folder}
runs=${RUNS:-/tmp/metarl-runs}
device=${DEVICE:-cuda}  # DEVICE=cpu tries the script without a GPU
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1

five_way=(--ways 5)
twenty_way=(--ways 20 --inner-lr 0.1 --inner-steps 5 --eval-inner-steps 5 --meta-batch-size 16)

step_rate() {  # last perf record of a run: meta-tasks per second
    python3 -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; p=[r for r in rows if any(k.startswith('perf/') for k in r)]; print({k: v for k, v in p[-1].items()} if p else 'no perf record')" "$1/metrics.jsonl"
}

pack() {  # run folder -> OUT/<name>.tgz, evaluating the last checkpoint when the run did not finish
    local name=$1
    if [[ ! -f "$runs/$name/eval.json" && -f "$runs/$name/checkpoint.pt" ]]; then
        python3 -m metarl.cli evaluate --checkpoint "$runs/$name" --tasks 600 --device "$device" --json \
            > "$runs/$name/eval_checkpoint.json"
        cat "$runs/$name/eval_checkpoint.json"
    fi
    tar czf "$out/$name.tgz" -C "$runs" "$name"
}

case $phase in
probe)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
    python3 scripts/bench_maml.py --device "$device" --repeats 3 --warmup 1 --out "$out/bench_maml_cuda.json" 2>&1 | tee "$out/bench.log"
    python3 scripts/train_omniglot.py "${five_way[@]}" --out "$runs/probe-5w1s" --iterations 60 --log-every 20 \
        --eval-every 60 --eval-tasks 32 --final-eval-tasks 64 --device "$device" --no-progress 2>&1 | tail -5
    step_rate "$runs/probe-5w1s"
    python3 scripts/train_omniglot.py "${twenty_way[@]}" --out "$runs/probe-20w1s" --iterations 20 --log-every 10 \
        --eval-every 20 --eval-tasks 16 --final-eval-tasks 32 --device "$device" --no-progress 2>&1 | tail -5
    step_rate "$runs/probe-20w1s"
    ;;
graph)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py 2>&1 | tee "$out/test_cuda_graph.log"
    python3 scripts/bench_maml.py --device "$device" --repeats 5 --warmup 1 \
        --implementations metarl-default metarl-eager higher --out "$out/bench_maml_graph.json" 2>&1 | tee "$out/bench.log"
    python3 scripts/bench_maml.py --device "$device" --repeats 5 --warmup 1 --orders second --inner-steps 5 \
        --ways 20 --meta-batch-size 16 --inner-lr 0.1 --implementations metarl-default metarl-eager \
        --out "$out/bench_maml_graph_20way.json" 2>&1 | tee "$out/bench_20way.log"
    ;;
train)
    n5=${3:?iterations for 5-way}; n20=${4:?iterations for 20-way}; limit=${5:?seconds}
    common=(--device "$device" --no-progress --checkpoint-every 250 ${FLAGS:-})
    if (( n5 > 0 )); then
        timeout "$limit" python3 scripts/train_omniglot.py "${five_way[@]}" --out "$runs/omniglot-5w1s" \
            --iterations "$n5" "${common[@]}" > "$out/train_5w1s.log" 2>&1 &
    fi
    if (( n20 > 0 )); then
        timeout "$limit" python3 scripts/train_omniglot.py "${twenty_way[@]}" --out "$runs/omniglot-20w1s" \
            --iterations "$n20" "${common[@]}" > "$out/train_20w1s.log" 2>&1 &
    fi
    wait
    tail -n 4 "$out"/train_*.log
    (( n5 > 0 )) && pack omniglot-5w1s
    (( n20 > 0 )) && pack omniglot-20w1s
    ;;
resume)
    packed=${3:?a run packed by this script}; ways=${4:?5 or 20}; limit=${5:?seconds}
    case $ways in 5) flags=("${five_way[@]}") ;; 20) flags=("${twenty_way[@]}") ;; *) echo "WAYS is 5 or 20" >&2; exit 2 ;; esac
    name=$(basename "$packed" .tgz)
    tar xzf "$packed" -C "$runs" && rm -f "$runs/$name/eval_checkpoint.json"
    timeout "$limit" python3 scripts/train_omniglot.py "${flags[@]}" --out "$runs/$name" --iterations 60000 --resume \
        --device "$device" --no-progress --checkpoint-every 250 > "$out/resume_$name.log" 2>&1
    tail -n 4 "$out/resume_$name.log"
    pack "$name"
    ;;
cold)
    n5=${3:?iterations}; limit=${4:-0}  # timeout 0: no limit
    export METARL_CACHE; METARL_CACHE=$(mktemp -d)  # nothing decoded yet: the zips are read and decoded in the timed run
    started=$(date +%s.%N)
    timeout "$limit" python3 scripts/train_omniglot.py "${five_way[@]}" --out "$runs/omniglot-5w1s-cold" --iterations "$n5" \
        --device "$device" --no-progress > "$out/cold_5w1s.log" 2>&1
    status=$?
    wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")
    tail -n 12 "$out/cold_5w1s.log"
    echo "cold start to final 600-task evaluation: $wall s wall (exit $status)" | tee "$out/cold_wall.txt"
    pack omniglot-5w1s-cold
    ;;
*)
    echo "unknown phase $phase (probe, graph, train, resume or cold)" >&2; exit 2 ;;
esac
