"""Peak memory of one second-order MAML meta-step, with and without gradient checkpointing of the inner steps.

Mini-ImageNet shapes (Finn et al. 2017's setting there): 84x84 colour images, conv4-32, 5-way 1-shot with
15 queries per class, meta-batch 4, second order. Each configuration runs in a fresh process, so one
measurement cannot inherit another's peak: on CUDA the figure is ``torch.cuda.max_memory_allocated``
(tensors only), on the CPU the process's peak resident set size (``ru_maxrss``, everything the process
holds, the interpreter and torch included). Both are printed and written to JSON.

    PYTHONPATH=. python scripts/bench_maml_memory.py --device cuda --out benchmarks/maml_memory.json
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import tyro

from metarl.maml import MAML, MAMLConfig
from metarl.models import Conv4
from metarl.tasks import Episode
from metarl.train import resolve_device


@dataclass
class Args:
    """Peak memory of a second-order MAML meta-step for several inner-step counts, checkpointed or not."""

    device: str = "auto"
    """auto (CUDA when available), cpu or cuda."""
    steps: tuple[int, ...] = (1, 5, 10)
    """Inner-step counts to measure."""
    path: str = "auto"
    """MAML's path: auto, batched (vmap) or per_task."""
    meta_batch_size: int = 4
    ways: int = 5
    shots: int = 1
    queries: int = 15
    image_size: int = 84
    hidden: int = 32
    out: str | None = None
    """Also write the report to this JSON file."""
    child: str | None = None
    """Internal: measure one configuration, given as 'steps,checkpoint' (e.g. '5,1'), and print it as JSON."""


def measure(args: Args, steps: int, checkpoint: bool) -> dict[str, float | int | bool]:
    """One warm-up and one measured meta-step of a fresh learner; the peak memory and the measured step's time."""
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = Conv4(3, args.ways, hidden=args.hidden, image_size=args.image_size)
    # eager steps: a CUDA graph is not made with checkpointing, so both rows must run without one
    config = MAMLConfig(inner_lr=0.01, inner_steps=steps, path=args.path, checkpoint_steps=checkpoint, cuda_graph="off")
    maml = MAML(model, "cross_entropy", config, device)
    t, size = args.meta_batch_size, args.image_size
    episode = Episode(torch.rand(t, args.ways * args.shots, 3, size, size),
                      torch.arange(args.ways).repeat_interleave(args.shots).expand(t, -1).contiguous(),
                      torch.rand(t, args.ways * args.queries, 3, size, size),
                      torch.arange(args.ways).repeat_interleave(args.queries).expand(t, -1).contiguous())
    maml.meta_train_step(episode)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    maml.meta_train_step(episode)
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"steps": steps, "checkpoint": checkpoint, "peak_mib": peak / 2**20,
            "step_seconds": time.perf_counter() - start, "path": "batched" if maml.batched else "per_task"}


def main(args: Args) -> None:
    if args.child is not None:
        steps, checkpoint = (int(v) for v in args.child.split(","))
        print(json.dumps(measure(args, steps, bool(checkpoint))))
        return
    device = resolve_device(args.device)
    rows = []
    for steps in args.steps:
        for checkpoint in (False, True):
            command = [sys.executable, __file__, "--device", args.device, "--path", args.path,
                       "--meta-batch-size", str(args.meta_batch_size), "--ways", str(args.ways), "--shots",
                       str(args.shots), "--queries", str(args.queries), "--image-size", str(args.image_size),
                       "--hidden", str(args.hidden), "--child", f"{steps},{int(checkpoint)}"]
            result = subprocess.run(command, capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{steps:>2} inner steps, {'checkpointed' if checkpoint else 'plain':>12}: "
                  f"peak {row['peak_mib']:8.1f} MiB, {row['step_seconds'] * 1000:8.1f} ms per meta-step ({row['path']})")
    measure_of = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "peak resident set size (ru_maxrss)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__, "memory": measure_of, "settings": asdict(args), "rows": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
