"""Speech feature extraction throughput, in seconds of audio per second, on one CPU thread.

Times the speech plugin's ``Features`` module in evaluation mode (no SpecAugment) on a
batch of padded waveforms: batched log-mel (``torchaudio.transforms.MelSpectrogram``) and
per-clip Kaldi ``fbank``, each followed by per-utterance normalisation. Reports the median
over repetitions after a warm-up. ``x_realtime`` is the batched log-mel figure.

    python benchmarks/speech_features.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_output import write_json
from rich.console import Console
from rich.table import Table

from attnlab_speech import Features

RATE = 16000


def make_batch(clips: int, seconds: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy chirps of 50-100% of ``seconds``, zero-padded into ``(clips, S)``."""
    gen = torch.Generator().manual_seed(seed)
    lengths = (torch.rand(clips, generator=gen) * 0.5 + 0.5) * seconds * RATE
    lengths = lengths.long()
    waves = torch.zeros(clips, int(lengths.max()))
    for i, n in enumerate(lengths.tolist()):
        t = torch.arange(n) / RATE
        waves[i, :n] = 0.3 * torch.sin(2 * torch.pi * (200 + 400 * t) * t) + 0.02 * torch.randn(n, generator=gen)
    return waves, lengths


def throughput(kind: str, waves: torch.Tensor, lengths: torch.Tensor, reps: int) -> dict[str, float]:
    features = Features(RATE, kind=kind, n_mels=80, normalize="utterance").eval()
    audio_seconds = float(lengths.sum()) / RATE
    with torch.inference_mode():
        features(waves, lengths)  # warm-up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            features(waves, lengths)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"audio_seconds": audio_seconds, "median_s": median, "x_realtime": audio_seconds / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller batch and fewer repetitions")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips, seconds, reps = (16, 4.0, 3) if args.quick else (64, 8.0, 7)
    waves, lengths = make_batch(clips, seconds)
    rows = {kind: throughput(kind, waves, lengths, reps) for kind in ("logmel", "fbank")}

    table = Table(
        title=f"speech features, 1 thread, batch of {clips} clips ({float(lengths.sum()) / RATE:.0f} s of audio)"
    )
    for column in ("features", "median s", "x real time"):
        table.add_column(column, justify="right")
    for kind, row in rows.items():
        table.add_row(
            kind + (" (batched)" if kind == "logmel" else " (per clip)"),
            f"{row['median_s']:.4f}",
            f"{row['x_realtime']:.0f}",
        )
    Console().print(table)
    result = {
        "x_realtime": rows["logmel"]["x_realtime"],
        "fbank_x_realtime": rows["fbank"]["x_realtime"],
        "clips": clips,
        "threads": 1,
        "repetitions": reps,
        "quick": args.quick,
        "rows": rows,
        "torch": torch.__version__,
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
