"""The per-task loop on several threads: the same results as one thread, in task order, each worker on one
intra-op thread, and clear errors where the threads cannot apply."""

import threading

import pytest
import torch

from metarl.maml import MAML, MAMLConfig
from metarl.models import Conv4
from metarl.task_threads import TaskThreads, threads_are_per_thread
from metarl.tasks import Episode

needs_openmp = pytest.mark.skipif(not threads_are_per_thread(), reason="task threads need torch's OpenMP backend")


@needs_openmp
def test_map_keeps_task_order_on_worker_threads_of_one_intra_op_thread_each():
    model = Conv4(1, 3, hidden=4, image_size=16)
    main_threads = torch.get_num_threads()
    seen = list(TaskThreads(2).map_with_copies(
        model, lambda module, task: (task, threading.current_thread().name, torch.get_num_threads(), module), 7))
    assert [task for task, *_ in seen] == list(range(7))
    assert all(name.startswith("metarl-task") for _, name, _, _ in seen)
    assert {threads for _, _, threads, _ in seen} == {1}
    assert torch.get_num_threads() == main_threads  # the workers' setting stayed theirs
    for *_, module in seen:  # a copy of the structure holding the module's own tensors
        assert module is not model
        assert all(a is b for a, b in zip(module.parameters(), model.parameters(), strict=True))


def test_one_thread_runs_in_the_caller_on_the_module_itself():
    model = Conv4(1, 3, hidden=4, image_size=16)
    seen = list(TaskThreads(1).map_with_copies(model, lambda module, task: (module, threading.current_thread()), 3))
    assert all(module is model and thread is threading.current_thread() for module, thread in seen)


@needs_openmp
def test_a_failing_task_raises_in_the_caller():
    def fail_on_two(task):
        if task == 2:
            raise KeyError("task 2")
        return task

    with pytest.raises(KeyError, match="task 2"):
        list(TaskThreads(2).map(fail_on_two, 4))


def test_bad_thread_settings_are_refused():
    with pytest.raises(ValueError, match="at least one task thread"):
        TaskThreads(0)
    with pytest.raises(ValueError, match=r"task_threads must be >= 0"):
        MAMLConfig(task_threads=-1)
    with pytest.raises(ValueError, match="needs the per-task path on a CPU; this learner has the batched path"):
        MAML(Conv4(1, 3, hidden=4, image_size=16), "cross_entropy", MAMLConfig(path="batched", task_threads=2))


@needs_openmp
def test_default_is_one_task_per_intra_op_thread_on_the_per_task_path_only():
    conv = MAML(Conv4(1, 3, hidden=4, image_size=16), "cross_entropy", MAMLConfig(path="per_task"))
    assert conv.tasks.threads == torch.get_num_threads()
    batched = MAML(Conv4(1, 3, hidden=4, image_size=16), "cross_entropy", MAMLConfig(path="batched"))
    assert batched.tasks.threads == 1


def episode(tasks=5, ways=3):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(ways).repeat_interleave(2).expand(tasks, -1)
    return Episode(torch.rand(tasks, 2 * ways, 1, 16, 16, generator=g, dtype=torch.float64), labels,
                   torch.rand(tasks, 2 * ways, 1, 16, 16, generator=g, dtype=torch.float64), labels)


@needs_openmp
def test_training_and_evaluation_on_two_threads_equal_one_thread():
    results = []
    for threads in (1, 2):
        torch.manual_seed(0)
        # float64: the conv biases before batch norm have a true gradient of zero, and Adam would turn float32
        # rounding in their place into full-size steps that differ between any two summation orders
        maml = MAML(Conv4(1, 3, hidden=8, image_size=16).double(), "cross_entropy",
                    MAMLConfig(inner_lr=0.4, path="per_task", task_threads=threads))
        metrics = [maml.meta_train_step(episode()) for _ in range(3)]
        results.append((metrics, list(maml.model.parameters()), maml.evaluate(episode(), steps=3)))
    (metrics_1, params_1, curve_1), (metrics_2, params_2, curve_2) = results
    for m1, m2 in zip(metrics_1, metrics_2, strict=True):
        assert m1 == pytest.approx(m2, rel=1e-9)
    for p1, p2 in zip(params_1, params_2, strict=True):
        torch.testing.assert_close(p1, p2, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(curve_1, curve_2)
    assert curve_1.shape == (5, 4)
    assert (curve_1[:, -1] > curve_1[:, 0]).any()  # adaptation did something to compare
