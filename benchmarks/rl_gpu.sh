#!/usr/bin/env bash
# Issue 6's RL figures on a GPU machine in one lease: the sampler MAML-TRPO uses against the mujoco.rollout
# ceiling on all of the machine's cores (policy on the GPU in both), then MAML-TRPO on HalfCheetahVel at the
# paper's settings for at most S seconds, from which the time of the 500-iteration paper budget follows.
#
#   bash benchmarks/rl_gpu.sh OUT S [SCRIPT]   # SCRIPT: a scripts/train_*.py of an RL task (default
#                                              # train_halfcheetah_vel.py); ENVS: the sampler's ids,
#                                              # SAMPLERS: its rows (native sharded)
#
# OUT receives bench_sampler.json, the training log, timing.json (median seconds per iteration, of which
# sampling, and the 500-iteration projection) and the run folder packed as <task>-gpu.tgz (its
# checkpoint resumes anywhere with --resume). Needs the project importable (PYTHONPATH=. or installed).
# DEVICE=cpu and SMALL=1 try the script on a CPU machine with small batches.
set -uo pipefail
out=${1:?output folder}
limit=${2:?seconds of training at most}
script=${3:-train_halfcheetah_vel.py}
envs=(${ENVS:-envs:metarl/HalfCheetahVel-v0 envs:metarl/AntVel-v0})
samplers=(${SAMPLERS:-native sharded})
runs=${RUNS:-/tmp/metarl-runs}
device=${DEVICE:-cuda}
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1

if [[ ${SMALL:-0} == 1 ]]; then
    batch=(--tasks 4 --episodes-per-task 5 --horizon 50 --mj-steps 2000)
    train_batch=(--meta-batch-size 4 --episodes-per-task 5 --eval-tasks 2 --final-eval-tasks 2)
else
    batch=()
    train_batch=()
fi

[[ $device == cuda ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import os, torch; print('torch', torch.__version__, 'cpus', os.cpu_count(),
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

# The sync rows (5% and 4% of the ceiling on that machine) take minutes at this size; native and sharded do not.
python3 scripts/bench_sampler.py --env-ids "${envs[@]}" "${batch[@]}" --samplers "${samplers[@]}" --workers "$(nproc)" \
    --policy-device "$device" --repeats 3 --warmup 1 --out "$out/bench_sampler.json" 2>&1 | tee "$out/bench_sampler.log"

run=$(basename "$script" .py | sed 's/^train_//; s/_/-/g')-gpu
timeout "$limit" python3 "scripts/$script" "${train_batch[@]}" --out "$runs/$run" --iterations 500 \
    --device "$device" --log-every 1 --eval-every 100 --checkpoint-every 10 --no-progress > "$out/train.log" 2>&1
echo "training exit $? (124: stopped by the $limit s limit)"
tail -n 3 "$out/train.log"
python3 - "$runs/$run/metrics.jsonl" "$out/timing.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
train = [r for r in rows if "perf/iteration_seconds" in r][1:]  # the first iteration builds the environments
if not train:
    sys.exit("no timed iteration")
iteration = statistics.median(r["perf/iteration_seconds"] for r in train)
sampling = statistics.median(r["perf/sampling_seconds"] for r in train)
report = {"iterations_timed": len(train), "median_iteration_s": iteration, "median_sampling_s": sampling,
          "median_env_steps_per_s": statistics.median(r["perf/env_steps_per_second"] for r in train),
          "projected_500_iterations_min": 500 * iteration / 60,
          "last_step": rows[-1]["step"], "last_time_s": rows[-1]["time"],
          "returns": [(r["step"], r["train/return_before"], r["train/return_after"]) for r in train[-3:]]}
json.dump(report, open(sys.argv[2], "w"), indent=2)
print(json.dumps(report, indent=2))
EOF
tar czf "$out/$run.tgz" -C "$runs" "$run"
