"""Lightning callbacks: safe interruption and resuming, a NaN guard, attention maps, the run's history."""

from attnlab.callbacks.attention_maps import AttentionMaps
from attnlab.callbacks.confusion import ConfusionMatrix
from attnlab.callbacks.guards import EmbedRunConfig, InterruptCheckpoint, NonFiniteGuard
from attnlab.callbacks.history import History
from attnlab.callbacks.model_stats import ModelStats

__all__ = [
    "AttentionMaps",
    "ConfusionMatrix",
    "EmbedRunConfig",
    "History",
    "InterruptCheckpoint",
    "ModelStats",
    "NonFiniteGuard",
]
