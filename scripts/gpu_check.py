"""Issue 6's GPU check in one command: the CUDA-graph tests, every algorithm for a few iterations on the device,
then the benchmarks, and one JSON report.

Each step runs as its own process with a time limit, so one failure or hang does not hide the others; the
report records, per step, the command, its exit code, its wall time and the last lines of its output, and
merges the benchmarks' own JSON. Needs ``METARL_DATA`` (Omniglot) and the project importable.

    METARL_DATA=data PYTHONPATH=. python scripts/gpu_check.py --out gpu-check     # on the GPU machine
    METARL_DATA=../shared/data PYTHONPATH=. python scripts/gpu_check.py --device cpu --quick --out /tmp/check
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

TINY = ["--log-every", "2", "--eval-every", "4", "--checkpoint-every", "4", "--eval-tasks", "4",
        "--final-eval-tasks", "8", "--no-progress"]


@dataclass
class Args:
    """Run every training script for a few iterations and the benchmarks on one device; write one JSON report."""

    out: str = "gpu-check"
    """Folder for the runs, the benchmarks' JSON and report.json."""
    device: str = "cuda"
    """Device of every step (cuda on the GPU machine; cpu to try the script elsewhere)."""
    quick: bool = False
    """Fewer benchmark repeats and inner-step counts (to try the script on a CPU)."""
    timeout: int = 240
    """Seconds each step may take."""


def steps(args: Args, out: Path) -> list[tuple[str, list[str]]]:
    """(name, argv after the interpreter) of every step, training scripts first."""
    device = ["--device", args.device]

    def train(name: str, script: str, *extra: str) -> tuple[str, list[str]]:
        return name, [f"scripts/{script}", "--out", str(out / "runs" / name), "--iterations", "4", *device, *TINY,
                      *extra]

    omniglot = ["--dataset", "omniglot"]
    repeats = ["--repeats", "1", "--warmup", "0"] if args.quick else ["--repeats", "3", "--warmup", "1"]
    memory_steps = ["1", "5"] if args.quick else ["1", "5", "10"]
    # The sampler at the paper's batch (40 tasks x 20 episodes x 200 steps) on HalfCheetah and Ant: sync, the envs'
    # own vector classes and half and all of the cores as workers, against the mujoco.rollout ceiling; quick: small.
    cores = os.cpu_count() or 1
    sampler = (["--tasks", "4", "--episodes-per-task", "5", "--horizon", "50", "--max-workers", "2", "--repeats", "1",
                "--warmup", "0", "--mj-steps", "2000"] if args.quick else
               ["--repeats", "1", "--warmup", "0", "--workers", *sorted({str(max(1, cores // 2)), str(cores)})])
    sampler += ["--policy-device", args.device]
    return [
        # the recorded MAML meta-step against eager steps (tests/test_cuda_graph.py skips these without CUDA)
        ("cuda_graph_tests", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda_graph.py"]),
        train("sinusoid", "train_sinusoid.py", "--no-plot"),
        train("omniglot-maml", "train_omniglot.py", "--meta-batch-size", "8"),
        train("meta-lstm", "train_meta_lstm.py", *omniglot),
        train("nearest-neighbour", "train_nearest_neighbour.py", *omniglot),
        train("matching-net", "train_matching_net.py", *omniglot, "--fce"),
        train("mann", "train_mann_omniglot.py", "--meta-batch-size", "4"),
        train("navigation", "train_navigation.py", "--meta-batch-size", "4"),
        train("halfcheetah-vel", "train_halfcheetah_vel.py", "--meta-batch-size", "4", "--episodes-per-task", "2"),
        ("bench_maml", ["scripts/bench_maml.py", *device, *repeats, "--out", str(out / "bench_maml.json")]),
        ("bench_maml_memory", ["scripts/bench_maml_memory.py", *device, "--steps", *memory_steps,
                               "--out", str(out / "bench_maml_memory.json")]),
        ("bench_sampler", ["scripts/bench_sampler.py", *sampler, "--out", str(out / "bench_sampler.json")]),
    ]


def run_step(name: str, argv: list[str], timeout: int) -> dict[str, object]:
    start = time.perf_counter()
    try:
        result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
        code, output = result.returncode, result.stdout + result.stderr
    except subprocess.TimeoutExpired as expired:
        code = "timeout"
        output = "".join(part.decode() if isinstance(part, bytes) else (part or "")
                         for part in (expired.stdout, expired.stderr))
    seconds = time.perf_counter() - start
    print(f"{name:<20} {'ok' if code == 0 else f'FAILED ({code})':<16} {seconds:7.1f} s", flush=True)
    return {"name": name, "command": argv, "exit_code": code, "seconds": round(seconds, 1),
            "output_tail": output.splitlines()[-15:]}


def main(args: Args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    report: dict[str, object] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "steps": [run_step(name, argv, args.timeout) for name, argv in steps(args, out)],
    }
    for name in ("bench_maml", "bench_maml_memory", "bench_sampler"):
        path = out / f"{name}.json"
        report[name] = json.loads(path.read_text()) if path.is_file() else None
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    failed = [step["name"] for step in report["steps"] if step["exit_code"] != 0]
    print(f"report: {out / 'report.json'}; {'all steps passed' if not failed else 'failed: ' + ', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(tyro.cli(Args))
