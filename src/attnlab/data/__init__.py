"""The data layer: one DataModule for every modality, fed by a plugin's dataset sources.

- :class:`DataModule` (``data._target_``, imported on first use: it needs Lightning, which
  plugin packages must not import) owns set-up, bad-input handling, loaders, bucketing and
  transforms.
- :class:`Source` and :class:`SourceData` (:mod:`attnlab.data.source`): what a plugin's
  dataset class implements and returns.
- :mod:`attnlab.data.splits`: seeded stratified, grouped and random splits.
- :func:`dataset_modalities` (:mod:`attnlab.data.catalog`): which modality plugins read a
  ``data=<name>`` config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnlab.data.bad import BadItems
from attnlab.data.source import (
    ChecksFiles,
    DeclaresTask,
    Downloads,
    Example,
    HasRawFeatures,
    LoadContext,
    Source,
    SourceData,
    Split,
)

if TYPE_CHECKING:
    from attnlab.data.module import DataModule

__all__ = [
    "BadItems",
    "ChecksFiles",
    "DataModule",
    "DeclaresTask",
    "Downloads",
    "Example",
    "HasRawFeatures",
    "LoadContext",
    "Source",
    "SourceData",
    "Split",
]


def __getattr__(name: str) -> Any:
    if name == "DataModule":
        from attnlab.data.module import DataModule

        return DataModule
    raise AttributeError(f"module 'attnlab.data' has no attribute {name!r}")
