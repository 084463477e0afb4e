"""MANN (Santoro et al. 2016): LRUA memory against hand-computed values, the label offset, the episode sampler,
bad input, and a tiny training run that learns to bind labels within an episode."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metarl.mann import MANN, MANNConfig, MemoryState, cosine_read_weights, empty_memory, lrua_step, lrua_write
from metarl.mann_experiment import MANNRunConfig
from metarl.sequence_learner import (
    SequenceLearner,
    SequenceLearnerConfig,
    frequency_rule_accuracy,
    instance_numbers,
    per_instance_accuracy,
    previous_label_input,
)
from metarl.sequence_models import build_sequence_model
from metarl.tasks import SequenceEpisode, Task
from supervised.sequences import Augmentation, ClassSequences

NO_AUGMENTATION = Augmentation(0.0, 0.0, 0.0, 0.0)


def class_images(classes: int, drawings: int = 20, size: int = 8) -> np.ndarray:
    """Every drawing of class c is the constant image c + 1, so a step's image names its class."""
    return np.broadcast_to(np.arange(1, classes + 1, dtype=np.uint8)[:, None, None, None],
                           (classes, drawings, size, size)).copy()


def patterns(classes: int, rng: np.random.Generator, size: int, noise: float, drawings: int = 20) -> np.ndarray:
    """Random binary patterns, one per class, each drawing with a fraction ``noise`` of its pixels flipped."""
    prototypes = rng.random((classes, 1, size, size)) < 0.5
    return ((prototypes ^ (rng.random((classes, drawings, size, size)) < noise)) * 255).astype(np.uint8)


# --- the label offset ------------------------------------------------------------------------------

def test_previous_label_input_is_the_last_steps_label_and_null_at_the_first_step():
    labels = torch.tensor([[[2], [0], [1], [2]]])
    given = previous_label_input(labels, alphabet=3)
    assert given.tolist() == [[[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]]
    strings = previous_label_input(torch.tensor([[[1, 0], [0, 1]]]), alphabet=2)  # two symbols of two values
    assert strings.tolist() == [[[0, 0, 0, 0], [0, 1, 1, 0]]]


class Spy(nn.Module):
    """Records what the learner feeds the model and answers zeros."""

    def __init__(self, outputs: int) -> None:
        super().__init__()
        self.outputs, self.bias = outputs, nn.Parameter(torch.zeros(1))

    def forward(self, inputs):
        self.inputs = inputs
        return inputs.new_zeros(*inputs.shape[:2], self.outputs) + self.bias


def test_the_model_sees_image_t_with_label_t_minus_1():
    family = ClassSequences(class_images(6), family="toy", ways=3, samples=4, augmentation=NO_AUGMENTATION)
    rng = np.random.default_rng(0)
    episode = family.episode(family.sample_tasks(2, rng), rng)
    spy = Spy(outputs=3)
    SequenceLearner(spy, alphabet=3).logits(episode)
    images, labels = spy.inputs[..., :64], spy.inputs[..., 64:]
    assert torch.equal(images, episode.x.flatten(2))
    assert torch.all(labels[:, 0] == 0)
    assert torch.equal(labels[:, 1:].argmax(-1), episode.labels[:, :-1, 0]) and torch.all(labels.sum(-1)[:, 1:] == 1)


# --- the episode sampler ---------------------------------------------------------------------------

@pytest.mark.parametrize("labels, length, alphabet", [("one_hot", 1, 5), ("string", 5, 5)])
def test_episodes_show_each_class_ten_times_in_random_order_with_its_own_label(labels, length, alphabet):
    family = ClassSequences(class_images(30), family="toy", ways=5, samples=10, labels=labels,
                            augmentation=NO_AUGMENTATION)
    assert (family.label_length, family.alphabet, family.feature_size) == (length, alphabet, 64)
    rng = np.random.default_rng(0)
    tasks = family.sample_tasks(4, rng)
    episode = family.episode(tasks, rng)
    assert episode.x.shape == (4, 50, 1, 8, 8) and episode.labels.shape == (4, 50, length)
    for task, x, y in zip(tasks, episode.x, episode.labels):
        shown = (x[:, 0, 0, 0] * 255).round().long() - 1  # the class index, from the constant images
        assert sorted(shown.tolist()) == sorted(task["classes"] * 10)
        places = alphabet ** torch.arange(length - 1, -1, -1)
        numbers = (y * places).sum(-1)
        for c, number in zip(task["classes"], task["labels"]):
            assert torch.all(numbers[shown == c] == number)
        assert shown[:10].tolist() != sorted(shown[:10].tolist())  # not in class order
    assert len({tuple(task["classes"]) for task in tasks}) == 4
    assert episode.labels.min() >= 0 and episode.labels.max() < alphabet


def test_same_seed_same_episodes_and_augmentation_moves_the_ink():
    rng = np.random.default_rng(1)
    images = patterns(12, rng, size=20, noise=0.05)
    family = ClassSequences(images, family="toy", ways=3, samples=4)
    first, second = (family.episode(family.sample_tasks(2, np.random.default_rng(5)), np.random.default_rng(6))
                     for _ in range(2))
    assert torch.equal(first.x, second.x) and torch.equal(first.labels, second.labels)
    plain = ClassSequences(images, family="toy", ways=3, samples=4, augmentation=NO_AUGMENTATION)
    unaugmented = plain.episode(plain.sample_tasks(2, np.random.default_rng(5)), np.random.default_rng(6))
    assert torch.equal(unaugmented.labels, first.labels)
    assert not torch.allclose(unaugmented.x, first.x) and 0.0 <= first.x.min() and first.x.max() <= 1.0


def test_instance_numbers_and_per_instance_accuracy():
    labels = torch.tensor([[[1], [0], [1], [1], [0], [0]]])
    instances = instance_numbers(labels)
    assert instances.tolist() == [[0, 0, 1, 2, 1, 2]]
    correct = torch.tensor([[False, True, True, True, False, True]])
    assert per_instance_accuracy(correct, instances, 3).tolist() == [[0.5, 0.5, 1.0]]


class Constant(nn.Module):
    """Answers the same scores at every step."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = nn.Parameter(torch.tensor(scores))

    def forward(self, inputs):
        return self.scores.expand(*inputs.shape[:2], -1)


def test_symbol_accuracy_and_the_frequency_rule_on_string_labels():
    # classes A and B with two-symbol labels (0, 1) and (0, 2), shown A, B, A, B; the model always answers (0, 1)
    labels = torch.tensor([[[0, 1], [0, 2], [0, 1], [0, 2]]])
    episode = SequenceEpisode(torch.zeros(1, 4, 1, 2, 2), labels)
    learner = SequenceLearner(Constant([1.0, 0, 0, 0, 1, 0]), alphabet=3)
    assert learner.evaluate(episode).tolist() == [[0.5, 0.5]]  # A right, B wrong at each instance
    whole, by_symbol = learner.evaluate_by_symbol(episode)
    assert whole.tolist() == [[0.5, 0.5]]
    assert by_symbol.tolist() == [[0.75, 0.75]]  # A's 2 symbols of 2, B's 1 of 2
    # position 0: symbol 0 at all 4 steps; position 1: symbols 1 and 2 at 2 steps each
    assert frequency_rule_accuracy(labels, alphabet=3).tolist() == [0.75]
    assert frequency_rule_accuracy(torch.tensor([[[0], [1], [2]]]), alphabet=3).tolist() == pytest.approx([1 / 3])


# --- the memory ------------------------------------------------------------------------------------

def test_cosine_read_weights_sum_to_one_even_over_empty_slots():
    memory = torch.randn(3, 10, 6)
    memory[:, :4] = 0.0
    weights = cosine_read_weights(torch.randn(3, 4, 6), memory)
    assert weights.shape == (3, 4, 10) and torch.all(weights > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))


def test_lrua_writes_to_the_least_used_slots_when_the_gate_is_closed_and_where_it_read_when_open():
    usage = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7]])
    memory = torch.arange(10.0).view(1, 5, 2) + 1
    read = torch.softmax(torch.randn(1, 2, 5), -1)
    keys = torch.tensor([[[1.0, -1.0], [0.5, 0.25]]])
    new_memory, weights = lrua_write(MemoryState(memory, read, usage), keys, torch.zeros(1, 2))
    # head 0 -> least used slot 1, head 1 -> next least used slot 3; slot 1 is cleared first.
    assert weights.tolist() == [[[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]]]
    expected = memory.clone()
    expected[0, 1] = keys[0, 0]
    expected[0, 3] += keys[0, 1]
    torch.testing.assert_close(new_memory, expected)
    _, open_weights = lrua_write(MemoryState(memory, read, usage), keys, torch.ones(1, 2))
    torch.testing.assert_close(open_weights, read)


def test_usage_decays_by_gamma_and_adds_read_and_write_weights():
    state = MemoryState(torch.randn(2, 6, 3), torch.softmax(torch.randn(2, 2, 6), -1), torch.rand(2, 6))
    keys, gate = torch.randn(2, 2, 3), torch.rand(2, 2)
    for gamma in (0.95, 0.5):
        new, _ = lrua_step(state, keys, gate, gamma)
        _, written = lrua_write(state, keys, gate)
        torch.testing.assert_close(new.usage - new.read_weights.sum(1) - written.sum(1), gamma * state.usage)


def test_two_lrua_steps_match_hand_computed_values():
    # One head, three slots of width two, gamma 0.5; slot 1 is the least used at the start.
    state = MemoryState(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]), torch.tensor([[[0.5, 0.25, 0.25]]]),
                        torch.tensor([[1.0, 0.2, 0.6]]))
    e = math.e
    # Step 1: key (1, 0), gate 0.5. Write weights 0.5 (0.5, .25, .25) + 0.5 (0, 1, 0) = (.25, .625, .125);
    # slot 1 is cleared, then the key is added: M = ((1.25, 0), (.625, 0), (1.125, 1)).
    state, read = lrua_step(state, torch.tensor([[[1.0, 0.0]]]), torch.tensor([[0.5]]), gamma=0.5)
    m1 = [[1.25, 0.0], [0.625, 0.0], [1.125, 1.0]]
    cos2 = 1.125 / math.sqrt(1.125**2 + 1)  # slots 0 and 1 lie along the key: cosine 1
    total = 2 * e + math.exp(cos2)
    a, b = e / total, math.exp(cos2) / total
    torch.testing.assert_close(state.memory, torch.tensor([m1]))
    torch.testing.assert_close(state.read_weights, torch.tensor([[[a, a, b]]]))
    torch.testing.assert_close(read, torch.tensor([[[1.25 * a + 0.625 * a + 1.125 * b, b]]]))
    u1 = [0.5 + a + 0.25, 0.1 + a + 0.625, 0.3 + b + 0.125]
    torch.testing.assert_close(state.usage, torch.tensor([u1]))
    # Step 2: key (0, 1), gate 1: write where step 1 read, (a, a, b). The least used slot is now 2 (u1 ~ 1.11,
    # 1.09, 0.70): cleared, then written: M = ((1.25, a), (.625, a), (0, b)).
    assert min(range(3), key=lambda i: u1[i]) == 2
    state, read = lrua_step(state, torch.tensor([[[0.0, 1.0]]]), torch.tensor([[1.0]]), gamma=0.5)
    m2 = [[1.25, a], [0.625, a], [0.0, b]]
    scores = [math.exp(a / math.hypot(1.25, a)), math.exp(a / math.hypot(0.625, a)), e]
    w2 = [s / sum(scores) for s in scores]
    torch.testing.assert_close(state.memory, torch.tensor([m2]))
    torch.testing.assert_close(state.read_weights, torch.tensor([[w2]]))
    torch.testing.assert_close(read, torch.tensor([[[sum(w * m[0] for w, m in zip(w2, m2)),
                                                     sum(w * m[1] for w, m in zip(w2, m2))]]]))
    torch.testing.assert_close(state.usage, torch.tensor([[0.5 * u + w + v for u, w, v in zip(u1, w2, (a, a, b))]]))


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_mann_is_batched_over_independent_episodes_with_finite_gradients(controller):
    torch.manual_seed(0)
    model = MANN(12, 5, MANNConfig(controller=controller, controller_size=16, memory_slots=8, memory_width=4,
                                   read_heads=2))
    inputs = torch.randn(3, 7, 12, requires_grad=True)
    out = model(inputs)
    assert out.shape == (3, 7, 5)
    torch.testing.assert_close(model(inputs[1:2]), out[1:2])
    out.square().sum().backward()  # the first steps read empty (all-zero) slots
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_mann_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    model, inputs = MANN(12, 5, MANNConfig(controller_size=16, memory_slots=8, memory_width=4)), torch.randn(3, 7, 12)
    expected = model(inputs)
    torch.testing.assert_close(model.cuda()(inputs.cuda()).cpu(), expected, atol=1e-4, rtol=1e-4)


def test_empty_memory_has_the_documented_shapes():
    state = empty_memory(2, 5, 3, 4)
    assert [t.shape for t in state] == [(2, 5, 3), (2, 4, 5), (2, 5)] and all(torch.all(t == 0) for t in state)


# --- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: MANNConfig(read_heads=0), "read-heads"),
    (lambda: MANNConfig(memory_slots=2, read_heads=3), "cannot exceed"),
    (lambda: MANNConfig(gamma=1.5), "gamma"),
    (lambda: MANNConfig(controller="gru"), "controller"),
    (lambda: SequenceLearnerConfig(lr=0.0), "lr"),
    (lambda: SequenceLearnerConfig(optimizer="sgd"), "optimizer"),
    (lambda: build_sequence_model("gru", 4, 2, MANNConfig()), "unknown sequence model"),
    (lambda: MANNRunConfig(family="x", task={}, model="ntm"), "unknown model .ntm.; choose one of"),
    (lambda: Augmentation(class_rotation=-1.0), "class-rotation"),
    (lambda: ClassSequences(class_images(4), family="toy", ways=1, samples=2), "ways"),
    (lambda: ClassSequences(class_images(4), family="toy", ways=5, samples=2), "ways"),
    (lambda: ClassSequences(class_images(4), family="toy", ways=2, samples=21), "samples"),
    (lambda: ClassSequences(class_images(4), family="toy", ways=2, samples=2, labels="binary"), "labels"),
    (lambda: ClassSequences(class_images(4).astype(np.float32), family="toy", ways=2, samples=2), "uint8"),
    (lambda: SequenceEpisode(torch.zeros(2, 3, 4), torch.zeros(2, 3, 1)), "int64"),
    (lambda: SequenceEpisode(torch.zeros(2, 4, 4), torch.zeros(2, 3, 1, dtype=torch.long)), "agree"),
])
def test_bad_input_raises_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_tasks_with_bad_labels_or_classes_are_refused():
    family = ClassSequences(class_images(6), family="toy", ways=2, samples=2)
    rng = np.random.default_rng(0)
    for params, message in [({"classes": [0, 1], "labels": [1, 1]}, "distinct label"),
                            ({"classes": [0, 1], "labels": [0, 2]}, "distinct label"),
                            ({"classes": [0, 9], "labels": [0, 1]}, "out of range")]:
        with pytest.raises(ValueError, match=message):
            family.episode([Task("toy", params)], rng)


# --- learning --------------------------------------------------------------------------------------

def seen_label_guess(labels: torch.Tensor) -> float:
    """Expected 2nd-instance accuracy of guessing uniformly among the labels shown so far: what needs no binding."""
    guesses = []
    for episode in labels[..., 0].tolist():
        for t, label in enumerate(episode):
            if episode[:t].count(label) == 1:
                guesses.append(1 / len(set(episode[:t])))
    return float(np.mean(guesses))


def test_a_tiny_training_run_learns_to_bind_labels_above_chance():
    # 3 classes x 4 presentations of 4x4 binary patterns; 800 updates (about 10 s on one CPU thread), held-out classes.
    rng = np.random.default_rng(0)
    images = patterns(60, rng, size=4, noise=0.0)
    train, test = (ClassSequences(part, family="toy", ways=3, samples=4, augmentation=NO_AUGMENTATION)
                   for part in (images[:40], images[40:]))
    torch.manual_seed(0)
    model = MANN(16 + 3, 3, MANNConfig(controller_size=48, memory_slots=8, memory_width=16, read_heads=1))
    learner = SequenceLearner(model, alphabet=3, config=SequenceLearnerConfig(optimizer="adam", lr=1e-2))
    held_out = test.episode(test.sample_tasks(300, np.random.default_rng(1)), np.random.default_rng(2))
    before = learner.evaluate(held_out).mean(0)
    for _ in range(800):
        learner.meta_train_step(train.episode(train.sample_tasks(16, rng), rng))
    after = learner.evaluate(held_out).mean(0)
    chance = seen_label_guess(held_out.labels)  # about 0.43, above the 1/3 of a blind guess
    assert before[1] < 0.4
    assert after[1] > chance + 0.15, (before.tolist(), after.tolist(), chance)  # measured: 0.72


def test_key_strength_sharpens_the_reads():
    keys = torch.tensor([[[1.0, 0.0]]])
    memory = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])  # cosines 1, 0, -1
    plain = cosine_read_weights(keys, memory)
    strong = cosine_read_weights(keys, memory, torch.tensor([[5.0]]))
    expected = torch.softmax(torch.tensor([5.0, 0.0, -5.0]), dim=0)
    assert torch.allclose(strong.flatten(), expected) and strong[0, 0, 0] > 0.99 > plain[0, 0, 0]
    assert torch.allclose(plain.flatten(), torch.softmax(torch.tensor([1.0, 0.0, -1.0]), dim=0))
    model = MANN(7, 5, MANNConfig(controller_size=8, memory_slots=6, memory_width=3, read_heads=2, key_strength=True))
    assert model.heads.out_features == 2 * (3 + 2)  # key, gate and strength per head
    logits = model(torch.randn(4, 9, 7))
    logits.sum().backward()
    assert logits.shape == (4, 9, 5) and model.heads.weight.grad.abs().sum() > 0


def test_add_vector_writes_its_own_content_and_reads_with_the_key():
    state = empty_memory(1, 4, 2, 1)
    keys, content = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, 1.0]]])
    written, read = lrua_step(state, keys, torch.zeros(1, 1), 0.95, content=content)
    assert torch.equal(written.memory[0, 0], content[0, 0]) and written.memory[0, 1:].abs().sum() == 0
    # the key is orthogonal to the one written slot: its read weight is that of the empty slots
    assert torch.allclose(written.read_weights, torch.full((1, 1, 4), 0.25)) and torch.allclose(read, content / 4)
    paper, _ = lrua_step(state, keys, torch.zeros(1, 1), 0.95)
    assert torch.equal(paper.memory[0, 0], keys[0, 0])  # eq. 7: the key itself
    model = MANN(7, 5, MANNConfig(controller_size=8, memory_slots=6, memory_width=3, read_heads=2, add_vector=True))
    assert model.heads.out_features == 2 * (3 + 1 + 3)  # key, gate and add vector per head
    logits = model(torch.randn(4, 9, 7))
    logits.sum().backward()
    assert logits.shape == (4, 9, 5) and model.heads.weight.grad.view(2, 7, -1)[:, -3:].abs().sum() > 0


def test_init_from_loads_another_runs_weights_and_runs_saved_before_the_new_settings_resume(tmp_path, monkeypatch):
    import metarl.experiment
    from metarl.mann_experiment import MANNExperiment, run_mann
    from metarl.train import TrainConfig

    images = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4, 4), dtype=np.uint8)
    monkeypatch.setattr(metarl.experiment, "task_family", lambda name: lambda part, **options: ClassSequences(
        images, family=name, augmentation=NO_AUGMENTATION, **options))

    def config(out: str, labels: str = "string", ways: int = 3, model: str = "mann", **extra) -> MANNRunConfig:
        train = TrainConfig(out=str(tmp_path / out), iterations=2, meta_batch_size=2, eval_tasks=2, final_eval_tasks=2,
                            progress=False)
        return MANNRunConfig(family="toy", task={"ways": ways, "samples": 4, "labels": labels}, model=model,
                             mann=MANNConfig(controller_size=8, memory_slots=8, memory_width=4, read_heads=1),
                             optim=SequenceLearnerConfig(optimizer="adam", lr=1e-3), train=train, **extra)

    first, _, _ = run_mann(config("first"))
    trained = {name: value.clone() for name, value in first.learner.model.state_dict().items()}
    fresh = MANNExperiment(config("second", ways=5))  # string labels: the same shapes for 3 and 5 classes
    assert any(not torch.equal(value, trained[name]) for name, value in fresh.learner.model.state_dict().items())
    fresh.start_from(tmp_path / "first")
    assert all(torch.equal(value, trained[name]) for name, value in fresh.learner.model.state_dict().items())
    assert all(not state for state in fresh.learner.optimizer.state.values())  # the optimiser starts afresh

    sharpened = config("beta", ways=5)
    sharpened.mann.key_strength = True  # a run without key strengths may start one with them
    with_strength = MANNExperiment(sharpened)
    with_strength.start_from(tmp_path / "first")
    episode = with_strength.distribution("val").episode(with_strength.distribution("val").sample_tasks(
        2, np.random.default_rng(0)), np.random.default_rng(1))
    with torch.no_grad():
        torch.testing.assert_close(with_strength.learner.logits(episode), fresh.learner.logits(episode))

    run_mann(config("second", ways=5, init_from=str(tmp_path / "first" / "checkpoint.pt")))
    saved = json.loads((tmp_path / "first" / "config.json").read_text())  # as a run from before init and init_from
    del saved["init_from"], saved["mann"]["init"]
    (tmp_path / "first" / "config.json").write_text(json.dumps(saved))
    older_run = config("first")
    older_run.train.iterations, older_run.train.resume = 3, True
    run_mann(older_run)  # resumes: the missing settings read as the values it ran with
    assert json.loads((tmp_path / "first" / "config.json").read_text())["mann"]["init"] == "torch"
    assert json.loads((tmp_path / "second" / "config.json").read_text())["init_from"].endswith("checkpoint.pt")
    older = {key: value for key, value in config("x").to_json().items() if key != "init_from"}
    assert MANNRunConfig.from_json(older).init_from is None  # a run saved before the setting existed
    for bad, message in [(config("third", labels="one_hot"), "do not fit this model"),
                         (config("fourth", model="lstm"), "it is a 'mann' run, this one is 'lstm'")]:
        bad.init_from = str(tmp_path / "first")
        with pytest.raises(ValueError, match=message):
            run_mann(bad)
        assert not (tmp_path / bad.train.out).exists()  # refused before the run folder is made


def test_key_strengths_added_to_trained_weights_start_as_the_papers_read_and_can_sharpen():
    torch.manual_seed(0)
    config = MANNConfig(controller_size=8, memory_slots=6, memory_width=3, read_heads=2, add_vector=True)
    trained = MANN(7, 5, config)
    sharpened = MANN(7, 5, MANNConfig(**{**vars(config), "key_strength": True}))
    sharpened.load_without_key_strength(trained.state_dict())
    inputs = torch.randn(4, 9, 7)
    torch.testing.assert_close(sharpened(inputs), trained(inputs), rtol=0, atol=1e-6)
    strength = sharpened.heads.bias.view(2, sharpened.head_size)[:, sharpened.head_layout["strength"]]
    torch.testing.assert_close(F.softplus(strength), torch.ones(2, 1))
    sharpened(inputs).square().sum().backward()  # the new rows learn
    assert sharpened.heads.weight.grad.view(2, sharpened.head_size, -1)[:, sharpened.head_layout["strength"]].abs().sum() > 0
    with pytest.raises(ValueError, match="needs a MANN with key_strength=True"):
        trained.load_without_key_strength(trained.state_dict())


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_glorot_init_bounds_each_reference_matrix_by_its_own_fans_and_zeroes_the_biases(controller):
    torch.manual_seed(0)
    config = MANNConfig(controller=controller, controller_size=30, memory_slots=8, memory_width=6, read_heads=2,
                        key_strength=True, add_vector=True, init="glorot")
    model = MANN(20, 5, config)
    heads = model.heads.weight.view(2, model.head_size, 30)
    blocks = {"input": model.input_map.weight, "reads": model.recurrent_map.weight[:, :12],
              "key": heads[:, :6], "gate": heads[:, 6:7], "strength": heads[:, 7:8], "add": heads[:, 8:],
              "output": model.output.weight}
    if controller == "lstm":
        blocks["state"] = model.recurrent_map.weight[:, 12:]
    for name, block in blocks.items():
        bound = math.sqrt(6.0 / sum(block.shape[-2:]))
        assert block.abs().max() <= bound, name
        assert block.abs().max() > 0.8 * bound, name  # drawn over the whole range, not nn.Linear's narrower one
    assert all(not layer.bias.any() for layer in (model.input_map, model.heads, model.output))
    default = MANN(20, 5, MANNConfig(controller=controller, controller_size=30, memory_slots=8, memory_width=6,
                                     read_heads=2, add_vector=True))
    assert default.heads.bias.any()  # torch: nn.Linear's own
    with pytest.raises(ValueError, match="unknown init 'xavier'"):
        MANNConfig(init="xavier")
    with pytest.raises(ValueError, match="applies to MANN only"):
        build_sequence_model("lstm", 20, 5, MANNConfig(init="glorot"))
