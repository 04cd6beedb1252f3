"""Lightning callbacks that make runs safe to interrupt and to resume."""

from attnlab.callbacks.guards import EmbedRunConfig, InterruptCheckpoint, NonFiniteGuard
from attnlab.callbacks.model_stats import ModelStats

__all__ = ["EmbedRunConfig", "InterruptCheckpoint", "ModelStats", "NonFiniteGuard"]
