"""Training-step speed of attnlab's backbone against PyTorch's reference implementations.

Two comparisons, each one full training step (forward, loss, backward, AdamW step with
``zero_grad(set_to_none=True)``) in float32 on the CPU, models in train mode with every
dropout at 0 so both sides do the same work:

1. ``backbone``: ``attnlab.backbone.Encoder`` (dim 192, depth 6, 3 heads, MLP ratio 4,
   no positions, no CLS token) against ``nn.TransformerEncoder`` built from
   ``nn.TransformerEncoderLayer(norm_first=True, activation="gelu")`` with a final
   LayerNorm, on the same ``(32, 256, 192)`` input; loss = mean of the output.
2. ``vision``: attnlab's ViT (``PatchEmbed`` -> ``Encoder`` with learned positions and a
   CLS token -> ``SequenceHead`` with CLS pooling) against
   ``torchvision.models.VisionTransformer`` of the same size, on 32 images of
   ``3 x 224 x 224``; loss = cross entropy on random labels.

Method: a few warm-up steps per side, then interleaved A/B repetitions: each repetition
times one step of ours and one of theirs with ``time.perf_counter``, alternating which
goes first. Reported: the median step time of each side and the median of the paired
ratios ``ours / theirs`` (below 1.0 means attnlab is faster).

Usage::

    python benchmarks/backbone_vs_torch.py [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from bench_output import write_json
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn

from attnlab.backbone import Encoder
from attnlab.heads import SequenceHead
from attnlab.types import Encoded, Tokens
from attnlab_vision import PatchEmbed

DIM, DEPTH, HEADS, MLP_RATIO = 192, 6, 3, 4.0
BATCH, SEQ_LEN = 32, 256
IMAGE_SIZE, PATCH_SIZE, CHANNELS, NUM_CLASSES = 224, 16, 3, 10
LR = 1e-4
SEED = 0

Step = Callable[[], None]


@dataclass
class Comparison:
    """The timings of one ours-versus-theirs comparison."""

    name: str
    theirs_label: str
    config: dict[str, Any]
    ours_params: int
    theirs_params: int
    ours_s: list[float] = field(default_factory=list)
    theirs_s: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        return [o / t for o, t in zip(self.ours_s, self.theirs_s, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def as_dict(self) -> dict[str, Any]:
        return {
            "theirs": self.theirs_label,
            "config": self.config,
            "repetitions": len(self.ours_s),
            "ours_median_ms": 1e3 * statistics.median(self.ours_s),
            "theirs_median_ms": 1e3 * statistics.median(self.theirs_s),
            "ours_min_ms": 1e3 * min(self.ours_s),
            "theirs_min_ms": 1e3 * min(self.theirs_s),
            "ratio_median_of_paired": self.ratio,
            "ratio_of_min_times": min(self.ours_s) / min(self.theirs_s),
            "paired_ratios": self.ratios,
            "ours_ms": [1e3 * s for s in self.ours_s],
            "theirs_ms": [1e3 * s for s in self.theirs_s],
            "ours_params": self.ours_params,
            "theirs_params": self.theirs_params,
        }


class AttnlabViT(nn.Module):
    """attnlab's vision path: patch tokens -> shared encoder -> CLS classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = PatchEmbed(in_channels=CHANNELS, image_size=IMAGE_SIZE, dim=DIM, patch_size=PATCH_SIZE)
        self.encoder = Encoder(
            dim=DIM,
            depth=DEPTH,
            heads=HEADS,
            mlp_ratio=MLP_RATIO,
            dropout=0.0,
            positions="learned",
            max_len=256,
            cls_token=True,
        )
        self.head = SequenceHead(dim=DIM, num_classes=NUM_CLASSES, pooling="cls")

    def forward(self, images: Tensor) -> Tensor:
        enc: Encoded = self.encoder(self.frontend({"inputs": images}))
        return self.head(enc)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_step(model: nn.Module, loss_fn: Callable[[nn.Module], Tensor]) -> Step:
    """One training step of ``model``: zero grads, forward + loss, backward, AdamW step."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model).backward()
        opt.step()

    return step


def backbone_pair() -> tuple[Step, Step, Comparison]:
    """attnlab ``Encoder`` versus ``nn.TransformerEncoder`` on ``(BATCH, SEQ_LEN, DIM)``."""
    torch.manual_seed(SEED)
    x = torch.randn(BATCH, SEQ_LEN, DIM)
    tokens = Tokens(x=x, pad_mask=torch.ones(BATCH, SEQ_LEN, dtype=torch.bool))
    ours = Encoder(
        dim=DIM, depth=DEPTH, heads=HEADS, mlp_ratio=MLP_RATIO, dropout=0.0, positions="none", cls_token=False
    )
    torch.manual_seed(SEED)
    layer = nn.TransformerEncoderLayer(
        d_model=DIM,
        nhead=HEADS,
        dim_feedforward=int(DIM * MLP_RATIO),
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    theirs = nn.TransformerEncoder(layer, num_layers=DEPTH, norm=nn.LayerNorm(DIM), enable_nested_tensor=False)
    comp = Comparison(
        name="backbone",
        theirs_label="nn.TransformerEncoder",
        config={"input_shape": [BATCH, SEQ_LEN, DIM], "depth": DEPTH, "heads": HEADS, "mlp_dim": int(DIM * MLP_RATIO)},
        ours_params=count_params(ours),
        theirs_params=count_params(theirs),
    )
    ours_step = make_step(ours, lambda m: m(tokens).x.float().mean())
    theirs_step = make_step(theirs, lambda m: m(x).float().mean())
    return ours_step, theirs_step, comp


def vision_pair() -> tuple[Step, Step, Comparison]:
    """attnlab's ViT versus ``torchvision.models.VisionTransformer`` on ``(BATCH, 3, 224, 224)``."""
    torch.manual_seed(SEED)
    images = torch.randn(BATCH, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    labels = torch.randint(0, NUM_CLASSES, (BATCH,))
    ours = AttnlabViT()
    torch.manual_seed(SEED)
    theirs = torchvision.models.VisionTransformer(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_layers=DEPTH,
        num_heads=HEADS,
        hidden_dim=DIM,
        mlp_dim=int(DIM * MLP_RATIO),
        num_classes=NUM_CLASSES,
        dropout=0.0,
        attention_dropout=0.0,
    )
    comp = Comparison(
        name="vision",
        theirs_label="torchvision ViT",
        config={
            "input_shape": [BATCH, CHANNELS, IMAGE_SIZE, IMAGE_SIZE],
            "patch_size": PATCH_SIZE,
            "tokens": (IMAGE_SIZE // PATCH_SIZE) ** 2 + 1,
            "depth": DEPTH,
            "heads": HEADS,
            "mlp_dim": int(DIM * MLP_RATIO),
            "num_classes": NUM_CLASSES,
        },
        ours_params=count_params(ours),
        theirs_params=count_params(theirs),
    )
    ours_step = make_step(ours, lambda m: F.cross_entropy(m(images), labels))
    theirs_step = make_step(theirs, lambda m: F.cross_entropy(m(images), labels))
    return ours_step, theirs_step, comp


def timed(step: Step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def run_pair(ours: Step, theirs: Step, comp: Comparison, warmup: int, reps: int) -> Comparison:
    """Warm both sides up, then time ``reps`` interleaved pairs, alternating the order."""
    for _ in range(warmup):
        ours()
        theirs()
    for rep in range(reps):
        if rep % 2 == 0:
            comp.ours_s.append(timed(ours))
            comp.theirs_s.append(timed(theirs))
        else:
            comp.theirs_s.append(timed(theirs))
            comp.ours_s.append(timed(ours))
    return comp


def render(comps: list[Comparison], quick: bool) -> Table:
    mode = "quick" if quick else "full"
    table = Table(
        title=f"attnlab vs torch, train step (fwd+bwd+AdamW), fp32 CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, {mode}"
    )
    table.add_column("comparison")
    table.add_column("theirs")
    for col in ("reps", "ours ms", "theirs ms", "ratio ours/theirs", "ours params", "theirs params"):
        table.add_column(col, justify="right")
    for c in comps:
        d = c.as_dict()
        table.add_row(
            c.name,
            c.theirs_label,
            str(d["repetitions"]),
            f"{d['ours_median_ms']:.1f}",
            f"{d['theirs_median_ms']:.1f}",
            f"{c.ratio:.3f}",
            f"{c.ours_params:,}",
            f"{c.theirs_params:,}",
        )
    return table


def report(comps: list[Comparison], quick: bool, warmup: int) -> dict[str, Any]:
    by_name = {c.name: c for c in comps}
    return {
        "ratio_vs_nn_transformer": by_name["backbone"].ratio,
        "ratio_vs_torchvision_vit": by_name["vision"].ratio,
        "ratio_definition": "median over repetitions of (ours step time / theirs step time), paired",
        "step": "zero_grad(set_to_none) + forward + loss + backward + AdamW(lr=1e-4).step, train mode, dropout 0",
        "device": "cpu",
        "dtype": "float32",
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "num_threads": torch.get_num_threads(),
        "quick": quick,
        "warmup": warmup,
        "seed": SEED,
        "comparisons": {c.name: c.as_dict() for c in comps},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 warm-up step and 4 repetitions per comparison")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()
    warmup, reps = (1, 4) if args.quick else (3, 15)
    console = Console()
    if not console.is_terminal:
        console.width = 120  # keep the table unwrapped when piped to a file
    comps = []
    for build in (backbone_pair, vision_pair):
        ours, theirs, comp = build()
        with console.status(f"timing {comp.name} ({warmup} warm-up, {reps} paired repetitions)"):
            comps.append(run_pair(ours, theirs, comp, warmup, reps))
    console.print(render(comps, args.quick))
    console.print(
        "ratio = median of paired (ours / theirs) step times; < 1 means attnlab is faster. "
        "Vision param gap: attnlab's learned position table has max_len=256 rows, torchvision's 197."
    )
    if args.json is not None:
        write_json(args.json, report(comps, args.quick, warmup), console)


if __name__ == "__main__":
    main()
