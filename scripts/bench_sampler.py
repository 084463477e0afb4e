"""Environment steps per second of metarl's TrajectorySampler on the MuJoCo tasks, against the physics ceiling.

For each environment: ``tasks x episodes_per_task`` lanes sampled in lock-step by
:class:`metarl.rl.TrajectorySampler` (policy included: a ``GaussianMLPPolicy`` whose parameters are
stacked per task, one batched forward per step) with gymnasium's ``SyncVectorEnv``, with the environment's
own vector class where it has one (:mod:`envs.locomotion_vector`, on W cores; what MAML-TRPO
uses by default) and with :class:`metarl.rl.ShardedVectorEnv` on 1, 2, 4, ... W worker processes. Against:

- the **ceiling** of this machine: the same lanes stepped by ``mujoco.rollout`` on W threads, one rollout
  call of ``frame_skip`` physics steps per environment step, no gymnasium and no reward. Closed loop, the
  same policy runs between the calls on ``--policy-device`` (the paper-size figures of issue 6 were
  taken this way); open loop, the controls are drawn in advance;
- the raw rate of ``mujoco.mj_step`` on one core, divided by ``frame_skip``.

The ceiling and the samplers are timed in rounds of one pass each (``--repeats``), medians reported; "by round"
is the median of each round's sampler / ceiling ratio, the figure least disturbed by a machine whose speed drifts
(the 2-core VM's closed-loop ceiling has measured 165,000 to 275,000 env steps/s within minutes).

    PYTHONPATH=. python scripts/bench_sampler.py                       # the paper's 40 tasks x 20 episodes
    PYTHONPATH=. python scripts/bench_sampler.py --tasks 4 --episodes-per-task 5 --horizon 100 --max-workers 2

Env steps counted are those of the episodes (an Ant lane whose episode ended early stops counting);
``lane_steps_per_s`` counts every lane at every step, the work the vector environment really did.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import gymnasium
import mujoco
import numpy as np
import torch
import tyro

from metarl.functional import parameters_of
from metarl.models import GaussianMLPPolicy
from metarl.rl.parallel import ShardedVectorEnv
from metarl.rl.sampler import TrajectorySampler, stack_params


@dataclass
class Args:
    """Time metarl's TrajectorySampler with sync and sharded vector environments, and raw mujoco.mj_step."""

    env_ids: tuple[str, ...] = ("envs:metarl/HalfCheetahVel-v0", "envs:metarl/AntVel-v0")
    """gymnasium ids of MuJoCo task environments, with the module prefix that registers them."""
    tasks: int = 40
    """N: tasks sampled side by side (the paper's meta-batch for the locomotion tasks)."""
    episodes_per_task: int = 20
    """M: episodes per task; the vector environment has N x M lanes."""
    horizon: int = 200
    """Steps per episode."""
    max_workers: int | None = None
    """W: ShardedVectorEnv is timed with 1, 2, 4, ... W workers (at most N x M), and the ceiling uses W
    threads; default: the CPU count."""
    workers: tuple[int, ...] = ()
    """Worker counts to time ShardedVectorEnv with, instead of 1, 2, 4, ... W (each at most N x M)."""
    samplers: tuple[Literal["sync", "native", "sharded"], ...] = ("sync", "native", "sharded")
    """Which samplers to time against the ceiling (a short GPU lease may skip the slow sync rows)."""
    policy_device: str = "cpu"
    """Device of the policy, in the closed-loop ceiling and in every sampler (cuda on a GPU machine, where
    MAML-TRPO's sampler runs its policy on the GPU too)."""
    repeats: int = 3
    """Timed rounds; each times one pass of the ceiling (closed and open loop) and one sample of every sampler,
    so that a machine whose speed drifts slows them alike. Medians over the rounds are reported."""
    warmup: int = 1
    """Untimed rounds first (the environments are built before these)."""
    mj_steps: int = 20_000
    """mujoco.mj_step calls timed for the raw rate of each model."""
    hidden: tuple[int, ...] = (100, 100)
    """Hidden layers of the Gaussian MLP policy (the paper's 100-100)."""
    threads: int = 1
    """torch threads of this process, which runs the policy."""
    seed: int = 0
    """Seeds the tasks, the policy, the resets and the action noise."""
    out: Path = Path("runs/bench_sampler.json")
    """Where the JSON results go."""

    def __post_init__(self) -> None:
        for name in ("tasks", "episodes_per_task", "horizon", "repeats", "mj_steps", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}")
        if any(w < 1 for w in self.workers):
            raise ValueError(f"--workers must be positive integers, got {list(self.workers)}")
        if self.max_workers is not None and self.max_workers < 1:
            raise ValueError(f"--max-workers must be a positive integer, got {self.max_workers}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if not self.samplers:
            raise ValueError("--samplers must name at least one of sync, native, sharded")
        if not self.env_ids:
            raise ValueError("--env-ids must name at least one environment")


def mj_step_rate(model: mujoco.MjModel, steps: int, frame_skip: int, rng: np.random.Generator) -> float:
    """``mujoco.mj_step`` calls per second on ``model`` from its initial state, with a new random control
    in the actuators' range every ``frame_skip`` calls (as an environment step would set it)."""
    data = mujoco.MjData(model)
    low, high = model.actuator_ctrlrange.T
    controls = rng.uniform(low, high, size=(steps // frame_skip + 1, model.nu))
    mujoco.mj_forward(model, data)
    started = time.perf_counter()
    for i in range(steps):
        if i % frame_skip == 0:
            data.ctrl[:] = controls[i // frame_skip]
        mujoco.mj_step(model, data)
    return steps / (time.perf_counter() - started)


def worker_counts(max_workers: int) -> list[int]:
    """1, 2, 4, ... up to ``max_workers``, which is always included."""
    counts = [1]
    while counts[-1] * 2 < max_workers:
        counts.append(counts[-1] * 2)
    return counts + [max_workers] if max_workers > 1 else counts


class RolloutCeiling:
    """``lanes`` copies of ``model`` stepped in lock-step by ``mujoco.rollout`` on ``threads`` threads, one call of
    ``frame_skip`` physics steps per environment step, from the model's initial state: closed loop with
    ``policy`` (its observation is the first entries of ``[qpos, qvel]``, padded with zeros), open loop with
    uniform controls drawn in advance. :meth:`env_steps_per_s` times one pass of ``horizon`` steps."""

    def __init__(self, model: mujoco.MjModel, frame_skip: int, lanes: int, horizon: int, threads: int,
                 policy: GaussianMLPPolicy, device: torch.device, rng: np.random.Generator) -> None:
        from mujoco import rollout

        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        state = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, state, spec)
        self.model, self.frame_skip, self.lanes, self.horizon = model, frame_skip, lanes, horizon
        self.policy, self.device = policy.to(device), device
        self.initial = np.tile(state, (lanes, 1))
        self.datas = [mujoco.MjData(model) for _ in range(threads)]
        self.low, self.high = model.actuator_ctrlrange.T
        self.physics = slice(1, 1 + model.nq + model.nv)  # FULLPHYSICS starts with time, then qpos and qvel
        self.obs_dim = policy.mean[0].in_features
        self.open_loop = rng.uniform(self.low, self.high, size=(horizon, lanes, model.nu))
        self.pool = rollout.Rollout(nthread=threads)

    def close(self) -> None:
        self.pool.close()

    @torch.no_grad()
    def env_steps_per_s(self, closed_loop: bool) -> float:
        states = self.initial
        started = time.perf_counter()
        for t in range(self.horizon):
            if closed_loop:
                physical = torch.from_numpy(states[:, self.physics]).to(self.device, torch.float32)
                obs = torch.nn.functional.pad(physical, (0, max(0, self.obs_dim - physical.shape[1])))[:, :self.obs_dim]
                mean, log_std = self.policy(obs)
                actions = (mean + log_std.exp() * torch.randn_like(mean)).cpu().numpy().clip(self.low, self.high)
            else:
                actions = self.open_loop[t]
            control = np.repeat(actions[:, None, :], self.frame_skip, axis=1)
            trajectory, _ = self.pool.rollout(self.model, self.datas, states, control, nstep=self.frame_skip)
            states = trajectory[:, -1]
        return self.lanes * self.horizon / (time.perf_counter() - started)


def bench_env(args: Args, env_id: str, max_workers: int) -> dict[str, Any]:
    probe = gymnasium.make(env_id)
    task_env = probe.unwrapped
    if not isinstance(getattr(task_env, "model", None), mujoco.MjModel):
        raise SystemExit(f"bench_sampler: {env_id} is not a MuJoCo environment (no MjModel), nothing to compare with")
    frame_skip = int(task_env.frame_skip)
    rng = np.random.default_rng(args.seed)
    raw = mj_step_rate(task_env.model, args.mj_steps, frame_skip, rng)
    tasks = task_env.sample_tasks(args.tasks, rng)
    torch.manual_seed(args.seed)
    policy = GaussianMLPPolicy(probe.observation_space.shape[0], probe.action_space.shape[0], args.hidden)
    params = stack_params(parameters_of(policy), args.tasks)
    probe.close()
    lanes = args.tasks * args.episodes_per_task
    makers: list[tuple[str, int | None, Any]] = [
        ("sync", None, lambda n: gymnasium.make_vec(env_id, num_envs=n, vectorization_mode="sync"))
    ]
    if gymnasium.spec(env_id.split(":")[-1]).vector_entry_point is not None:  # the environment's own vector class
        makers.append(("native", max_workers, lambda n: gymnasium.make_vec(
            env_id, num_envs=n, vectorization_mode="vector_entry_point", workers=min(max_workers, n))))
    makers += [
        ("sharded", w, lambda n, w=w: ShardedVectorEnv(env_id, n, w))
        for w in sorted({min(w, lanes) for w in args.workers or worker_counts(max_workers)})
    ]
    makers = [maker for maker in makers if maker[0] in args.samplers]
    threads = min(max_workers, lanes)
    ceiling = RolloutCeiling(task_env.model, frame_skip, lanes, args.horizon, threads, policy,
                             torch.device(args.policy_device), rng)
    policy = policy.to(args.policy_device)
    samplers: list[TrajectorySampler] = []
    runs: list[dict[str, Any]] = []
    closed, open_loop = [], []
    try:
        for vectorization, workers, make in makers:
            samplers.append(TrajectorySampler(make, policy, args.episodes_per_task, args.horizon, args.policy_device))
            built = time.perf_counter()
            samplers[-1].env(lanes)
            runs.append({"vectorization": vectorization, "workers": workers, "build_s": time.perf_counter() - built,
                         "seconds": [], "env_steps": [], "lane_steps": []})
        # untimed first passes: threads and workers start, the policy's kernels load
        for i in range(args.warmup):
            ceiling.env_steps_per_s(closed_loop=True)
            ceiling.env_steps_per_s(closed_loop=False)
            for sampler in samplers:
                sampler.sample(params, tasks, seed=args.seed + i)
        # then rounds of one timed pass each, so that a machine whose speed drifts slows them all alike
        for i in range(args.repeats):
            closed.append(ceiling.env_steps_per_s(closed_loop=True))
            open_loop.append(ceiling.env_steps_per_s(closed_loop=False))
            for sampler, run in zip(samplers, runs):
                batch = sampler.sample(params, tasks, seed=args.seed + args.warmup + i)
                run["seconds"].append(batch.seconds)
                run["env_steps"].append(batch.env_steps)
                run["lane_steps"].append(batch.mask.shape[1] * lanes)
    finally:
        ceiling.close()
        for sampler in samplers:
            sampler.close()
    ceiling_figures = {"threads": threads, "policy_device": args.policy_device,
                       "closed_loop_env_steps_per_s": statistics.median(closed),
                       "open_loop_env_steps_per_s": statistics.median(open_loop), "closed_loop_rounds": closed}
    print(f"  {env_id:32s} ceiling  {threads:>7} {ceiling_figures['closed_loop_env_steps_per_s']:12,.0f} env steps/s "
          f"(closed loop; open loop {ceiling_figures['open_loop_env_steps_per_s']:,.0f})", flush=True)
    for run in runs:
        seconds = run["seconds"]
        run["env_steps_per_s"] = statistics.median(s / t for s, t in zip(run["env_steps"], seconds))
        run["lane_steps_per_s"] = statistics.median(s / t for s, t in zip(run.pop("lane_steps"), seconds))
        run["fraction_of_one_core_bound"] = run["env_steps_per_s"] / (raw / frame_skip)
        run["fraction_of_ceiling"] = run["env_steps_per_s"] / ceiling_figures["closed_loop_env_steps_per_s"]
        # against the same round's ceiling pass: the ratio that a drifting machine disturbs least
        run["fraction_of_ceiling_by_round"] = [e / t / c for e, t, c in zip(run["env_steps"], seconds, closed)]
        print(f"  {env_id:32s} {run['vectorization']:8s} {run['workers'] or '':>7} {run['env_steps_per_s']:12,.0f} "
              f"env steps/s", flush=True)
    return {
        "env_id": env_id,
        "frame_skip": frame_skip,
        "dt": float(task_env.model.opt.timestep * frame_skip),
        "lanes": lanes,
        "mj_step_per_s": raw,
        "env_steps_per_s_bound_one_core": raw / frame_skip,
        "ceiling": ceiling_figures,
        "runs": runs,
    }


def run(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    max_workers = args.max_workers or os.cpu_count() or 1
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = [bench_env(args, env_id, max_workers) for env_id in args.env_ids]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": {name: version(name) for name in ("torch", "gymnasium", "mujoco", "numpy")},
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_s": time.perf_counter() - started,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(args).items()},
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(f"\n{settings['tasks']} tasks x {settings['episodes_per_task']} episodes, horizon {settings['horizon']}, "
          f"median of {settings['repeats']}; {report['cpu_count']} CPUs, load average "
          f"{report['load_average_before'][0]:.1f} before, {report['load_average_after'][0]:.1f} after")
    print(f"{'environment':32s} {'sampler':8s} {'workers':>7s} {'env steps/s':>12s} {'of 1-core bound':>16s} "
          f"{'of ceiling':>11s} {'by round':>9s}")
    for result in report["results"]:
        ceiling = result["ceiling"]
        print(f"{result['env_id']:32s} {'mj_step':8s} {'':>7s} {result['mj_step_per_s']:12,.0f}   "
              f"(raw mj_step/s; frame_skip {result['frame_skip']}, dt {result['dt']:g} s)")
        print(f"{'':32s} {'bound':8s} {'':>7s} {result['env_steps_per_s_bound_one_core']:12,.0f} {1:16.0%}")
        print(f"{'':32s} {'ceiling':8s} {ceiling['threads']:>7} {ceiling['closed_loop_env_steps_per_s']:12,.0f} "
              f"{'':16s} {1:11.0%}  (mujoco.rollout, policy on {ceiling['policy_device']}; open loop "
              f"{ceiling['open_loop_env_steps_per_s']:,.0f})")
        for run in result["runs"]:
            print(f"{'':32s} {run['vectorization']:8s} {run['workers'] or '':>7} {run['env_steps_per_s']:12,.0f} "
                  f"{run['fraction_of_one_core_bound']:16.0%} {run['fraction_of_ceiling']:11.0%} "
                  f"{statistics.median(run['fraction_of_ceiling_by_round']):9.0%}")

def main(args: Args) -> None:
    report = run(args)
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {args.out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main(tyro.cli(Args))
