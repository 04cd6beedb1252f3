"""Reading audio and batching it: soundfile for I/O, torchaudio for resampling.

torchaudio 2.9+ has no I/O backend of its own, so files are read with ``soundfile``;
any channel count and sample rate is accepted (mixed down to mono, resampled).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF
from torch import Tensor

from attnlab.errors import DataError
from attnlab.types import IGNORE_INDEX

MIN_SECONDS = 0.25
"""Shorter clips (down to zero length) are padded with silence to this length, so that
every clip gives at least one token after the largest subsampling."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """``(S,)`` or ``(S, channels)`` → ``(S,)`` float32, channels averaged."""
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(wave: Tensor, rate: int, target_rate: int) -> Tensor:
    """``wave`` ``(S,)`` from ``rate`` to ``target_rate`` (band-limited sinc, torchaudio)."""
    if rate == target_rate or wave.numel() == 0:
        return wave
    return AF.resample(wave, rate, target_rate)


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """A file as a mono float waveform ``(S,)`` at ``sample_rate``; unreadable files name themselves."""
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise DataError(f"cannot read audio file {path}: {exc}") from exc
    wave = torch.from_numpy(np.ascontiguousarray(to_mono(samples)))
    wave = torch.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0)
    return resample(wave, int(rate), sample_rate)


def collate_audio(examples: Sequence[dict[str, Any]], sample_rate: int) -> dict[str, Tensor]:
    """Pads waveforms (and label sequences) of a batch.

    Returns ``inputs`` ``(B, S)``, ``lengths`` ``(B,)`` in samples, and ``target``: ``(B,)``
    for one label per clip, or ``(B, L)`` padded with ``IGNORE_INDEX`` plus
    ``target_lengths`` for label sequences.
    """
    floor = int(MIN_SECONDS * sample_rate)
    waves = [ex["inputs"] for ex in examples]
    lengths = torch.tensor([max(len(w), floor) for w in waves])
    inputs = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        inputs[i, : len(w)] = w
    batch = {"inputs": inputs, "lengths": lengths}
    targets = [ex["target"] for ex in examples]
    if isinstance(targets[0], (list, tuple)):
        target_lengths = torch.tensor([len(t) for t in targets])
        padded = torch.full((len(targets), max(1, int(target_lengths.max()))), IGNORE_INDEX)
        for i, t in enumerate(targets):
            padded[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        batch.update(target=padded, target_lengths=target_lengths)
    else:
        batch["target"] = torch.tensor(targets, dtype=torch.long)
    return batch
