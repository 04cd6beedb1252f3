"""Audio datasets as a LightningDataModule.

- ``spoken_digits``: synthesised zero..nine (espeak-ng, generated once into the data cache);
  whole voices are held out for validation and testing.
- ``spoken_digit_strings``: 3-8 digit utterances labelled with the digit sequence (CTC).
- ``speechcommands``: torchaudio's SPEECHCOMMANDS file lists with its official splits.
- ``audiofolder``: one sub-folder per label of audio files; seeded stratified splits.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import pytorch_lightning as pl
from annotated_types import Ge, Interval
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from attnlab.errors import ConfigError, DataError
from attnlab.splits import grouped_split, stratified_split
from attnlab_speech import synth
from attnlab_speech.audio import collate_audio, read_audio

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
Label = int | list[int]


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


@dataclass
class AudioSplits:
    train: list[tuple[Path, Label]]
    val: list[tuple[Path, Label]]
    test: list[tuple[Path, Label]]
    labels: list[str]


def _pick(items: list[tuple[Path, Label]], parts: Sequence[Sequence[int]]) -> list[list[tuple[Path, Label]]]:
    return [[items[i] for i in part] for part in parts]


def _manifest(folder: Path, label: Callable[[str], Label]) -> tuple[list[tuple[Path, Label]], list[str]]:
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [(folder / r["path"], label(r["label"])) for r in rows], [r["voice"] for r in rows]


@dataclass(frozen=True)
class Generation:
    """How the embedded datasets are synthesised (smaller settings make smaller datasets).

    Attributes:
        seed: drives speed and pitch of every take; same seed, same audio.
        per_voice: takes of each digit per voice (``spoken_digits``).
        count: number of utterances (``spoken_digit_strings``).
        accents: espeak-ng accents; variants: voice variants. A voice is accent+variant.
    """

    seed: int = 0
    per_voice: int = 2
    count: int = 1200
    accents: tuple[str, ...] = synth.ACCENTS
    variants: tuple[str, ...] = synth.VARIANTS


def load_spoken_digits(
    root: Path, generation: Generation, val_fraction: float, test_fraction: float, split_seed: int, **_: Any
) -> AudioSplits:
    g = generation
    folder = synth.generate_digits(root, seed=g.seed, per_voice=g.per_voice, accents=g.accents, variants=g.variants)
    items, voices = _manifest(folder, synth.DIGITS.index)
    train, val, test = _pick(items, grouped_split(voices, [val_fraction, test_fraction], split_seed))
    return AudioSplits(train, val, test, labels=list(synth.DIGITS))


def load_spoken_digit_strings(
    root: Path, generation: Generation, val_fraction: float, test_fraction: float, split_seed: int, **_: Any
) -> AudioSplits:
    g = generation
    folder = synth.generate_digit_strings(root, seed=g.seed, count=g.count, accents=g.accents, variants=g.variants)
    items, voices = _manifest(folder, lambda digits: [int(d) for d in digits])
    train, val, test = _pick(items, grouped_split(voices, [val_fraction, test_fraction], split_seed))
    return AudioSplits(train, val, test, labels=[str(d) for d in range(10)])


def _require(root: Path | None, fix: str) -> Path:
    if root is None:
        raise ConfigError(f"data.root is not set; {fix}")
    if not root.exists():
        raise DataError(f"data.root={root} does not exist; {fix}")
    return root


def load_speechcommands(root: Path | None, download: bool, **_: Any) -> AudioSplits:
    from torchaudio.datasets import SPEECHCOMMANDS

    fix = "point data.root at the folder holding SpeechCommands/ or set data.download=true"
    if download and root is not None:
        root.mkdir(parents=True, exist_ok=True)
    root = _require(root, fix)
    subsets = {}
    for subset in ("training", "validation", "testing"):
        try:
            ds = SPEECHCOMMANDS(str(root), download=download, subset=subset)
        except (FileNotFoundError, RuntimeError) as exc:
            raise DataError(f"data.root={root} holds no Speech Commands data ({exc}); {fix}") from exc
        subsets[subset] = [ds.get_metadata(n) for n in range(len(ds))]
    labels = sorted({m[2] for rows in subsets.values() for m in rows})
    if not labels:
        raise DataError(f"data.root={root} holds no Speech Commands clips; {fix}")
    index = {name: i for i, name in enumerate(labels)}
    parts = [[(root / "SpeechCommands" / m[0], index[m[2]]) for m in subsets[s]] for s in subsets]
    return AudioSplits(*parts, labels=labels)


def load_audiofolder(
    root: Path | None, val_fraction: float, test_fraction: float, split_seed: int, **_: Any
) -> AudioSplits:
    root = _require(root, "point data.root at a folder with one sub-folder of audio files per label")
    labels = sorted(d.name for d in root.iterdir() if d.is_dir())
    items = [
        (f, i)
        for i, name in enumerate(labels)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in AUDIO_SUFFIXES
    ]
    if not items:
        raise DataError(f"data.root={root} has no audio files ({', '.join(AUDIO_SUFFIXES)}) in label sub-folders")
    parts = stratified_split([label for _, label in items], [val_fraction, test_fraction], split_seed)
    return AudioSplits(*_pick(items, parts), labels=labels)


DATASETS: dict[str, Callable[..., AudioSplits]] = {
    "spoken_digits": load_spoken_digits,
    "spoken_digit_strings": load_spoken_digit_strings,
    "speechcommands": load_speechcommands,
    "audiofolder": load_audiofolder,
}
EMBEDDED = ("spoken_digits", "spoken_digit_strings")


class AudioDataModule(pl.LightningDataModule):
    """Audio classification or recognition data for the speech plugin.

    Batches are ``inputs`` ``(B, S)`` waveforms at ``sample_rate``, ``lengths`` ``(B,)`` and
    ``target`` (plus ``target_lengths`` for label sequences), padded once in the collate.

    Args:
        dataset: one of ``spoken_digits``, ``spoken_digit_strings``, ``speechcommands``, ``audiofolder``.
        root: data folder (the cache for the embedded datasets).
        sample_rate: every clip is resampled to this rate.
        batch_size: clips per batch.
        num_workers: DataLoader worker processes.
        val_fraction, test_fraction: held-out shares (of voices for the embedded datasets).
        split_seed: fixes the splits, independently of the training seed.
        download: let torchaudio download ``speechcommands`` into ``root``.
        generation: synthesis settings of the embedded datasets.
    """

    def __init__(
        self,
        dataset: str,
        root: str | None = None,
        sample_rate: Annotated[int, Ge(1)] = 16000,
        batch_size: Annotated[int, Ge(1)] = 32,
        num_workers: Annotated[int, Ge(0)] = 0,
        val_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.1,
        test_fraction: Annotated[float, Interval(ge=0, lt=1)] = 0.2,
        split_seed: Annotated[int, Ge(0)] = 0,
        download: bool = False,
        generation: Generation | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise ConfigError(f"unknown audio dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
        self.dataset, self.sample_rate = dataset, sample_rate
        self.batch_size, self.num_workers = batch_size, num_workers
        self.options = dict(
            root=Path(root).expanduser() if root is not None else None,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            split_seed=split_seed,
            download=download,
            generation=generation or Generation(),
        )
        self.splits: AudioSplits | None = None
        self.data: dict[str, AudioClips] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        if self.dataset in EMBEDDED and self.options["root"] is None:
            raise ConfigError(f"data.root is not set; give a cache folder for the generated {self.dataset}")
        self.splits = DATASETS[self.dataset](**self.options)
        preload = self.dataset in EMBEDDED  # small, and resampled once instead of every epoch
        for name in ("train", "val", "test"):
            self.data[name] = AudioClips(getattr(self.splits, name), self.sample_rate, preload=preload)

    @property
    def class_names(self) -> list[str]:
        """Label names in class order (the confusion matrix's axes)."""
        self.setup()
        assert self.splits is not None
        return list(self.splits.labels)

    def data_info(self) -> dict[str, Any]:
        """``num_classes`` and ``sample_rate`` for the model."""
        self.setup()
        assert self.splits is not None
        return {"num_classes": len(self.splits.labels), "sample_rate": self.sample_rate}

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(
            self.data[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=partial(collate_audio, sample_rate=self.sample_rate),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
