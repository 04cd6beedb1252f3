"""Lightning callbacks: safe interruption and resuming, a NaN guard, attention maps, EMA, early stopping."""

from attnlab.callbacks.attention_maps import AttentionMaps
from attnlab.callbacks.averaging import EMA, ema
from attnlab.callbacks.confusion import ConfusionMatrix
from attnlab.callbacks.guards import EmbedRunConfig, InterruptCheckpoint, NonFiniteGuard
from attnlab.callbacks.model_stats import ModelStats
from attnlab.callbacks.stopping import early_stopping

__all__ = [
    "EMA",
    "AttentionMaps",
    "ConfusionMatrix",
    "EmbedRunConfig",
    "InterruptCheckpoint",
    "ModelStats",
    "NonFiniteGuard",
    "early_stopping",
    "ema",
]
