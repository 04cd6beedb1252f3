"""Speech features computed inside the model, on the batch's device.

Waveforms ``(B, S)`` → log-mel or Kaldi fbank ``(B, T, F)`` → mean/variance
normalisation → SpecAugment (training only). Frames never straddle the end of a clip
(``center=False`` / ``snip_edges``): a frame of a padded batch sees the same samples as
the clip alone, so padding cannot change any real frame.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

import torch
import torchaudio.compliance.kaldi as kaldi
from annotated_types import Ge, Gt
from torch import Tensor, nn
from torchaudio.transforms import FrequencyMasking, MelSpectrogram, TimeMasking

from attnlab.errors import ConfigError

Kind = Literal["logmel", "fbank"]
Norm = Literal["utterance", "global", "none"]
KINDS: tuple[str, ...] = get_args(Kind)
NORMS: tuple[str, ...] = get_args(Norm)


def frame_count(samples: Tensor, win: int, hop: int) -> Tensor:
    """Frames that fit entirely in ``samples`` samples (at least one)."""
    return (torch.div(samples - win, hop, rounding_mode="floor") + 1).clamp_min(1)


class MeanVarNorm(nn.Module):
    """Per-utterance or global mean/variance normalisation over the real frames.

    ``global`` keeps running statistics of all training frames (cumulative average,
    like BatchNorm with ``momentum=None``), used as they are at evaluation.
    """

    def __init__(self, kind: str, n_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        if kind not in NORMS:
            raise ConfigError(f"frontend.normalize={kind!r} is unknown; choose one of {', '.join(NORMS)}")
        self.kind, self.eps = kind, eps
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("var", torch.ones(n_features))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, feats: Tensor, mask: Tensor) -> Tensor:
        """``feats`` ``(B, T, F)``, ``mask`` ``(B, T)`` True for real frames."""
        if self.kind == "none":
            return feats
        m = mask.unsqueeze(-1).to(feats.dtype)  # (B, T, 1)
        if self.kind == "utterance":
            n = m.sum(1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
            mean = (feats * m).sum(1, keepdim=True) / n
            var = (((feats - mean) * m) ** 2).sum(1, keepdim=True) / n
            return (feats - mean) / (var + self.eps).sqrt()
        if self.training:
            self._update(feats.detach(), m)
        return (feats - self.mean) / (self.var + self.eps).sqrt()

    @torch.no_grad()
    def _update(self, feats: Tensor, m: Tensor) -> None:
        n = int(m.sum())
        mean = (feats * m).sum((0, 1)) / n
        var = (((feats - mean) * m) ** 2).sum((0, 1)) / n
        total = int(self.count) + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.fill_(total)


class SpecAugment(nn.Module):
    """``masks`` frequency and ``masks`` time masks per example (torchaudio), training only."""

    def __init__(self, freq_mask: int, time_mask: int, masks: int) -> None:
        super().__init__()
        self.masks = masks
        self.freq = FrequencyMasking(freq_mask, iid_masks=True) if freq_mask > 0 else None
        self.time = TimeMasking(time_mask, iid_masks=True) if time_mask > 0 else None

    def forward(self, feats: Tensor) -> Tensor:
        if not self.training or self.masks == 0:
            return feats
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, F, T)
        for _ in range(self.masks):
            x = self.freq(x) if self.freq is not None else x
            x = self.time(x) if self.time is not None else x
        return x.squeeze(1).transpose(1, 2)  # (B, T, F)


class Features(nn.Module):
    """Waveforms to normalised, augmented filterbank features with their frame mask.

    Args:
        sample_rate: audio rate in Hz (from the data).
        kind: ``logmel`` (torchaudio ``MelSpectrogram``, batched) or ``fbank``
            (Kaldi-compatible ``torchaudio.compliance.kaldi.fbank``, per clip).
        n_mels: filterbank channels.
        win_ms: window length; hop_ms: hop between frames.
        normalize: ``utterance``, ``global`` or ``none``.
        freq_mask, time_mask: SpecAugment widths (0 turns a mask off).
        masks: number of masks of each kind.
    """

    def __init__(
        self,
        sample_rate: Annotated[int, Ge(1)],
        kind: Kind = "logmel",
        n_mels: Annotated[int, Ge(1)] = 80,
        win_ms: Annotated[float, Gt(0)] = 25.0,
        hop_ms: Annotated[float, Gt(0)] = 10.0,
        normalize: Norm = "utterance",
        freq_mask: Annotated[int, Ge(0)] = 0,
        time_mask: Annotated[int, Ge(0)] = 0,
        masks: Annotated[int, Ge(0)] = 0,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"frontend.features.kind={kind!r} is unknown; choose one of {', '.join(KINDS)}")
        self.kind, self.n_mels, self.sample_rate = kind, n_mels, sample_rate
        self.win, self.hop = round(sample_rate * win_ms / 1000), round(sample_rate * hop_ms / 1000)
        self.win_ms, self.hop_ms = win_ms, hop_ms
        self.mel = MelSpectrogram(sample_rate, n_fft=self.win, hop_length=self.hop, n_mels=n_mels, center=False)
        self.norm = MeanVarNorm(normalize, n_mels)
        self.augment = SpecAugment(freq_mask, time_mask, masks)

    def forward(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, S)`` waveforms and sample counts → features ``(B, T, F)`` and frame counts ``(B,)``."""
        frames = frame_count(lengths, self.win, self.hop)
        if waves.shape[1] < self.win:  # every clip shorter than one window
            waves = nn.functional.pad(waves, (0, self.win - waves.shape[1]))
        if self.kind == "logmel":
            feats = (self.mel(waves.float()) + 1e-6).log().transpose(1, 2)  # (B, T, F)
        else:
            feats = self._fbank(waves.float(), int(frames.max()))
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < frames[:, None]  # (B, T)
        feats = self.augment(self.norm(feats, mask))
        return feats.masked_fill(~mask.unsqueeze(-1), 0.0), frames

    def _fbank(self, waves: Tensor, t_max: int) -> Tensor:
        rows = []
        for wave in waves:
            f = kaldi.fbank(
                wave.unsqueeze(0) * 32768.0,  # Kaldi's scale: 16-bit sample values
                sample_frequency=self.sample_rate,
                num_mel_bins=self.n_mels,
                frame_length=self.win_ms,
                frame_shift=self.hop_ms,
                dither=0.0,
            )
            rows.append(nn.functional.pad(f, (0, 0, 0, t_max - f.shape[0])) if f.shape[0] < t_max else f[:t_max])
        return torch.stack(rows)  # (B, T, F)
