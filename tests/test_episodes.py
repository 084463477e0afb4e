"""Properties of the N-way K-shot episode sampler on small synthetic image arrays."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from metarl.tasks import SupervisedTaskDistribution, Task
from supervised.episodes import FewShotClassification

CLASSES, PER_CLASS, SIZE = 10, 12, 3


def unique_images() -> np.ndarray:
    """``[10, 12, 3, 3]`` uint8 where every image is filled with its own value ``1 + class * 12 + example``."""
    values = 1 + np.arange(CLASSES * PER_CLASS, dtype=np.uint8).reshape(CLASSES, PER_CLASS)
    return np.broadcast_to(values[:, :, None, None], (CLASSES, PER_CLASS, SIZE, SIZE)).copy()


def image_ids(x: torch.Tensor) -> np.ndarray:
    """The id ``class * 12 + example`` of each image of ``x`` ``[T, n, 1, H, W]``, checking images are constant."""
    pixels = np.rint(x.numpy() * 255).astype(np.int64)
    assert (pixels == pixels[..., :1, :1, :1]).all()
    return pixels[..., 0, 0, 0] - 1


def make(ways: int = 5, shots: int = 2, queries: int = 3, images: np.ndarray | None = None) -> FewShotClassification:
    return FewShotClassification(
        unique_images() if images is None else images, family="toy", ways=ways, shots=shots, queries=queries
    )


def test_satisfies_the_protocol() -> None:
    dist = make()
    assert isinstance(dist, SupervisedTaskDistribution)
    assert (dist.loss, dist.metric) == ("cross_entropy", "accuracy")


def test_tasks_are_distinct_classes_in_range() -> None:
    tasks = make().sample_tasks(50, np.random.default_rng(0))
    assert len(tasks) == 50
    for task in tasks:
        assert task.family == "toy"
        classes = task["classes"]
        assert len(classes) == 5 and len(set(classes)) == 5
        assert all(isinstance(c, int) and 0 <= c < CLASSES for c in classes)
        assert Task.from_dict(task.to_dict()) == task


def test_tasks_survive_pickle_and_deepcopy_unchanged_and_read_only() -> None:
    task = Task("toy", {"classes": [3, 1, 4], "meta": {"split": "train"}})
    for clone in (pickle.loads(pickle.dumps(task)), copy.deepcopy(task)):
        assert clone == task and clone.to_dict() == task.to_dict()
        with pytest.raises(TypeError):
            clone.params["classes"] = [0]  # type: ignore[index]


def test_episode_shapes_dtypes_and_labels() -> None:
    ways, shots, queries, tasks = 5, 2, 3, 4
    dist = make(ways, shots, queries)
    rng = np.random.default_rng(1)
    episode = dist.episode(dist.sample_tasks(tasks, rng), rng)
    assert episode.support_x.shape == (tasks, ways * shots, 1, SIZE, SIZE)
    assert episode.query_x.shape == (tasks, ways * queries, 1, SIZE, SIZE)
    assert episode.support_x.dtype == episode.query_x.dtype == torch.float32
    assert episode.support_y.dtype == episode.query_y.dtype == torch.int64
    assert 0.0 <= float(episode.support_x.min()) and float(episode.support_x.max()) <= 1.0
    expected_support = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1)
    expected_query = torch.arange(ways).repeat_interleave(queries).expand(tasks, -1)
    assert torch.equal(episode.support_y, expected_support)
    assert torch.equal(episode.query_y, expected_query)
    for labels, count in ((episode.support_y, shots), (episode.query_y, queries)):
        assert (torch.bincount(labels.flatten(), minlength=ways) == tasks * count).all()


def test_images_come_from_the_labelled_class_and_support_query_are_disjoint() -> None:
    ways, shots, queries = 4, 3, 5
    dist = make(ways, shots, queries)
    rng = np.random.default_rng(2)
    tasks = dist.sample_tasks(20, rng)
    episode = dist.episode(tasks, rng)
    support, query = image_ids(episode.support_x), image_ids(episode.query_x)
    for t, task in enumerate(tasks):
        classes = np.asarray(task["classes"])
        assert (support[t] // PER_CLASS == classes[episode.support_y[t].numpy()]).all()
        assert (query[t] // PER_CLASS == classes[episode.query_y[t].numpy()]).all()
        both = np.concatenate([support[t], query[t]])
        assert len(set(both.tolist())) == len(both)  # no image twice, within or across the two sets


def test_every_example_can_be_drawn() -> None:
    dist = make(ways=2, shots=1, queries=1)
    rng = np.random.default_rng(3)
    episode = dist.episode(dist.sample_tasks(400, rng), rng)
    seen = set(image_ids(episode.support_x).ravel().tolist()) | set(image_ids(episode.query_x).ravel().tolist())
    assert seen == set(range(CLASSES * PER_CLASS))


def test_all_examples_of_a_class_when_shots_plus_queries_is_everything() -> None:
    dist = make(ways=3, shots=5, queries=PER_CLASS - 5)
    rng = np.random.default_rng(4)
    tasks = dist.sample_tasks(3, rng)
    episode = dist.episode(tasks, rng)
    ids = np.concatenate([image_ids(episode.support_x), image_ids(episode.query_x)], axis=1)
    for t, task in enumerate(tasks):
        expected = {c * PER_CLASS + e for c in task["classes"] for e in range(PER_CLASS)}
        assert set(ids[t].tolist()) == expected


def test_same_seed_same_tasks_and_episode() -> None:
    dist = make()

    def draw(seed: int):
        rng = np.random.default_rng(seed)
        tasks = dist.sample_tasks(8, rng)
        return tasks, dist.episode(tasks, rng)

    (tasks_a, ep_a), (tasks_b, ep_b), (tasks_c, ep_c) = draw(7), draw(7), draw(8)
    assert tasks_a == tasks_b
    assert all(torch.equal(a, b) for a, b in zip(ep_a.tensors(), ep_b.tensors()))
    assert tasks_a != tasks_c
    assert not torch.equal(ep_a.support_x, ep_c.support_x)
    # Same tasks, different generator: different examples.
    ep_d = dist.episode(tasks_a, np.random.default_rng(99))
    assert not torch.equal(ep_a.support_x, ep_d.support_x)


def test_label_permutation_varies_between_tasks() -> None:
    dist = make(ways=3, images=unique_images()[:3])  # only 3 classes: every task uses all of them
    tasks = dist.sample_tasks(60, np.random.default_rng(5))
    orders = {task["classes"] for task in tasks}
    assert all(sorted(order) == [0, 1, 2] for order in orders)
    assert len(orders) == 6  # all 3! label assignments occur
    label_of_class_0 = {order.index(0) for order in orders}
    assert label_of_class_0 == {0, 1, 2}


def test_colour_images_are_channels_first() -> None:
    images = np.zeros((6, 8, 4, 5, 3), dtype=np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 10, 20, 30
    dist = FewShotClassification(images, family="toy", ways=3, shots=2, queries=1)
    rng = np.random.default_rng(6)
    episode = dist.episode(dist.sample_tasks(2, rng), rng)
    assert episode.support_x.shape == (2, 6, 3, 4, 5)
    assert episode.query_x.shape == (2, 3, 3, 4, 5)
    for channel, value in enumerate((10, 20, 30)):
        assert torch.allclose(episode.support_x[:, :, channel], torch.tensor(value / 255))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ways": 1}, "ways must be at least 2"),
        ({"ways": CLASSES + 1}, "more than the 10 classes"),
        ({"shots": 0}, "shots must be at least 1"),
        ({"queries": 0}, "queries must be at least 1"),
        ({"shots": 6, "queries": 7}, "each class has only 12"),
        ({"images": unique_images().astype(np.float32)}, "dtype uint8"),
        ({"images": unique_images()[0]}, "got shape"),
        ({"images": np.zeros((4, 5, 3, 3, 2), np.uint8)}, "got shape"),
        ({"ways": 2.5}, "ways must be an integer"),
    ],
)
def test_invalid_configuration(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_episode_rejects_foreign_or_out_of_range_tasks() -> None:
    dist = make(ways=2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="family 'other'"):
        dist.episode([Task("other", {"classes": [0, 1]})], rng)
    with pytest.raises(ValueError, match="out of range"):
        dist.episode([Task("toy", {"classes": [0, CLASSES]})], rng)
    with pytest.raises(ValueError, match="out of range"):
        dist.episode([Task("toy", {"classes": [-1, 0]})], rng)
    with pytest.raises(ValueError, match="must list 2 classes"):
        dist.episode([Task("toy", {"classes": [0, 1, 2]})], rng)
    with pytest.raises(ValueError, match="distinct"):
        dist.episode([Task("toy", {"classes": [3, 3]})], rng)
    with pytest.raises(ValueError, match="at least one task"):
        dist.episode([], rng)


def test_class_batch_gives_distinct_images_with_their_global_class() -> None:
    dist = make()
    x, y = dist.class_batch(40, np.random.default_rng(8))
    assert x.shape == (40, 1, SIZE, SIZE) and x.dtype == torch.float32
    assert y.shape == (40,) and y.dtype == torch.int64
    ids = image_ids(x[None])[0]  # the same float layout as an episode's images
    assert len(set(ids.tolist())) == 40  # no image twice in a batch
    assert torch.equal(y, torch.from_numpy(ids // PER_CLASS))  # the label is the image's class in `images`
    x2, y2 = dist.class_batch(40, np.random.default_rng(8))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    whole, labels = dist.class_batch(CLASSES * PER_CLASS, np.random.default_rng(9))
    assert sorted(image_ids(whole[None])[0].tolist()) == list(range(CLASSES * PER_CLASS))
    assert (torch.bincount(labels, minlength=CLASSES) == PER_CLASS).all()  # every class, equally often
    with pytest.raises(ValueError, match="size must be in"):
        dist.class_batch(CLASSES * PER_CLASS + 1, np.random.default_rng(0))


def test_class_batch_colour_images_are_channels_first() -> None:
    images = np.zeros((6, 8, 4, 5, 3), dtype=np.uint8)
    images[..., 0], images[..., 1], images[..., 2] = 10, 20, 30
    dist = FewShotClassification(images, family="toy", ways=3, shots=2, queries=1)
    x, _ = dist.class_batch(7, np.random.default_rng(0))
    assert x.shape == (7, 3, 4, 5)
    for channel, value in enumerate((10, 20, 30)):
        assert torch.allclose(x[:, channel], torch.tensor(value / 255))
