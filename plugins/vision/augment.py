"""Training augmentation for images, from torchvision's transforms v2.

- :class:`ImageAugment` (``data.train_transform``, per training image): pad-and-crop or
  random resized crop, horizontal flip, TrivialAugment or RandAugment, random erasing;
- :class:`MixCut` (``data.batch_transform``, per training batch): MixUp or CutMix, which
  mix pairs of images and give the batch a ``soft_target`` ``(B, C)`` for the loss while
  ``target`` keeps each example's own label for the metrics.

Both run only on training batches (the core DataModule applies them, seeded by
``(seed, epoch, index)``), so evaluation sees plain images and a resumed run the same
augmented ones. The presets in ``conf/augment/`` choose their settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from annotated_types import Ge, Interval
from torch import Tensor

from attnlab.errors import ConfigError
from attnlab.types import Batch

if TYPE_CHECKING:  # torchvision's import pulls its model zoo and torch._dynamo (~2 s): loaded where used
    from torchvision.transforms import v2

Crop = Literal["none", "pad", "resized"]
Auto = Literal["none", "trivial", "rand"]
Share = Annotated[float, Interval(ge=0, lt=0.5)]
Probability = Annotated[float, Interval(ge=0, le=1)]
Alpha = Annotated[float, Ge(0)]


class ImageAugment:
    """Augments one training image ``(C, H, W)`` in [0, 1]; returns the same shape and range.

    The steps, in order (each off unless set): a crop that keeps the image's size, a
    horizontal flip, an automatic policy, random erasing. They adapt to the image's size,
    so the same settings suit 8x8 digits and 224-px photos.

    Args:
        crop: ``pad``: pad each side by ``padding`` of the side with black and cut a random
            window of the original size (a random shift, as for CIFAR and digits); ``resized``:
            torchvision's ``RandomResizedCrop`` of ``scale`` to 1 of the area, resized back
            (ImageNet-style; it changes the scale of what is shown); ``none``.
        padding: the shift of ``crop=pad``, as a share of the side (0.125: 4 px at 32).
        scale: the smallest share of the area ``crop=resized`` keeps.
        flip: mirror left-right with probability 0.5. Off for digits and text in images
            (a mirrored 2 is no digit); on for photos.
        auto: ``trivial``: TrivialAugment (one random operation of random strength per
            image; Müller & Hutter 2021), ``rand``: RandAugment (two operations at magnitude
            9; Cubuk et al. 2020), ``none``.
        erasing: probability of erasing a random rectangle (2-33% of the area) with black
            (random erasing; Zhong et al. 2020).
    """

    def __init__(
        self,
        crop: Crop = "pad",
        padding: Share = 0.125,
        scale: Annotated[float, Interval(gt=0, le=1)] = 0.35,
        flip: bool = False,
        auto: Auto = "none",
        erasing: Probability = 0.0,
    ) -> None:
        if crop not in ("none", "pad", "resized"):
            raise ConfigError(f"augment.example.crop={crop!r} is unknown; choose none, pad or resized")
        if auto not in ("none", "trivial", "rand"):
            raise ConfigError(f"augment.example.auto={auto!r} is unknown; choose none, trivial or rand")
        if not 0.0 <= padding < 0.5 or not 0.0 < scale <= 1.0 or not 0.0 <= erasing <= 1.0:
            raise ConfigError(
                f"augment.example: padding={padding} must be in [0, 0.5), scale={scale} in (0, 1], "
                f"erasing={erasing} in [0, 1]"
            )
        self.crop, self.padding, self.scale, self.flip, self.auto, self.erasing = (
            crop,
            padding,
            scale,
            flip,
            auto,
            erasing,
        )
        self._pipelines: dict[tuple[int, int], v2.Compose] = {}

    def pipeline(self, height: int, width: int) -> v2.Compose:
        """The torchvision transforms for images of ``height x width`` (made once per size)."""
        from torchvision.transforms import v2

        size = (height, width)
        if size not in self._pipelines:
            steps: list[Any] = []
            if self.crop == "pad":
                pad = round(self.padding * max(size))
                if pad > 0:
                    steps.append(v2.RandomCrop(size, padding=pad, fill=0))
            elif self.crop == "resized":
                steps.append(v2.RandomResizedCrop(size, scale=(self.scale, 1.0), antialias=True))
            if self.flip:
                steps.append(v2.RandomHorizontalFlip())
            if self.auto == "trivial":
                steps.append(v2.TrivialAugmentWide())
            elif self.auto == "rand":
                steps.append(v2.RandAugment())
            if self.erasing > 0:
                steps.append(v2.RandomErasing(p=self.erasing, value=0))
            self._pipelines[size] = v2.Compose(steps or [v2.Identity()])
        return self._pipelines[size]

    def __call__(self, image: Tensor) -> Tensor:
        if image.ndim != 3 or not image.is_floating_point():
            raise ConfigError(
                f"augment.example is an image augmentation; it got a {tuple(image.shape)} {image.dtype} "
                "tensor instead of a (C, H, W) float image: choose augment=none for this data"
            )
        return self.pipeline(image.shape[-2], image.shape[-1])(image)

    def __repr__(self) -> str:
        return (
            f"ImageAugment(crop={self.crop}, padding={self.padding}, scale={self.scale}, flip={self.flip}, "
            f"auto={self.auto}, erasing={self.erasing})"
        )


class MixCut:
    """MixUp or CutMix on a training batch of images; adds ``soft_target`` ``(B, C)``.

    Each batch is mixed with probability ``prob``: by MixUp when only ``mixup`` > 0, by
    CutMix when only ``cutmix`` > 0, by either (half the batches each, as timm does) when
    both are. Pairs are consecutive images of the (shuffled) batch. ``target`` keeps every
    example's own label, so training accuracy still counts hard labels; the loss trains on
    ``soft_target`` (the labels' one-hot vectors mixed in the images' proportions).

    Args:
        num_classes: the data's number of classes (``${from_data:num_classes}``).
        mixup: the Beta(α, α) parameter of MixUp (Zhang et al. 2018; DeiT 0.8); 0 is off.
        cutmix: the Beta(α, α) parameter of CutMix (Yun et al. 2019; DeiT 1.0); 0 is off.
        prob: the share of batches that are mixed.
    """

    def __init__(
        self,
        num_classes: Annotated[int, Ge(2)],
        mixup: Alpha = 0.0,
        cutmix: Alpha = 0.0,
        prob: Probability = 1.0,
    ) -> None:
        if mixup < 0 or cutmix < 0 or not 0.0 <= prob <= 1.0:
            raise ConfigError(f"augment.batch: mixup={mixup} and cutmix={cutmix} must be >= 0, prob={prob} in [0, 1]")
        self.num_classes, self.mixup, self.cutmix, self.prob = num_classes, mixup, cutmix, prob
        from torchvision.transforms import v2

        mixers = [v2.MixUp(alpha=mixup, num_classes=num_classes)] if mixup > 0 else []
        mixers += [v2.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix > 0 else []
        self._mix: Any = v2.RandomChoice(mixers) if len(mixers) == 2 else (mixers[0] if mixers else None)

    def __call__(self, batch: Batch) -> Batch:
        images, target = batch["inputs"], batch["target"]
        if images.ndim != 4 or target.ndim != 1:
            raise ConfigError(
                f"augment.batch mixes batches of images (B, C, H, W) with one label each; got inputs "
                f"{tuple(images.shape)} and target {tuple(target.shape)}: choose augment=none for this data"
            )
        if self._mix is None or float(torch.rand(())) >= self.prob:
            return batch
        mixed, soft = self._mix(images, target)
        return {**batch, "inputs": mixed, "soft_target": soft}

    def __repr__(self) -> str:
        return f"MixCut(mixup={self.mixup}, cutmix={self.cutmix}, prob={self.prob})"
