"""``attnlab --help``: what attnlab is, the tour and the config groups, without composing a config.

Hydra's own ``--help`` composes the whole config and then lists the options of each group
by copying its config repository once per group, which takes about as long as importing
torch; here the groups come from the config folders themselves (attnlab's ``conf/`` and
every working plugin's). ``--hydra-help``, ``--cfg`` and ``--info`` remain Hydra's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ABOUT = """\
attnlab: self-attention experiments across vision, speech and text on one shared backbone.
Modality plugins turn raw examples into tokens, one Transformer encoder (the same for every
modality) encodes them, a task head predicts. Lightning trains, Hydra composes each run
from config groups, Weights & Biases records it (offline without an API key).

Usage: attnlab [group=option ...] [key=value ...]        one run, in outputs/runs/<date>/<time>
       attnlab -m key=a,b [key=c,d ...]                  a sweep, in outputs/multirun/<date>/<time>
       attnlab-eval ckpt_path=<checkpoint> [key=value ...]
"""

TOUR = """\
attnlab                                     # ViT, 16x16 patches, on digits upsampled to 128x128 (64 tokens)
attnlab modality=cnn                        # the CNN baseline on the same data (backbone=none: no attention blocks)
attnlab modality=cnn backbone=tiny          # a CNN + self-attention hybrid: a group you name wins whole
attnlab modality=speech                     # keyword classification on synthesised spoken digits
attnlab experiment=speech_ctc               # speech recognition of digit strings (CTC, test/cer)
attnlab modality=text                       # ListOps (Long Range Arena), word tokens
attnlab experiment=listops_full             # the same, with the settings docs/text.md measured (lr, epochs)
attnlab modality=text tokenizer=bpe         # a BPE trained on the training split, saved in the run folder
attnlab experiment=listops_window           # truncated attention as a negative control on ListOps
attnlab backbone=small head.pooling=mean    # any config value, from the command line
attnlab backbone.positions=learned backbone.heads=2 seed=3
attnlab trainer.max_epochs=5 trainer.precision=bf16-mixed trainer.accelerator=gpu
attnlab compile=true                        # the forward pass through torch.compile
attnlab debug=fdr                           # one batch of train/val/test (fast_dev_run)
attnlab debug=overfit                       # overfit two batches: the loss should go to ~0
attnlab --cfg job                           # print the composed config and exit
attnlab backbone.attention.score=additive backbone.positions=rope   # attention variants
attnlab backbone=lstm                       # a recurrent baseline in the backbone's place
attnlab attention_maps=true                 # attention maps and rollout as PNGs and in W&B
attnlab -m backbone.heads=1,2,4 seed=1,2    # a Hydra multirun sweep (6 jobs), then its report
attnlab -m 'experiment=glob(cnn_vs_vit*)'   # presets sweep too
attnlab -m hparams_search=optuna            # Optuna TPE over lr, depth, heads, dropout, window
attnlab -m launcher=joblib seed=1,2,3,4     # jobs in parallel worker processes
attnlab trainer=ddp trainer.accelerator=cpu trainer.devices=2    # Lightning DDP (gloo on CPU)
attnlab-report                              # the newest sweep as a table, report.csv/.md/.png
attnlab-eval ckpt_path=outputs/runs/<date>/<time>/checkpoints/best.ckpt
attnlab-plugins                             # the discovered modality plugins
attnlab-plugins new mymodality              # a complete plugin package to start from
"""
"""The README's tour, line for line (``tests/test_startup.py`` keeps the two the same)."""

NEXT = """\
Any value: key=value (e.g. backbone.dim=128); a key the config lacks: +key=value.

attnlab --cfg job [overrides]   the composed config, and exit (--resolve to resolve it)
attnlab --info                  where each config comes from (search path, defaults)
attnlab --hydra-help            Hydra's own options
More: README.md and docs/ in attnlab's repository.
"""


def wants_help(argv: Sequence[str]) -> bool:
    """True when the command line asks for help (Hydra's ``-h``/``--help``)."""
    return "--help" in argv or "-h" in argv


def config_groups(roots: Sequence[Path]) -> dict[str, list[str]]:
    """Each config group under ``roots`` (``hydra/`` aside) and its options, by name.

    A group is a folder of YAML files, named by its path below a root (``hydra/launcher``
    style for nested ones); the options of a group are merged across roots.
    """
    groups: dict[str, set[str]] = {}
    for root in roots:
        for path in root.rglob("*.yaml"):
            group = path.parent.relative_to(root).as_posix()
            if group != "." and group.split("/")[0] != "hydra":
                groups.setdefault(group, set()).add(path.stem)
    return {group: sorted(options) for group, options in sorted(groups.items())}


def text(roots: Sequence[Path]) -> str:
    """The whole help: about, tour, the groups found under ``roots``, what to do next."""
    groups = "\n".join(f"{group}: {', '.join(options)}" for group, options in config_groups(roots).items())
    sections = [ABOUT, f"== A tour ==\n{TOUR}", f"== Config groups: choose with group=option ==\n{groups}\n", NEXT]
    return "\n".join(sections)
