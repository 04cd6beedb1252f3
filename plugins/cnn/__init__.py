"""The CNN baseline plugin: a conv stem's feature grid as tokens; reuses the vision datasets."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_cnn.frontend import ConvStem
from attnlab_vision.data import ImageDataModule

plugin = Plugin(
    name="cnn",
    description="CNN baseline: conv stem feature grid as tokens (backbone.depth=0 = pure CNN); vision datasets",
    config_dir=Path(__file__).parent / "conf",
    frontends=(ConvStem,),
    datamodules=(ImageDataModule,),
)

__all__ = ["ConvStem", "plugin"]
