"""Lightning callbacks that make runs safe to interrupt and to resume."""

from attnlab.callbacks.guards import EmbedRunConfig, InterruptCheckpoint, NonFiniteGuard

__all__ = ["EmbedRunConfig", "InterruptCheckpoint", "NonFiniteGuard"]
