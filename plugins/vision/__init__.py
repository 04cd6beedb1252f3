"""The vision plugin: ViT-style 16x16 patches as tokens; digits, CIFAR-10 and image folders."""

from pathlib import Path

from attnlab.plugins import Plugin
from attnlab_vision.augment import ImageAugment, MixCut
from attnlab_vision.data import Cifar10, Digits, ImageFolder
from attnlab_vision.frontend import PatchEmbed

SOURCES = (Digits, Cifar10, ImageFolder)

plugin = Plugin(
    name="vision",
    description="ViT-style patch tokens (patch_size 16) over images: digits, CIFAR-10, image folders",
    config_dir=Path(__file__).parent / "conf",
    frontends=(PatchEmbed,),
    sources=SOURCES,
)

__all__ = ["SOURCES", "Cifar10", "Digits", "ImageAugment", "ImageFolder", "MixCut", "PatchEmbed", "plugin"]
