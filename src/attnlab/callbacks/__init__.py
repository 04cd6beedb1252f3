"""Lightning callbacks: the resumable last checkpoint, a NaN guard, attention maps, model stats, the history,
EMA, early stopping."""

from attnlab.callbacks.attention_maps import AttentionMaps
from attnlab.callbacks.averaging import EMA, ema
from attnlab.callbacks.checkpoint import LastCheckpoint
from attnlab.callbacks.confusion import ConfusionMatrix
from attnlab.callbacks.guards import EmbedRunConfig, NonFiniteGuard
from attnlab.callbacks.history import History
from attnlab.callbacks.model_stats import ModelStats
from attnlab.callbacks.objective import TrackObjective
from attnlab.callbacks.stopping import early_stopping

__all__ = [
    "EMA",
    "AttentionMaps",
    "ConfusionMatrix",
    "EmbedRunConfig",
    "History",
    "LastCheckpoint",
    "ModelStats",
    "NonFiniteGuard",
    "TrackObjective",
    "early_stopping",
    "ema",
]
