"""Lightning callbacks: safe interruption and resuming, a NaN guard, attention maps."""

from attnlab.callbacks.attention_maps import AttentionMaps
from attnlab.callbacks.confusion import ConfusionMatrix
from attnlab.callbacks.guards import EmbedRunConfig, InterruptCheckpoint, NonFiniteGuard
from attnlab.callbacks.model_stats import ModelStats
from attnlab.callbacks.objective import TrackObjective

__all__ = [
    "AttentionMaps",
    "ConfusionMatrix",
    "EmbedRunConfig",
    "InterruptCheckpoint",
    "ModelStats",
    "NonFiniteGuard",
    "TrackObjective",
]
