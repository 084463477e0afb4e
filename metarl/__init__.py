"""metarl: meta-learning for supervised few-shot problems and reinforcement-learning task distributions."""

from metarl.maml import MAML, MAMLConfig
from metarl.tasks import Episode, SupervisedTaskDistribution, Task, TaskDistribution

__all__ = ["MAML", "Episode", "MAMLConfig", "SupervisedTaskDistribution", "Task", "TaskDistribution"]
__version__ = "0.1.0"
