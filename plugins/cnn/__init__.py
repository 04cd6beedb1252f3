"""The CNN baseline plugin: a conv stem's feature grid as tokens; reads the vision datasets."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_cnn.frontend import ConvStem
from attnlab_vision import SOURCES

plugin = Plugin(
    name="cnn",
    description="CNN baseline: conv stem feature grid as tokens (backbone.depth=0 = pure CNN); vision datasets",
    config_dir=Path(__file__).parent / "conf",
    frontends=(ConvStem,),
    sources=SOURCES,
)

__all__ = ["ConvStem", "plugin"]
