"""MAML-TRPO's pieces: conjugate gradient, line search, returns and baselines, the meta-gradient."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from torch.nn.utils import parameters_to_vector

from metarl.functional import parameters_of
from metarl.models import GaussianMLPPolicy
from metarl.rl import MAMLTRPO, MAMLTRPOConfig, RLBatch, TaskInObservation, TrajectorySampler, task_features
from metarl.rl.gaussian import kl_divergence, log_prob
from metarl.rl.returns import discounted_returns, gae, linear_baseline, normalize
from metarl.rl.sampler import Trajectories, action_affine, policy_per_task
from metarl.rl.trpo import backtracking_line_search, conjugate_gradient
from metarl.task_threads import threads_are_per_thread
from metarl.tasks import Task

NAVIGATION = "envs:metarl/Navigation2D-v0"


def test_conjugate_gradient_matches_a_direct_solve():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    matrix = root @ root.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    solution = conjugate_gradient(lambda v: matrix @ v, b, iterations=6)
    torch.testing.assert_close(solution, torch.linalg.solve(matrix, b), rtol=1e-8, atol=1e-8)


def test_line_search_takes_the_longest_step_inside_the_bound():
    # loss falls along the step; KL grows quadratically and exceeds 0.01 beyond fraction 0.5
    evaluate = lambda p: (float(-p.sum()), float(0.04 * p.sum() ** 2))
    params, result = backtracking_line_search(evaluate, torch.zeros(1), torch.ones(1), old_loss=0.0,
                                              max_kl=0.01, max_steps=10, ratio=0.8)
    assert result.accepted and result.fraction == pytest.approx(0.8**4)  # 0.41: first fraction <= 0.5
    assert result.kl <= 0.01 and params.item() == pytest.approx(0.8**4)


def test_line_search_keeps_the_old_parameters_when_nothing_improves():
    params, result = backtracking_line_search(lambda p: (float(p.sum()), 0.0), torch.zeros(2), torch.ones(2),
                                              old_loss=0.0, max_kl=0.01, max_steps=5)
    assert not result.accepted and torch.equal(params, torch.zeros(2))


def test_returns_and_advantages_match_hand_computed_values():
    # one task, two episodes: the second ends after two steps
    rewards = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 5.0]]])   # [task, time, episode]
    mask = torch.tensor([[[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]])
    returns = discounted_returns(rewards, mask, gamma=0.5)
    expected = torch.tensor([[[1 + 0.5 * 2 + 0.25 * 3, 1 + 0.5 * 2], [2 + 0.5 * 3, 2.0], [3.0, 0.0]]])
    torch.testing.assert_close(returns, expected)
    values = torch.tensor([[[0.5, 1.0], [1.0, 0.0], [2.0, 0.0]]]) * mask
    torch.testing.assert_close(gae(rewards, values, mask, gamma=0.5, lam=1.0), (returns - values) * mask)
    # lam = 0: one-step TD errors r_t + gamma V_{t+1} - V_t, with V = 0 after the end
    td = torch.tensor([[[1 + 0.5 * 1.0 - 0.5, 1 + 0.0 - 1.0], [2 + 0.5 * 2.0 - 1.0, 2 - 0.0], [3 - 2.0, 0.0]]])
    torch.testing.assert_close(gae(rewards, values, mask, gamma=0.5, lam=0.0), td)
    normalized = normalize(returns, mask)
    assert normalized[mask.bool()].mean().abs() < 1e-6 and normalized[~mask.bool()].abs().sum() == 0
    assert normalized[mask.bool()].std(unbiased=False) == pytest.approx(1.0, abs=1e-5)


def test_returns_advantages_and_baseline_do_not_cross_the_start_of_an_episode():
    # one lane: an episode of two steps, the step the environment restarts on (masked), an episode of two
    rewards = torch.tensor([[[1.0], [2.0], [9.0], [3.0], [4.0]]])
    mask = torch.tensor([[[1.0], [1.0], [0.0], [1.0], [1.0]]])
    returns = discounted_returns(rewards, mask, 0.5)
    torch.testing.assert_close(returns, torch.tensor([[[2.0], [2.0], [0.0], [5.0], [4.0]]]))
    values = torch.tensor([[[1.0], [0.5], [0.0], [2.0], [1.0]]])
    td = torch.tensor([[[1 + 0.5 * 0.5 - 1.0], [2 - 0.5], [0.0], [3 + 0.5 * 1.0 - 2.0], [4 - 1.0]]])
    torch.testing.assert_close(gae(rewards, values, mask, 0.5, 0.0), td)
    torch.testing.assert_close(gae(rewards, values, mask, 0.5, 1.0), (returns - values) * mask)
    # two episodes of eight steps in one lane, and the same two laid out one per lane: the same returns and
    # the same baseline (its time feature counts from each episode's start)
    generator = torch.Generator().manual_seed(3)
    observations = torch.randn(1, 17, 1, 1, generator=generator, dtype=torch.float64)
    rewards = torch.randn(1, 17, 1, generator=generator, dtype=torch.float64)
    mask = torch.ones(1, 17, 1, dtype=torch.float64)
    mask[0, 8] = 0
    timesteps = torch.cat([torch.arange(8), torch.zeros(1, dtype=torch.long), torch.arange(8)]).view(1, 17, 1)
    returns = discounted_returns(rewards, mask, 0.9)
    lanes = lambda x: torch.stack([x[:, :8], x[:, 9:]], dim=2).squeeze(3)
    torch.testing.assert_close(lanes(returns), discounted_returns(lanes(rewards), lanes(mask), 0.9))
    fitted = linear_baseline(observations, returns, mask, timesteps=timesteps)
    torch.testing.assert_close(lanes(fitted), linear_baseline(lanes(observations), lanes(returns), lanes(mask)))


def test_linear_baseline_fits_returns_that_are_linear_in_its_features():
    generator = torch.Generator().manual_seed(1)
    observations = torch.randn(2, 7, 3, 2, generator=generator, dtype=torch.float64)  # [tasks, T, E, obs]
    mask = torch.ones(2, 7, 3, dtype=torch.float64)
    mask[0, 5:, 1] = 0
    time = torch.arange(7, dtype=torch.float64).view(1, 7, 1) / 100
    returns = (2 * observations[..., 0] - observations[..., 1] ** 2 + 3 * time + 1) * mask
    fitted = linear_baseline(observations, returns, mask, reg=1e-12)  # (the default ridge shrinks the tiny t^3 terms)
    torch.testing.assert_close(fitted, returns, rtol=1e-6, atol=1e-6)


def test_gaussian_log_prob_and_kl_match_torch_distributions():
    mean, log_std, action = torch.randn(4, 3), torch.randn(4, 3) * 0.3, torch.randn(4, 3)
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(log_prob(mean, log_std, action), normal.log_prob(action).sum(-1))
    other = torch.distributions.Normal(mean + 0.5, (log_std - 0.2).exp())
    torch.testing.assert_close(kl_divergence(mean, log_std, mean + 0.5, log_std - 0.2),
                               torch.distributions.kl_divergence(normal, other).sum(-1))


def make_learner(path: str, first_order: bool = False, tasks: int = 3, episodes: int = 4, horizon: int = 12,
                 threads: int = 0):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(16, 16)).double()
    sampler = TrajectorySampler(lambda n: gymnasium.make_vec(NAVIGATION, num_envs=n), policy, episodes, horizon)
    learner = MAMLTRPO(policy, sampler, MAMLTRPOConfig(path=path, first_order=first_order, episodes_per_task=episodes,
                                                       task_threads=threads))
    distribution = gymnasium.make(NAVIGATION).unwrapped
    batch = RLBatch(distribution.sample_tasks(tasks, np.random.default_rng(3)), seed=11)
    return learner, batch


def reference_meta_gradient(learner: MAMLTRPO, objective, first_order: bool) -> list[torch.Tensor]:
    """The surrogate's gradient written per task with plain autograd (float64)."""
    params = parameters_of(learner.policy)
    names = list(params)
    inner = learner.policy_data(objective.inner_episodes[0])
    valid = learner.policy_data(objective.valid_episodes)
    total = 0.0
    for i in range(inner[0].shape[0]):
        loss = learner._inner_loss(params, tuple(t[i] for t in inner))
        grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=not first_order)
        adapted = {n: params[n] - learner.config.inner_lr * g for n, g in zip(names, grads)}
        observations, actions, advantages, mask = (t[i] for t in valid)
        mean, log_std = torch.func.functional_call(learner.policy, adapted, (observations,))
        new_log_prob = log_prob(mean, log_std, actions)
        ratio = (new_log_prob - new_log_prob.detach()).exp()   # pi_old is the adapted policy itself
        total = total + (-(ratio * advantages * mask).sum() / mask.sum())
    return list(torch.autograd.grad(total / inner[0].shape[0], [params[n] for n in names]))


@pytest.mark.parametrize("first_order", [False, True], ids=["second-order", "first-order"])
@pytest.mark.parametrize("path", ["batched", "per_task"])
def test_meta_gradient_equals_a_per_task_autograd_reference(path, first_order):
    learner, batch = make_learner(path, first_order)
    objective = learner.meta_objective(batch)
    loss, kl = objective.surrogate()
    assert kl.item() == pytest.approx(0.0, abs=1e-12)   # before the update, old and new policies agree
    ours = torch.autograd.grad(loss, list(objective.params.values()))
    reference = reference_meta_gradient(learner, objective, first_order)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert sum(g.abs().sum() for g in reference) > 0


def test_trpo_step_improves_the_surrogate_within_the_kl_bound():
    learner, batch = make_learner("per_task")
    objective = learner.meta_objective(batch)
    before, search = learner._trpo_step(objective)
    assert search.accepted
    with torch.no_grad():
        after, kl = objective.surrogate()
    assert after.item() < before
    assert 0 < kl.item() <= learner.config.max_kl


@pytest.mark.skipif(not threads_are_per_thread(), reason="task threads need torch's OpenMP backend")
def test_trpo_steps_of_both_paths_and_on_task_threads_are_the_same_step():
    """TRPO differentiates the per-task path task by task (on threads when there are several) and the batched
    path as one graph: the same gradient, Fisher-vector products, and so the same step."""
    stepped = []
    for path, threads in (("batched", 0), ("per_task", 1), ("per_task", 2)):
        learner, batch = make_learner(path, threads=threads)
        assert learner.tasks.threads == max(threads, 1)
        start = parameters_to_vector(learner.policy.parameters()).detach().clone()
        _, search = learner._trpo_step(learner.meta_objective(batch))
        assert search.accepted
        stepped.append(parameters_to_vector(learner.policy.parameters()).detach() - start)
    assert stepped[0].norm() > 0
    for other in stepped[1:]:
        torch.testing.assert_close(other, stepped[0], rtol=1e-8, atol=1e-12)


def test_sampling_is_reproducible_from_the_seed():
    learner, batch = make_learner("per_task")
    params = {k: v.detach().expand(3, *v.shape) for k, v in parameters_of(learner.policy).items()}
    first = learner.sampler.sample(params, batch.tasks, seed=5)
    second = learner.sampler.sample(params, batch.tasks, seed=5)
    other = learner.sampler.sample(params, batch.tasks, seed=6)
    assert torch.equal(first.actions, second.actions) and torch.equal(first.rewards, second.rewards)
    assert not torch.equal(first.actions, other.actions)
    assert first.observations.shape == (3, 12, 4, 2) and first.rewards.shape == (3, 12, 4)


@pytest.mark.parametrize("inner_steps", [0, 1])
def test_fisher_vector_products_agree_between_paths(inner_steps):
    products = []
    for path in ("batched", "per_task"):
        learner, batch = make_learner(path)
        learner.config.inner_steps = inner_steps
        objective = learner.meta_objective(batch)
        _, kl = objective.surrogate()
        leaves = list(objective.params.values())
        flat = torch.cat([g.reshape(-1) for g in torch.autograd.grad(kl, leaves, create_graph=True)])
        vector = torch.linspace(-1, 1, flat.numel(), dtype=flat.dtype)
        products.append(torch.cat([p.reshape(-1) for p in torch.autograd.grad(flat @ vector, leaves)]))
    assert products[0].norm() > 0
    torch.testing.assert_close(products[0], products[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("env_id", [NAVIGATION, "envs:metarl/AntVel-v0"])
def test_sampler_matches_single_envs_stepped_with_the_same_seeds_and_actions(env_id):
    probe = gymnasium.make(env_id)
    tasks = probe.unwrapped.sample_tasks(2, np.random.default_rng(0))
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(probe.observation_space.shape[0], probe.action_space.shape[0], hidden=(8,))
    make = lambda n: gymnasium.make_vec(env_id, num_envs=n, vectorization_mode="sync" if "Ant" in env_id else None)
    sampler = TrajectorySampler(make, policy, episodes_per_task=2, horizon=30)
    params = {k: v.detach().expand(2, *v.shape) for k, v in parameters_of(policy).items()}
    episodes = sampler.sample(params, tasks, seed=7)
    scale, center = action_affine(probe.action_space, torch.float32, torch.device("cpu"))
    for lane in range(4):
        task, episode = lane // 2, lane % 2
        env = gymnasium.make(env_id)
        observation, _ = env.reset(seed=7 + lane, options={"task": tasks[task]})
        for t in range(episodes.mask.shape[1]):
            assert episodes.mask[task, t, episode] == 1   # the single env is still running
            sampled = episodes.observations[task, t, episode].numpy()
            np.testing.assert_allclose(sampled, observation, rtol=1e-6, atol=1e-6)
            action = (episodes.actions[task, t, episode] * scale + center).numpy()   # policy in [-1, 1]
            observation, reward, terminated, truncated, _ = env.step(action)
            assert episodes.rewards[task, t, episode].item() == pytest.approx(reward, rel=1e-6, abs=1e-6)
            if terminated or truncated:
                assert t + 1 == episodes.mask.shape[1] or episodes.mask[task, t + 1, episode] == 0
                break


class RandomLengthEnv(gymnasium.Env):
    """Episodes that end at random (probability 0.15 per step, from the env's seed): the observation is the
    step count and the task, the reward the action plus the task."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,))
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,))

    def __init__(self) -> None:
        self.task, self._steps = 0.0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._steps = 0
        return np.array([0.0, self.task], dtype=np.float32), {}

    def step(self, action):
        self._steps += 1
        terminated = bool(self.np_random.random() < 0.15)
        return (np.array([self._steps, self.task], dtype=np.float32), float(action[0]) + self.task, terminated,
                False, {})


def random_length_lanes(n, autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP):
    return gymnasium.vector.SyncVectorEnv([RandomLengthEnv for _ in range(n)], autoreset_mode=autoreset_mode)


def sample_random_length(sampling: str, horizon: int = 12) -> Trajectories:
    """Two tasks of three lanes each from the same untrained policy and seed."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, hidden=(8,))
    sampler = TrajectorySampler(random_length_lanes, policy, episodes_per_task=3, horizon=horizon, sampling=sampling)
    params = {k: v.detach().expand(2, *v.shape) for k, v in parameters_of(policy).items()}
    return sampler.sample(params, [1.0, 2.0], seed=11)


def test_steps_sampling_fills_each_lane_with_whole_episodes_as_a_single_env_steps_them():
    horizon = 12
    episodes = sample_random_length("steps", horizon)
    ends_early = 0
    for lane in range(6):
        task, column = lane // 3, lane % 3
        mask, timesteps = episodes.mask[task, :, column], episodes.timesteps[task, :, column]
        env = RandomLengthEnv()
        env.task = [1.0, 2.0][task]
        observation, _ = env.reset(seed=11 + lane)
        steps, lengths, timestep, done = 0, [], 0, False
        for t in range(mask.shape[0]):
            if done and steps >= horizon:   # the lane is full: it stops after its last whole episode
                assert mask[t:].sum() == 0
                break
            if done:   # the environment restarts the lane on this step; nothing is recorded
                assert mask[t] == 0
                observation, _ = env.reset()
                timestep, done = 0, False
                continue
            assert mask[t] == 1 and timesteps[t] == timestep
            np.testing.assert_allclose(episodes.observations[task, t, column].numpy(), observation)
            observation, reward, terminated, _, _ = env.step(episodes.actions[task, t, column].numpy())
            assert episodes.rewards[task, t, column].item() == pytest.approx(reward)
            steps, timestep = steps + 1, timestep + 1
            done = terminated or timestep == horizon
            if done:
                lengths.append(timestep)
                ends_early += terminated and steps < horizon
        assert done and steps >= horizon and max(lengths) <= horizon and steps == sum(lengths) == int(mask.sum())
    assert ends_early >= 3   # (the seed makes episodes end early in several lanes)
    counts = episodes.episode_counts()
    assert (counts > 3).all()
    expected = (episodes.rewards * episodes.mask).sum(dim=(1, 2)) / counts
    torch.testing.assert_close(episodes.mean_returns(), expected)


def test_episodes_sampling_gives_each_lane_one_episode_and_steps_sampling_keeps_its_first():
    one = sample_random_length("episodes")
    many = sample_random_length("steps")
    assert (one.episode_counts() == 3).all() and (many.episode_counts() > 3).all()
    length = one.mask.shape[1]
    torch.testing.assert_close(many.actions[:, :length] * one.mask.unsqueeze(-1), one.actions * one.mask.unsqueeze(-1))
    assert torch.equal(many.mask[:, :length] * one.mask, one.mask)


def test_a_maml_trpo_step_on_lanes_of_several_episodes_improves_within_the_kl_bound():
    torch.manual_seed(0)
    config = MAMLTRPOConfig(episodes_per_task=3, hidden=(8,), sampling="steps")
    policy = GaussianMLPPolicy(2, 1, hidden=config.hidden)
    learner = MAMLTRPO(policy, TrajectorySampler(random_length_lanes, policy, 3, 12, sampling="steps"), config)
    result = learner.meta_train_step(RLBatch([1.0, 2.0, -1.0], seed=4))
    assert result["line_search_accepted"] == 1.0 and result["surrogate_improvement"] > 0
    assert 0 < result["kl"] <= config.max_kl and np.isfinite(result["return_after"])
    assert 1 <= result["episode_length_before"] < 12 and 1 <= result["episode_length_after"] < 12   # ended early


def test_a_share_of_a_meta_batch_samples_the_lanes_of_several_episodes_the_whole_batch_gives_it():
    # what torchrun's ranks rely on: a process that samples tasks 2-4 of 5 gets their lanes as sampled in the
    # whole batch, however long each lane runs
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, hidden=(8,))
    sampler = TrajectorySampler(random_length_lanes, policy, episodes_per_task=3, horizon=12, sampling="steps")
    params = {k: v.detach().expand(5, *v.shape) for k, v in parameters_of(policy).items()}
    tasks = [1.0, 2.0, -1.0, 0.5, 3.0]
    whole = sampler.sample(params, tasks, seed=2)
    share = sampler.sample({k: v[2:] for k, v in params.items()}, tasks[2:], seed=2, first_task=2, batch_size=5)
    steps = share.mask.shape[1]
    assert (share.episode_counts() > 3).all() and whole.mask[2:, steps:].sum() == 0
    for name in ("observations", "actions", "rewards", "mask", "timesteps"):
        assert torch.equal(getattr(share, name), getattr(whole, name)[2:, :steps]), name


def test_steps_sampling_refuses_an_env_that_restarts_lanes_in_the_same_step():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 1, hidden=(8,))
    same_step = lambda n: random_length_lanes(n, gymnasium.vector.AutoresetMode.SAME_STEP)
    sampler = TrajectorySampler(same_step, policy, episodes_per_task=2, horizon=5, sampling="steps")
    params = {k: v.detach().expand(1, *v.shape) for k, v in parameters_of(policy).items()}
    with pytest.raises(ValueError, match="NEXT_STEP"):
        sampler.sample(params, [1.0], seed=0)
    with pytest.raises(ValueError, match="sampling"):
        TrajectorySampler(same_step, policy, episodes_per_task=2, horizon=5, sampling="paths")
    with pytest.raises(ValueError, match="sampling"):
        MAMLTRPOConfig(sampling="paths")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_per_task_policy_forward_is_vmap_over_the_tasks_bit_for_bit(activation):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(5, 3, hidden=(16, 16), activation=activation)
    distinct = {k: v.detach() + 0.1 * torch.randn(4, *v.shape) for k, v in parameters_of(policy).items()}
    shared = {k: v.detach().expand(4, *v.shape) for k, v in parameters_of(policy).items()}
    observations = torch.randn(4, 7, 5)
    with torch.no_grad():
        for params, obs in [(distinct, observations), (shared, observations), (distinct, observations.view(4, 7, 1, 5)),
                            (distinct, observations[:, 0])]:
            reference = torch.func.vmap(lambda p, o: torch.func.functional_call(policy, p, (o,)))(params, obs)
            ours = policy_per_task(policy, params, obs)
            assert all(torch.equal(a, b) for a, b in zip(ours, reference))
            assert ours[0].shape == ours[1].shape == (*obs.shape[:-1], 3)
    # each task sees only its own parameters
    alone = torch.func.functional_call(policy, {k: v[2] for k, v in distinct.items()}, (observations[2],))
    with torch.no_grad():
        torch.testing.assert_close(policy_per_task(policy, distinct, observations)[0][2], alone[0])


def test_policy_actions_in_minus_one_one_are_mapped_onto_the_action_bounds():
    cpu = torch.device("cpu")
    box = gymnasium.spaces.Box(np.array([-0.5, 0.0]), np.array([0.5, 2.0]), dtype=np.float64)
    scale, center = action_affine(box, torch.float64, cpu)
    torch.testing.assert_close(-torch.ones(2, dtype=torch.float64) * scale + center, torch.from_numpy(box.low))
    torch.testing.assert_close(torch.ones(2, dtype=torch.float64) * scale + center, torch.from_numpy(box.high))
    scale, center = action_affine(gymnasium.spaces.Box(-np.inf, np.inf, (2,)), torch.float64, cpu)
    assert scale.tolist() == [1.0, 1.0] and center.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="Box"):
        action_affine(gymnasium.spaces.Discrete(3), torch.float64, cpu)


@pytest.mark.parametrize("mode", [None, "sync"])
def test_task_in_observation_appends_each_lanes_task_parameters(mode):
    vector = gymnasium.make_vec(NAVIGATION, num_envs=3, vectorization_mode=mode)
    env = TaskInObservation(gymnasium.make_vec(NAVIGATION, num_envs=3, vectorization_mode=mode))
    assert env.single_observation_space.shape == (4,) and env.observation_space.shape == (3, 4)
    tasks = gymnasium.make(NAVIGATION).unwrapped.sample_tasks(3, np.random.default_rng(0))
    goals = np.array([task["goal"] for task in tasks], dtype=np.float32)
    for lanes in (vector, env):
        lanes.set_attr("task", tasks)
    plain, _ = vector.reset(seed=3)
    seen, _ = env.reset(seed=3)
    np.testing.assert_array_equal(seen, np.concatenate([plain, goals], axis=1))
    actions = np.full((3, 2), 0.05, dtype=np.float32)
    plain, seen = vector.step(actions)[0], env.step(actions)[0]
    np.testing.assert_array_equal(seen, np.concatenate([plain, goals], axis=1))
    other = Task("navigation2d", {"goal": [0.25, -0.5]})
    seen, _ = env.reset(seed=3, options={"task": other})  # a task set at reset is shown too
    np.testing.assert_array_equal(seen[:, 2:], np.tile([0.25, -0.5], (3, 1)).astype(np.float32))


def test_task_features_flatten_numeric_parameters_in_name_order_and_refuse_others():
    task = Task("ant-goal", {"goal": [1.5, -2.0], "bias": 3})
    np.testing.assert_array_equal(task_features(task), [3.0, 1.5, -2.0])
    with pytest.raises(ValueError, match="numeric"):
        task_features(Task("mine", {"terrain": "ice"}))
    with pytest.raises(ValueError, match="no parameters"):
        task_features(Task("mine"))
