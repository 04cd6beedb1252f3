"""A real speech folder attnlab does not embed: ten Speech Commands words spoken by Debian's flite.

Voices kal, kal16, awb, rms and slt (diphone and clustergen voices, unlike the embedded
espeak-ng formant voices); each take gets a random tempo (0.8-1.25), pitch shift (-300..+300
cents) and gain (sox), and sits at a random offset in a one-second 16 kHz clip of digital
silence, as Speech Commands clips do. Layout: ``<out>/<word>/<voice>_<take>.wav``. sox
dithers when it writes 16 bits, so two builds differ by a few least significant bits (at
most 4e-4 of full scale seen); the words, voices, tempi, pitches, gains and offsets are the seed's.
docs/recipes.md measures the speech default on the folder this makes with the defaults
below (370 clips)::

    apt-get install flite sox
    python benchmarks/realdata/make_speech.py --out data/flite_words
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
VOICES = ["kal", "kal16", "awb", "rms", "slt"]
RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-word", type=int, default=37)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw, shaped = Path(tmp) / "raw.wav", Path(tmp) / "shaped.wav"
        for word in WORDS:
            folder = Path(args.out) / word
            folder.mkdir(parents=True, exist_ok=True)
            for take in range(args.per_word):
                voice = VOICES[take % len(VOICES)]
                tempo, cents, gain = rng.uniform(0.8, 1.25), rng.uniform(-300, 300), rng.uniform(0.3, 0.9)
                subprocess.run(["flite", "-voice", voice, "-t", word, "-o", str(raw)], check=True)
                trim = ["silence", "1", "0.01", "0.1%", "reverse"]  # cut leading and trailing silence
                shape = ["tempo", f"{tempo:.3f}", "pitch", f"{cents:.0f}", *trim, *trim]
                convert = ["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(shaped)]
                subprocess.run([*convert, *shape], check=True)
                wave, _ = soundfile.read(str(shaped), dtype="float32")
                wave = wave[:RATE] / max(np.abs(wave[:RATE]).max(), 1e-6) * gain
                clip = np.zeros(RATE, dtype=np.float32)
                offset = rng.randint(0, RATE - len(wave))
                clip[offset : offset + len(wave)] = wave
                soundfile.write(str(folder / f"{voice}_{take:02d}.wav"), clip, RATE, subtype="PCM_16")
            print(word, args.per_word)


if __name__ == "__main__":
    main()
