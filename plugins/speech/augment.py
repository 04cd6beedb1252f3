"""Training augmentation for waveforms, from torchaudio: speed perturbation and additive noise.

:class:`WaveAugment` is a per-example training transform (``data.train_transform``, chosen
by ``augment=speech``): the core DataModule applies it to each training clip ``(S,)``, seeded
by ``(seed, epoch, index)``, never at evaluation. SpecAugment, which masks features rather
than samples, lives in the front-end (``frontend.features.masks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
import torchaudio.functional as AF
from annotated_types import Ge, Gt, Interval, MinLen
from torch import Tensor
from torchaudio.transforms import SpeedPerturbation

from attnlab.errors import ConfigError

Probability = Annotated[float, Interval(ge=0, le=1)]


class WaveAugment:
    """Changes the speed of a training clip and adds noise to it.

    Args:
        sample_rate: the clips' rate (``${from_data:sample_rate}``).
        speeds: speed factors, one drawn per clip with equal chances (Ko et al. 2015 use
            0.9, 1.0, 1.1: a 0.9 clip is 11% longer and lower); ``[1.0]`` is off. Speed
            changes duration and pitch together, as torchaudio's ``SpeedPerturbation`` does.
        noise: probability of adding white Gaussian noise to a clip.
        snr: the noise's signal-to-noise ratio in dB, drawn uniformly from ``[low, high]``
            per clip (over the whole clip, silence included).
    """

    def __init__(
        self,
        sample_rate: Annotated[int, Ge(1)],
        speeds: Annotated[Sequence[Annotated[float, Gt(0)]], MinLen(1)] = (1.0,),
        noise: Probability = 0.0,
        snr: Annotated[Sequence[float], MinLen(2)] = (10.0, 30.0),
    ) -> None:
        speeds = [float(s) for s in speeds]
        if not speeds or min(speeds) <= 0:
            raise ConfigError(f"augment.example.speeds={speeds} must be one or more factors > 0")
        if not 0.0 <= noise <= 1.0:
            raise ConfigError(f"augment.example.noise={noise} is a probability; give a value in [0, 1]")
        if len(snr) != 2 or snr[0] > snr[1]:
            raise ConfigError(f"augment.example.snr={list(snr)} must be [low, high] in dB with low <= high")
        self.sample_rate, self.speeds, self.noise, self.snr = sample_rate, speeds, noise, (float(snr[0]), float(snr[1]))
        self._speed = SpeedPerturbation(sample_rate, speeds) if any(s != 1.0 for s in speeds) else None

    def __call__(self, wave: Tensor) -> Tensor:
        if wave.ndim != 1 or not wave.is_floating_point():
            raise ConfigError(
                f"augment.example is a waveform augmentation; it got a {tuple(wave.shape)} {wave.dtype} tensor "
                "instead of a clip (S,): choose augment=none for this data"
            )
        if self._speed is not None:
            wave = self._speed(wave)[0]
        if self.noise > 0 and float(torch.rand(())) < self.noise and wave.numel():
            low, high = self.snr
            snr = torch.empty(1).uniform_(low, high)
            wave = AF.add_noise(wave[None], torch.randn(1, wave.numel()), snr)[0]
        return wave

    def __repr__(self) -> str:
        return f"WaveAugment(speeds={self.speeds}, noise={self.noise}, snr={list(self.snr)})"
