"""Time one MAML meta-step of metarl against `higher` and `torchopt` (Omniglot 5-way 1-shot shapes).

One meta-step is: the forward passes, the inner loop on every task's support set, the meta-gradient of
the mean query loss, and the Adam update. Every implementation starts from a deep copy of the same
Conv4-64 and gets the same synthetic episode (random images with a fixed seed: timing does not
depend on the pixels). Before timing, the meta-gradients of all implementations are checked against
each other on the first configuration.

    PYTHONPATH=. python scripts/bench_maml.py --device cpu --repeats 5
    PYTHONPATH=. python scripts/bench_maml.py --inner-steps 1 --orders second --implementations metarl-default higher

Implementations:
  metarl-default  ``MAML`` with its defaults: ``path="auto"`` (whatever :func:`metarl.maml.choose_batched` picks
                  here) and ``cuda_graph="auto"`` (on CUDA the meta-step is replayed as a CUDA graph; its three
                  eager steps and the recording are untimed warm-up)
  metarl-other    ``MAML`` with the other path (batched <-> per_task)
  metarl-eager    ``MAML`` with ``path="auto"`` and no CUDA graph (CUDA only: elsewhere it is the default)
  higher          per-task loop with ``higher.innerloop_ctx`` (SGD inner optimiser), as in higher's MAML example
  torchopt        per-task loop with ``torchopt.MetaSGD`` and extract/recover_state_dict, as in torchopt's example

First order: higher with ``track_higher_grads=False`` detaches the fast weights after every inner step,
so ``query_loss.backward()`` would leave the model's gradients empty; the first-order MAML gradient
(the query gradient at the adapted weights) is therefore taken w.r.t. the fast weights and added to
the model's ``.grad``. ``torchopt.MetaSGD`` always builds the graph of its inner gradients, so first
order uses a MetaSGD whose inner gradients are constants (:class:`FirstOrderMetaSGD`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
import tyro
from torch import nn

from metarl.cuda_graph import WARMUP_CALLS
from metarl.maml import MAML, MAMLConfig, choose_batched
from metarl.models import Conv4
from metarl.tasks import Episode
from metarl.train import resolve_device

Implementation = Literal["metarl-default", "metarl-other", "metarl-eager", "higher", "torchopt"]
Order = Literal["second", "first"]
IMPLEMENTATIONS: tuple[Implementation, ...] = ("metarl-default", "metarl-other", "metarl-eager", "higher", "torchopt")
REFERENCE: Implementation = "metarl-default"


@dataclass
class Args:
    """Time one MAML meta-step (forward, inner loop, meta-gradient, Adam) of metarl, higher and torchopt."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA when available), cpu or cuda."""
    repeats: int = 10
    """Timed rounds; each round runs every implementation once, in turn (round-robin)."""
    warmup: int = 2
    """Untimed meta-steps of each implementation before the timed rounds of a configuration."""
    meta_batch_size: int = 32
    """Tasks per meta-step."""
    inner_steps: tuple[int, ...] = (1, 5)
    """Numbers of inner (adaptation) steps to time."""
    orders: tuple[Order, ...] = ("second", "first")
    """Second-order MAML and/or first-order MAML."""
    implementations: tuple[Implementation, ...] = IMPLEMENTATIONS
    """Which implementations to time; higher and torchopt are skipped with a note when not importable, and
    metarl-eager off CUDA."""
    ways: int = 5
    """Classes per task (N-way)."""
    shots: int = 1
    """Support images per class (K-shot)."""
    queries: int = 15
    """Query images per class."""
    hidden: int = 64
    """Conv4 filters per layer."""
    image_size: int = 28
    """Side of the square 1-channel images."""
    inner_lr: float = 0.4
    """Inner SGD step size."""
    meta_lr: float = 1e-3
    """Adam step size of the meta-update."""
    seed: int = 0
    """Seeds the model initialisation and the synthetic images."""
    threads: int | None = None
    """CPU threads for torch (torch.set_num_threads); default: torch's own choice."""
    task_threads: int = 0
    """metarl's task threads on the per-task path on a CPU (MAMLConfig.task_threads; 0: its default)."""
    check_gradients: bool = True
    """Check that the meta-gradients of all implementations agree on the first configuration."""
    out: Path = Path("runs/bench_maml.json")
    """Where the JSON results go."""

    def __post_init__(self) -> None:
        for name in ("repeats", "meta_batch_size", "ways", "shots", "queries", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be a positive integer, got {self.threads}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if not self.inner_steps or any(k < 1 for k in self.inner_steps):
            raise ValueError(f"--inner-steps must be positive integers, got {self.inner_steps}")
        if not self.orders or not self.implementations:
            raise ValueError("--orders and --implementations must not be empty")


# --- the implementations ------------------------------------------------------------------------
class Stepper:
    """One implementation of the meta-step on its own copy of the model, with its own Adam."""

    def __init__(self, model: nn.Module, steps: int, first_order: bool, inner_lr: float, meta_lr: float):
        self.model = model
        self.steps = steps
        self.first_order = first_order
        self.inner_lr = inner_lr
        self.meta_optimizer = torch.optim.Adam(model.parameters(), lr=meta_lr)
        self.details: dict[str, Any] = {}
        self.untimed_steps = 0  # steps before the --warmup ones that a stepper needs to reach its steady state

    def meta_backward(self, episode: Episode) -> None:
        """Accumulate the meta-gradient of the mean query loss into the model's ``.grad``."""
        raise NotImplementedError

    def step(self, episode: Episode) -> None:
        self.meta_optimizer.zero_grad(set_to_none=True)
        self.meta_backward(episode)
        self.meta_optimizer.step()


class MetarlStepper(Stepper):
    def __init__(self, model, steps, first_order, inner_lr, meta_lr, path: str, device: torch.device,
                 cuda_graph: str = "auto", task_threads: int = 0):
        config = MAMLConfig(inner_lr=inner_lr, inner_steps=steps, first_order=first_order, meta_lr=meta_lr, path=path,
                            cuda_graph=cuda_graph, task_threads=task_threads)
        self.maml = MAML(model, "cross_entropy", config, device=device)
        self.model = self.maml.model
        self.meta_optimizer = self.maml.optimizer
        self.details = {"path": "batched" if self.maml.batched else "per_task", "cuda_graph": self.maml.graphed,
                        "task_threads": self.maml.tasks.threads}
        self.untimed_steps = WARMUP_CALLS + 1 if self.maml.graphed else 0  # the eager steps and the recording

    def meta_backward(self, episode: Episode) -> None:
        self.maml.meta_backward(episode)

    def step(self, episode: Episode) -> None:
        self.maml.meta_train_step(episode)


class HigherStepper(Stepper):
    def __init__(self, model, steps, first_order, inner_lr, meta_lr):
        import higher

        super().__init__(model, steps, first_order, inner_lr, meta_lr)
        self.higher = higher
        self.inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)

    def meta_backward(self, episode: Episode) -> None:
        sx, sy, qx, qy = episode.tensors()
        n = episode.num_tasks
        params = list(self.model.parameters())
        for i in range(n):
            with self.higher.innerloop_ctx(
                self.model, self.inner_optimizer, copy_initial_weights=False, track_higher_grads=not self.first_order
            ) as (fmodel, diffopt):
                for _ in range(self.steps):
                    diffopt.step(F.cross_entropy(fmodel(sx[i]), sy[i]))
                query_loss = F.cross_entropy(fmodel(qx[i]), qy[i]) / n
                if not self.first_order:
                    query_loss.backward()
                else:  # the fast weights are detached leaves: first-order MAML's gradient is theirs
                    for p, g in zip(params, torch.autograd.grad(query_loss, list(fmodel.parameters()))):
                        p.grad = g if p.grad is None else p.grad + g


def _first_order_meta_sgd() -> type:
    import torchopt
    from torchopt import pytree
    from torchopt.base import UninitializedState

    class FirstOrderMetaSGD(torchopt.MetaSGD):
        """``torchopt.MetaSGD`` whose inner gradients are constants (first-order MAML).

        The same as ``MetaOptimizer.step`` in torchopt 0.7.3 but with ``create_graph=False``: the new
        parameters still depend on the old ones through the update, not through the gradient.
        """

        def step(self, loss: torch.Tensor) -> None:
            for i, (container, state) in enumerate(zip(self.param_containers_groups, self.state_groups)):
                flat_params, treespec = pytree.tree_flatten_as_tuple(container)
                if isinstance(state, UninitializedState):
                    state = self.impl.init(flat_params)
                grads = torch.autograd.grad(loss, flat_params, allow_unused=True)
                updates, self.state_groups[i] = self.impl.update(grads, state, params=flat_params, inplace=False)
                new_params = pytree.tree_unflatten(
                    treespec, torchopt.apply_updates(flat_params, updates, inplace=False)
                )
                for target, new in zip(container, new_params):
                    target.update(new)

    return FirstOrderMetaSGD


class TorchoptStepper(Stepper):
    def __init__(self, model, steps, first_order, inner_lr, meta_lr):
        import torchopt

        super().__init__(model, steps, first_order, inner_lr, meta_lr)
        self.torchopt = torchopt
        optimizer_class = _first_order_meta_sgd() if first_order else torchopt.MetaSGD
        self.inner_optimizer = optimizer_class(model, lr=inner_lr)

    def meta_backward(self, episode: Episode) -> None:
        torchopt = self.torchopt
        sx, sy, qx, qy = episode.tensors()
        n = episode.num_tasks
        model_state = torchopt.extract_state_dict(self.model, by="reference", detach_buffers=True)
        optimizer_state = torchopt.extract_state_dict(self.inner_optimizer)
        try:
            for i in range(n):
                for _ in range(self.steps):
                    self.inner_optimizer.step(F.cross_entropy(self.model(sx[i]), sy[i]))
                (F.cross_entropy(self.model(qx[i]), qy[i]) / n).backward()
                torchopt.recover_state_dict(self.model, model_state)
                torchopt.recover_state_dict(self.inner_optimizer, optimizer_state)
        finally:  # never leave the model holding non-leaf fast weights
            torchopt.recover_state_dict(self.model, model_state)
            torchopt.recover_state_dict(self.inner_optimizer, optimizer_state)


def make_stepper(
    name: Implementation, model: nn.Module, steps: int, first_order: bool, args: Args, device: torch.device
) -> Stepper:
    model = copy.deepcopy(model)
    if name.startswith("metarl"):
        batched = choose_batched(model, device) != (name == "metarl-other")  # other: the path auto does not pick
        per_task_on_cpu = not batched and device.type == "cpu"  # where task threads apply
        return MetarlStepper(model, steps, first_order, args.inner_lr, args.meta_lr,
                             "batched" if batched else "per_task", device,
                             cuda_graph="off" if name == "metarl-eager" else "auto",
                             task_threads=args.task_threads if per_task_on_cpu else 0)
    if name == "higher":
        return HigherStepper(model, steps, first_order, args.inner_lr, args.meta_lr)
    return TorchoptStepper(model, steps, first_order, args.inner_lr, args.meta_lr)


# --- benchmark ------------------------------------------------------------------------------------
def synthetic_episode(args: Args, device: torch.device) -> Episode:
    """Random images and balanced labels in the shapes of Omniglot N-way K-shot episodes."""
    g = torch.Generator().manual_seed(args.seed)
    tasks, side = args.meta_batch_size, args.image_size
    support_x = torch.rand(tasks, args.ways * args.shots, 1, side, side, generator=g)
    query_x = torch.rand(tasks, args.ways * args.queries, 1, side, side, generator=g)
    support_y = torch.arange(args.ways).repeat_interleave(args.shots).expand(tasks, -1).contiguous()
    query_y = torch.arange(args.ways).repeat_interleave(args.queries).expand(tasks, -1).contiguous()
    return Episode(support_x, support_y, query_x, query_y).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor()
    if not name or name in ("x86_64", "aarch64", "arm64"):
        try:
            with open("/proc/cpuinfo") as f:
                name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
        except OSError:
            pass
    return f"{name or platform.machine()} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"


def available(names: tuple[Implementation, ...], device: torch.device) -> tuple[list[Implementation], dict[str, str]]:
    """The implementations worth running here (a peer whose package imports; metarl-eager on CUDA only), and a
    note for each one skipped."""
    kept: list[Implementation] = []
    skipped: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name == "metarl-eager" and device.type != "cuda":
            skipped[name] = f"off CUDA the default is eager already, this run is on {device.type}"
            print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
            continue
        if name in ("higher", "torchopt"):
            try:
                __import__(name)
            except Exception as error:  # noqa: BLE001 - any import failure means "skip this peer"
                skipped[name] = f"not importable: {type(error).__name__}: {error}"
                print(f"skipping {name}: {skipped[name]}", file=sys.stderr)
                continue
        kept.append(name)
    return kept, skipped


def error_string(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """Full float32 precision for cuDNN convolutions and CUDA matmuls inside the block."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_gradients(
    steppers: dict[str, Stepper], episode: Episode, errors: dict[str, str], label: str
) -> dict[str, Any]:
    """Compare every implementation's meta-gradient with metarl-default's; raise if they disagree.

    Called before any Adam step, so all models still hold the same initial weights. On CUDA, TF32
    is switched off for the check: cuDNN's TF32 convolutions put every implementation ~1e-2 away from
    exact, which would hide a real disagreement (the timed steps keep torch's defaults).
    """
    grads: dict[str, list[torch.Tensor]] = {}
    for name, stepper in steppers.items():
        stepper.meta_optimizer.zero_grad(set_to_none=True)
        try:
            with tf32_disabled():
                stepper.meta_backward(episode)
        except Exception as error:
            if name.startswith("metarl"):
                raise
            errors[name] = error_string(error)
            traceback.print_exc()
            continue
        grads[name] = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in stepper.model.parameters()
        ]
        stepper.meta_optimizer.zero_grad(set_to_none=True)
    reference = grads[REFERENCE]
    if sum(float(g.abs().sum()) for g in reference) == 0:
        raise AssertionError(f"{label}: metarl-default's meta-gradient is zero; the check would be meaningless")
    scale = max(float(g.abs().max()) for g in reference)
    max_abs_diff = {}
    for name, other in grads.items():
        if name == REFERENCE:
            continue
        max_abs_diff[name] = max(float((a - b).abs().max()) for a, b in zip(reference, other))
        for (param, _), a, b in zip(steppers[REFERENCE].model.named_parameters(), reference, other):
            # float32 with transductive batch norm over 5 support images amplifies rounding, so the
            # tolerance follows the gradient's scale (exactness is tested in float64 in the test suite)
            torch.testing.assert_close(
                b, a, rtol=1e-3, atol=1e-3 * scale,
                msg=lambda m, param=param, name=name: f"{label}: meta-gradient of {param}, {name} vs {REFERENCE}: {m}",
            )
    print(f"gradients agree ({label}; max |difference| vs {REFERENCE}: "
          + ", ".join(f"{k} {v:.2e}" for k, v in max_abs_diff.items()) + ")")
    return {"config": label, "compared": sorted(grads), "max_abs_diff": max_abs_diff, "rtol": 1e-3, "atol": 1e-3 * scale}


def run(args: Args) -> dict[str, Any]:
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise SystemExit(f"bench_maml: {error}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names, skipped = available(args.implementations, device)
    torch.manual_seed(args.seed)
    model = Conv4(1, args.ways, hidden=args.hidden, image_size=args.image_size).to(device)
    episode = synthetic_episode(args, device)

    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}  # peers that failed: no more attempts
    gradient_check: dict[str, Any] | None = None
    started = time.perf_counter()

    def report(complete: bool, in_progress: list[dict[str, Any]] = ()) -> dict[str, Any]:
        """The JSON report; ``in_progress`` are the rows of an unfinished configuration (``"partial": true``)."""
        rows = [*results, *in_progress]
        ratios: dict[str, dict[str, float]] = {}
        for row in rows:
            key = f"{row['order']}/{row['inner_steps']}"
            reference = next((r for r in rows if f"{r['order']}/{r['inner_steps']}" == key
                              and r["implementation"] == REFERENCE and "median_ms" in r), None)
            if reference is not None and "median_ms" in row and row["implementation"] != REFERENCE:
                ratios.setdefault(key, {})[row["implementation"]] = row["median_ms"] / reference["median_ms"]
        return {
            "device": device_name(device),
            "device_type": device.type,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "peers": {name: _version(name) for name in ("higher", "torchopt") if name in names},
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda" else None,
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "complete": complete,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_s": time.perf_counter() - started,
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()},
            "ratio_definition": f"peer median_ms / {REFERENCE} median_ms (> 1: {REFERENCE} is faster)",
            "gradient_check": gradient_check,
            "skipped": skipped,
            "errors": errors,
            "results": rows,
            "ratios": ratios,
        }

    for order_index, order in enumerate(args.orders):
        for steps_index, steps in enumerate(args.inner_steps):
            label = f"{order}-order, {steps} inner step{'s' if steps > 1 else ''}"
            first_order = order == "first"
            steppers: dict[str, Stepper] = {}
            for name in names:
                if name in errors:
                    continue
                try:
                    steppers[name] = make_stepper(name, model, steps, first_order, args, device)
                except Exception as error:
                    if name.startswith("metarl"):
                        raise
                    errors[name] = error_string(error)
                    traceback.print_exc()
            if REFERENCE not in steppers:
                raise SystemExit("metarl-default must be among --implementations (it is the reference)")
            if args.check_gradients and order_index == 0 and steps_index == 0:
                gradient_check = check_gradients(steppers, episode, errors, label)
                steppers = {k: v for k, v in steppers.items() if k not in errors}

            def guarded(name: str) -> bool:
                """Run one step; a failing peer is recorded and dropped, a failing metarl raises."""
                try:
                    steppers[name].step(episode)
                    return True
                except Exception as error:
                    if name.startswith("metarl"):
                        raise
                    errors[name] = error_string(error)
                    traceback.print_exc()
                    del steppers[name]
                    return False

            for name in list(steppers):
                for _ in range(steppers[name].untimed_steps + args.warmup):
                    if not guarded(name):
                        break
            synchronize(device)
            times: dict[str, list[float]] = {name: [] for name in steppers}

            def rows_of(partial: bool) -> list[dict[str, Any]]:
                rows = []
                for name in names:
                    if name in steppers and times[name]:
                        rows.append({"order": order, "inner_steps": steps, "implementation": name,
                                     "median_ms": statistics.median(times[name]), "times_ms": times[name],
                                     **steppers[name].details, **({"partial": True} if partial else {})})
                    elif name in errors:
                        rows.append({"order": order, "inner_steps": steps, "implementation": name,
                                     "error": errors[name]})
                return rows

            for round_index in range(args.repeats):
                for name in list(steppers):
                    synchronize(device)
                    start = time.perf_counter()
                    if guarded(name):
                        synchronize(device)
                        times[name].append((time.perf_counter() - start) * 1e3)
                if round_index < args.repeats - 1:  # the rounds so far survive an interruption
                    write_json(report(complete=False, in_progress=rows_of(partial=True)), args.out)
            results.extend(rows_of(partial=False))
            for row in results[-len(names):]:
                if "median_ms" in row and (row["order"], row["inner_steps"]) == (order, steps):
                    print(f"  {label:28s} {row['implementation']:15s} {row['median_ms']:10.1f} ms", flush=True)
            write_json(report(complete=False), args.out)  # finished configurations survive an interruption
    return report(complete=True)


def _version(name: str) -> str:
    module = sys.modules.get(name)
    return str(getattr(module, "__version__", "unknown"))


def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['device']}, torch {report['torch']}, median of {report['settings']['repeats']} steps")
    print(f"{'config':12s} {'implementation':15s} {'path':9s} {'median ms':>10s} {'ratio':>7s}")
    for row in report["results"]:
        key = f"{row['order']}/{row['inner_steps']}"
        config = f"{row['order'][:3]}-order k={row['inner_steps']}"
        if "error" in row:
            print(f"{config:12s} {row['implementation']:15s} {'':9s} failed: {row['error'][:80]}")
            continue
        ratio = 1.0 if row["implementation"] == REFERENCE else report["ratios"][key][row["implementation"]]
        print(f"{config:12s} {row['implementation']:15s} {row.get('path', ''):9s} "
              f"{row['median_ms']:10.1f} {ratio:7.2f}")
    for name, note in report["skipped"].items():
        print(f"skipped {name}: {note}")
    print(f"ratio = {report['ratio_definition']}")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def main(args: Args) -> None:
    report = run(args)
    print_table(report)
    write_json(report, args.out)
    print(f"results: {args.out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main(tyro.cli(Args))
