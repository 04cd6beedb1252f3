"""Audio dataset sources, read by attnlab's :class:`~attnlab.data.DataModule` (``data.source``).

- :class:`SpokenDigits`: synthesised zero..nine (espeak-ng, generated once into the data
  cache); whole voices are held out for validation and testing.
- :class:`SpokenDigitStrings`: 3-8 digit utterances labelled with the digit sequence (CTC).
- :class:`SpeechCommands`: torchaudio's SPEECHCOMMANDS file lists with its official splits.
- :class:`AudioFolder`: one sub-folder of audio files per label; seeded stratified splits.

A batch is ``inputs`` ``(B, S)`` waveforms at ``sample_rate``, ``lengths`` ``(B,)`` and
``target`` (plus ``target_lengths`` for label sequences), padded once in the collate.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
import soundfile
import torch
from annotated_types import Ge, Gt, Lt
from torch import Tensor
from torch.utils.data import Dataset

from attnlab.data import LoadContext, SourceData, Split
from attnlab.data.folders import folder_splits, require_root
from attnlab.data.splits import grouped_split
from attnlab.errors import ConfigError, DataError
from attnlab.types import Batch, Task
from attnlab_speech import synth
from attnlab_speech.audio import collate_audio, read_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
Label = int | list[int]
Fraction = Annotated[float, Gt(0), Lt(1)]
Rate = Annotated[int, Ge(1)]


class AudioClips(Dataset):
    """Clips read from files on access (or all at once with ``preload``), at ``sample_rate``."""

    def __init__(self, items: Sequence[tuple[Path, Label]], sample_rate: int, preload: bool = False) -> None:
        self.items, self.sample_rate = list(items), sample_rate
        self.waves: list[Tensor] | None = [read_audio(p, sample_rate) for p, _ in self.items] if preload else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        path, label = self.items[i]
        wave = self.waves[i] if self.waves is not None else read_audio(path, self.sample_rate)
        return {"inputs": wave, "target": label}


@functools.lru_cache(maxsize=4)
def _mel(sample_rate: int) -> Callable[[Tensor], Tensor]:
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=512, hop_length=sample_rate // 100, n_mels=40)


def pooled_logmel(wave: Tensor, sample_rate: int) -> np.ndarray:
    """Mean and standard deviation over time of 40 log-mel bands: ``(80,)``."""
    feats = (_mel(sample_rate)(wave.float()) + 1e-6).log()  # (40, frames)
    return torch.cat([feats.mean(1), feats.std(1, unbiased=False)]).numpy()


def decode_audio(path: Path) -> None:
    """Read every sample of ``path`` as the loader will (soundfile)."""
    soundfile.read(str(path), dtype="float32", always_2d=True)


def _check_rate(sample_rate: int) -> None:
    if sample_rate < 1:
        raise ConfigError(f"data.source.sample_rate={sample_rate} must be >= 1")


def _manifest(folder: Path, label: Callable[[str], Label]) -> tuple[list[tuple[Path, Label]], list[str]]:
    with open(folder / synth.MANIFEST, newline="") as f:
        rows = list(csv.DictReader(f))
    return [(folder / r["path"], label(r["label"])) for r in rows], [r["voice"] for r in rows]


def _cache(root: str | None, name: str) -> Path:
    if root is None:
        raise ConfigError(f"data.source.root is not set; give a cache folder for the generated {name}")
    return Path(root).expanduser()


def _held_out_voices(
    items: list[tuple[Path, Label]], voices: list[str], sample_rate: int, fractions: dict[str, float], seed: int
) -> list[Split]:
    """Preloaded splits with whole voices held out (small, resampled once instead of every epoch)."""
    clips = AudioClips(items, sample_rate, preload=True)
    assert clips.waves is not None
    lengths = np.asarray([len(w) for w in clips.waves])
    labels = None if isinstance(items[0][1], list) else np.asarray([label for _, label in items], dtype=np.int64)
    whole = Split(clips, labels=labels, lengths=lengths, origin=str(items[0][0].parent.parent))
    return [whole.subset(part) for part in grouped_split(voices, fractions, seed)]


@dataclass(frozen=True)
class DigitGeneration:
    """How :class:`SpokenDigits` is synthesised (smaller settings make a smaller dataset).

    Attributes:
        seed: drives speed and pitch of every take; same seed, same audio.
        per_voice: takes of each digit per voice.
        accents: espeak-ng accents; variants: voice variants. A voice is accent+variant.
    """

    seed: int = 0
    per_voice: Annotated[int, Ge(1)] = 2
    accents: tuple[str, ...] = synth.ACCENTS
    variants: tuple[str, ...] = synth.VARIANTS


@dataclass(frozen=True)
class DigitStringGeneration:
    """How :class:`SpokenDigitStrings` is synthesised.

    Attributes:
        seed: drives the digits, speed and pitch of every utterance.
        count: number of utterances.
        accents: espeak-ng accents; variants: voice variants.
    """

    seed: int = 0
    count: Annotated[int, Ge(1)] = 1200
    accents: tuple[str, ...] = synth.ACCENTS
    variants: tuple[str, ...] = synth.VARIANTS


def _collate(self: Any, examples: Sequence[dict[str, Any]]) -> Batch:
    return collate_audio(examples, self.sample_rate)


def _raw_features(self: Any, example: dict[str, Any]) -> np.ndarray:
    """Pooled log-mel statistics of the clip (:func:`pooled_logmel`): 80 features."""
    return pooled_logmel(example["inputs"], self.sample_rate)


@dataclass(frozen=True)
class SpokenDigits:
    """The words zero..nine synthesised with espeak-ng, generated once into ``root``.

    Args:
        root: the data cache the clips are generated into (and found in again).
        sample_rate: clips are resampled to this rate.
        val_fraction, test_fraction: shares of the *voices* held out.
        split_seed: fixes which voices are held out.
        generation: the synthesis settings.
    """

    predicts: ClassVar[Task] = "sequence"
    root: str | None = None
    sample_rate: Rate = 16000
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    split_seed: int = 0
    generation: DigitGeneration = field(default_factory=DigitGeneration)

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate)

    def load(self, context: LoadContext) -> SourceData:
        g = self.generation
        folder = synth.generate_digits(
            _cache(self.root, "spoken digits"),
            seed=g.seed,
            per_voice=g.per_voice,
            accents=g.accents,
            variants=g.variants,
        )
        items, voices = _manifest(folder, synth.DIGITS.index)
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        train, val, test = _held_out_voices(items, voices, self.sample_rate, fractions, self.split_seed)
        return SourceData(train, val, test, "sequence", list(synth.DIGITS), {"sample_rate": self.sample_rate})

    collate = _collate
    raw_features = _raw_features


@dataclass(frozen=True)
class SpokenDigitStrings:
    """Utterances of 3-8 digits, labelled with the digit sequence (a label sequence: CTC).

    Args:
        root: the data cache the clips are generated into.
        sample_rate: clips are resampled to this rate.
        val_fraction, test_fraction: shares of the voices held out.
        split_seed: fixes which voices are held out.
        generation: the synthesis settings.
    """

    predicts: ClassVar[Task] = "label_sequence"
    root: str | None = None
    sample_rate: Rate = 16000
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    split_seed: int = 0
    generation: DigitStringGeneration = field(default_factory=DigitStringGeneration)

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate)

    def load(self, context: LoadContext) -> SourceData:
        g = self.generation
        folder = synth.generate_digit_strings(
            _cache(self.root, "spoken digit strings"),
            seed=g.seed,
            count=g.count,
            accents=g.accents,
            variants=g.variants,
        )
        items, voices = _manifest(folder, lambda digits: [int(d) for d in digits])
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        train, val, test = _held_out_voices(items, voices, self.sample_rate, fractions, self.split_seed)
        names = [str(d) for d in range(10)]
        return SourceData(train, val, test, "label_sequence", names, {"sample_rate": self.sample_rate})

    collate = _collate


@dataclass(frozen=True)
class SpeechCommands:
    """Google Speech Commands v0.02 through torchaudio (35 words), with its official splits.

    Args:
        root: the folder holding ``SpeechCommands/`` (or where to download it).
        sample_rate: clips are resampled to this rate (native: 16 kHz).
        download: let torchaudio download the dataset into ``root`` (2.3 GB).
    """

    predicts: ClassVar[Task] = "sequence"
    root: str | None = None
    sample_rate: Rate = 16000
    download: bool = False

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate)

    FIX = "point data.source.root at the folder holding SpeechCommands/ or set data.source.download=true"

    def prepare(self) -> None:
        if self.download:
            from torchaudio.datasets import SPEECHCOMMANDS

            if self.root is None:
                raise ConfigError(f"data.source.root is not set; {self.FIX}")
            Path(self.root).expanduser().mkdir(parents=True, exist_ok=True)
            SPEECHCOMMANDS(str(Path(self.root).expanduser()), download=True)

    def load(self, context: LoadContext) -> SourceData:
        from torchaudio.datasets import SPEECHCOMMANDS

        root = require_root(self.root, "data.source.root", self.FIX)
        subsets = {}
        for subset in ("training", "validation", "testing"):
            try:
                ds = SPEECHCOMMANDS(str(root), download=False, subset=subset)
            except (FileNotFoundError, RuntimeError) as exc:
                raise DataError(f"data.source.root={root} holds no Speech Commands data ({exc}); {self.FIX}") from exc
            subsets[subset] = [ds.get_metadata(n) for n in range(len(ds))]
        names = sorted({m[2] for rows in subsets.values() for m in rows})
        if not names:
            raise DataError(f"data.source.root={root} holds no Speech Commands clips; {self.FIX}")
        index = {name: i for i, name in enumerate(names)}
        splits = []
        for rows in subsets.values():
            files = [root / "SpeechCommands" / m[0] for m in rows]
            labels = np.asarray([index[m[2]] for m in rows], dtype=np.int64)
            clips = AudioClips(list(zip(files, labels.tolist())), self.sample_rate)
            splits.append(Split(clips, labels=labels, files=files, origin=str(root / "SpeechCommands")))
        return SourceData(*splits, task="sequence", class_names=names, values={"sample_rate": self.sample_rate})

    collate = _collate
    raw_features = _raw_features

    def check_file(self, path: Path) -> None:
        decode_audio(path)


@dataclass(frozen=True)
class AudioFolder:
    """Your own audio: one sub-folder of WAV/FLAC/OGG/MP3 files per label (any rate, any channels).

    ``root/train/`` (``val/``, ``test/``) folders of label folders are used when present;
    splits without a folder are cut from the training pool. Files that cannot be decoded
    are found at set-up and skipped or refused (``data.bad_files``).

    Args:
        root: the folder of label folders.
        sample_rate: clips are mixed to mono and resampled to this rate.
        val_fraction, test_fraction: shares cut from the training pool, stratified.
        split_seed: fixes those cuts.
    """

    predicts: ClassVar[Task] = "sequence"
    root: str | None = None
    sample_rate: Rate = 16000
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        _check_rate(self.sample_rate)

    def load(self, context: LoadContext) -> SourceData:
        fix = "point data.source.root at a folder with one sub-folder of audio files per label"
        root = require_root(self.root, "data.source.root", fix)
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        names, parts = folder_splits(
            root, AUDIO_SUFFIXES, fractions, self.split_seed, lambda files: context.readable(files, decode_audio)
        )
        splits = [
            Split(
                AudioClips(list(zip(p.files, p.labels.tolist())), self.sample_rate),
                labels=p.labels,
                files=p.files,
                origin=p.origin,
            )
            for p in parts.values()
        ]
        return SourceData(*splits, task="sequence", class_names=names, values={"sample_rate": self.sample_rate})

    collate = _collate
    raw_features = _raw_features

    def check_file(self, path: Path) -> None:
        decode_audio(path)
