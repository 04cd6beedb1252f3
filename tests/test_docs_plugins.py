"""docs/plugins.md as a script: every command in it runs, every file it shows is used.

The guide is read block by block, in order:

- ```` ```console ```` blocks: each line starting with ``$ `` is a command, run in a
  temporary folder; it must exit with 0. Other lines are output and are not compared.
- ```` ```<lang> file=<path> ```` blocks: written to ``<path>`` in that folder.
- ```` ```<lang> excerpt=<path> ```` blocks: each code line (comments and indentation
  aside) must appear in ``<path>``, in order, when the block is reached.

The guide's commands run in a throwaway environment on top of this one (``pip``,
``attnlab``, ``python`` of this environment, see :func:`helpers.overlay_environment`), so the
guide's plugin, installed by its own ``pip install -e`` (without build isolation, so no
network is needed), is seen by no other test; it is uninstalled in a ``finally``.
"""

from __future__ import annotations

import os
import re
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from attnlab import contract, scaffold
from conftest import ROOT
from helpers import overlay_environment

GUIDE = ROOT / "docs" / "plugins.md"
DIST = "attnlab-tabular"
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", re.S | re.M)


@dataclass(frozen=True)
class Step:
    kind: str  # "run", "file" or "excerpt"
    text: str
    path: str = ""


def steps(markdown: str) -> list[Step]:
    """The guide's commands, files and excerpts, in order."""
    found = []
    for lang, info, body in FENCE.findall(markdown):
        options = dict(part.split("=", 1) for part in info.split() if "=" in part)
        if lang == "console":
            found += [Step("run", line[2:]) for line in body.splitlines() if line.startswith("$ ")]
        elif "file" in options:
            found.append(Step("file", body, options["file"]))
        elif "excerpt" in options:
            found.append(Step("excerpt", body, options["excerpt"]))
    return found


def code_lines(text: str) -> list[str]:
    lines = (re.sub(r"\s+#.*$|^\s*#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def assert_excerpt(excerpt: str, path: Path) -> None:
    remaining = iter(code_lines(path.read_text()))
    for line in code_lines(excerpt):
        assert any(line == other for other in remaining), f"guide excerpt line {line!r} is not in {path} (in order)"


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_guide_is_read_as_a_script():
    found = steps(GUIDE.read_text())
    commands = [s.text for s in found if s.kind == "run"]
    assert commands[0] == "attnlab-plugins new tabular --kind set" and commands[-1] == f"pip uninstall -y {DIST}"
    assert len(commands) >= 10 and sum(s.kind == "excerpt" for s in found) >= 5
    written = {Path(s.path).name for s in found if s.kind == "file"}
    assert {"cancer.py", "breast_cancer.yaml", "__init__.py"} <= written
    assert any("data=breast_cancer" in c and "attention_maps=true" in c for c in commands)


def test_the_guide_shows_every_kind_of_tokens():
    text = GUIDE.read_text()
    assert all(f"| `{kind}` |" in text and f"--kind {kind}" in text for kind in scaffold.KINDS)


def test_the_guide_names_every_contract_check():
    text = GUIDE.read_text()
    assert all(f"| `{check}` |" in text for check in contract.CHECKS)


def test_every_command_in_the_guide_runs(tmp_path):
    bin_dir = overlay_environment(tmp_path / "env")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",  # pip, attnlab, pytest, python of this environment
        "VIRTUAL_ENV": str(bin_dir.parent),
        "WANDB_MODE": "offline",
        "ATTNLAB_DATA": str(tmp_path / "data"),
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's inverted switch: 0 turns build isolation off (no network)
        "PIP_NO_INDEX": "1",
        "COLUMNS": "300",
    }
    try:
        for step in steps(GUIDE.read_text()):
            if step.kind == "file":
                (tmp_path / step.path).write_text(step.text)
            elif step.kind == "excerpt":
                assert_excerpt(step.text, tmp_path / step.path)
            else:
                result = run(step.text, tmp_path, env)
                assert result.returncode == 0, f"$ {step.text}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    finally:
        run(f"pip uninstall -y -q {DIST}", tmp_path, env)
    wheel = next((tmp_path / "dist").glob("attnlab_tabular-0.1.0-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "attnlab_tabular/conf/modality/tabular.yaml" in names
        and "attnlab_tabular/conf/data/breast_cancer.yaml" in names
    )
