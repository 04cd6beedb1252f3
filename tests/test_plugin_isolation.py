"""Broken plugins (import error, duplicate name, contract breaks) never take the others down.

The broken plugins are throwaway distributions (a ``*.dist-info`` with an
``entry_points.txt`` next to their package) in a temporary folder: importlib.metadata
finds them on ``sys.path``, so tests add that folder to ``sys.path`` in-process, or to
``PYTHONPATH`` for the console scripts. Nothing is installed into the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from attnlab import config, contract, plugins
from attnlab.errors import ConfigError
from conftest import BIN

FRONTEND = """
import torch
from torch import nn

from attnlab.types import Tokens
from attnlab_vision import SOURCES, PatchEmbed


class Frontend(nn.Module):
    def __init__(self, in_channels: int, image_size: int, dim: int) -> None:
        super().__init__()
        self.embed = PatchEmbed(in_channels, image_size, dim + WIDTH_ERROR)

    def forward(self, batch):
        tokens = self.embed(batch)
        x = tokens.x.detach() if DETACH else tokens.x
        pad_mask = ~tokens.pad_mask if INVERT else tokens.pad_mask
        return Tokens(x=x, pad_mask=pad_mask, positions=tokens.positions)


plugin = Plugin(
    name="NAME",
    description="a deliberately broken test plugin",
    config_dir=Path(__file__).parent / "conf",
    frontends=(Frontend,),
    sources=SOURCES,
)
"""

MODALITY = """
# @package _global_
defaults:
  - override /data: digits
frontend:
  _target_: attnlab_NAME.Frontend
  in_channels: ${from_data:in_channels}
  image_size: ${from_data:image_size}
  dim: ${backbone.dim}
"""

CONTRACT_BREAKS = {
    # name: (width error, detach, invert, failed check, expected detail)
    "wide": (1, False, False, "tokens", "expected x of shape (4, T, 32), got (4, 64, 33)"),
    "inverted": (0, False, True, "pad mask", "expected at least one real token (True) per example"),
    "detached": (0, True, False, "backward", "expected a gradient in the front-end's parameters"),
}


def write_dist(site: Path, dist: str, entry_points: dict[str, str]) -> None:
    """A distribution ``dist`` registering ``entry_points`` (name → ``module:attr``)."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"  # the folder name is the normalised name
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (info / "entry_points.txt").write_text("[attnlab.plugins]\n" + "\n".join(lines) + "\n")


def write_plugin(site: Path, name: str, width_error: int = 0, detach: bool = False, invert: bool = False) -> None:
    """A plugin ``name`` on the vision data whose front-end breaks the contract as asked."""
    package = site / f"attnlab_{name}"
    (package / "conf" / "modality").mkdir(parents=True)
    flags = f"WIDTH_ERROR = {width_error}\nDETACH = {detach}\nINVERT = {invert}\n"
    head = "from pathlib import Path\n\nfrom attnlab.plugins import Plugin\n\n" + flags
    (package / "__init__.py").write_text(head + FRONTEND.replace("NAME", name))
    (package / "conf" / "modality" / f"{name}.yaml").write_text(textwrap.dedent(MODALITY).replace("NAME", name))
    write_dist(site, f"attnlab-{name}", {name: f"attnlab_{name}:plugin"})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of broken plugins, and one working plugin that is registered twice."""
    root = tmp_path_factory.mktemp("broken-plugins")
    (root / "attnlab_crashing").mkdir()
    (root / "attnlab_crashing" / "__init__.py").write_text("raise RuntimeError('the plugin could not start')\n")
    write_dist(root, "attnlab-crashing", {"crashing": "attnlab_crashing:plugin"})
    for name, (width, detach, invert, _, _) in CONTRACT_BREAKS.items():
        write_plugin(root, name, width, detach, invert)
    write_plugin(root, "twice")
    write_dist(root, "attnlab-twice-again", {"twice": "attnlab_twice:plugin"})
    return root


@pytest.fixture
def on_path(site: Path) -> Iterator[Path]:
    """The broken plugins discoverable in this process, for the test only."""
    plugins.discover.cache_clear()
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        for module in [
            m for m in sys.modules if m.split(".")[0] in {f"attnlab_{n}" for n in (*CONTRACT_BREAKS, "twice")}
        ]:
            del sys.modules[module]
        plugins.discover.cache_clear()


def start(site: Path, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(site), "COLUMNS": "300"}  # no wrapped rows
    return subprocess.Popen([*args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def script(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return result(start(site, *args, cwd=cwd))


def test_broken_plugins_are_recorded_with_their_reason(on_path):
    records = plugins.discover()
    assert records["crashing"].error == "import failed: RuntimeError: the plugin could not start"
    assert records["twice"].error == (
        "registered twice: by attnlab-twice 0.1 (attnlab_twice:plugin) "
        "and by attnlab-twice-again 0.1 (attnlab_twice:plugin)"
    )
    assert all(records[n].ok for n in ("vision", "cnn", *CONTRACT_BREAKS))
    assert "crashing" not in plugins.available() and "twice" not in plugins.available()


@pytest.mark.parametrize("name", ["crashing", "twice"])
def test_choosing_a_broken_plugin_fails_in_one_line_naming_it(on_path, name):
    with pytest.raises(ConfigError) as info:
        config.check_choices([f"modality={name}"])
    message = str(info.value)
    assert message.startswith(f"modality plugin {name!r} is broken: ") and f"attnlab-{name} 0.1" in message
    assert "\n" not in message
    config.check_choices(["modality=vision"])


@pytest.mark.parametrize("name", sorted(CONTRACT_BREAKS))
def test_contract_breaks_name_the_plugin_the_check_and_the_expectation(on_path, name):
    *_, check, detail = CONTRACT_BREAKS[name]
    with pytest.raises(contract.ContractError) as info:
        contract.run_checks(name)
    assert (info.value.plugin, info.value.check) == (name, check)
    assert str(info.value).startswith(f"plugin {name!r} failed check {check!r}: ")
    assert detail in str(info.value)


def test_a_plugin_that_fails_to_import_fails_the_first_check(on_path):
    with pytest.raises(contract.ContractError, match=r"'crashing' failed check 'plugin loads': import failed"):
        contract.run_checks("crashing")


def test_console_scripts_with_broken_plugins_installed(site, tmp_path):
    procs = [  # three independent commands, side by side
        start(site, str(BIN / "attnlab-plugins"), cwd=tmp_path),
        start(site, str(BIN / "attnlab"), "modality=crashing", "logger=csv", cwd=tmp_path),
        start(site, str(BIN / "attnlab-plugins"), "check", "vision", "wide", "crashing", cwd=tmp_path),
    ]
    listed, broken, checked = (result(p) for p in procs)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.startswith("│ ")}
    assert "broken" in rows["crashing"] and "import failed: RuntimeError" in rows["crashing"]
    assert "broken" in rows["twice"] and "registered" in rows["twice"]
    assert " ok " in rows["vision"] and " ok " in rows["wide"]

    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    errors = [line for line in broken.stderr.splitlines() if "error" in line]
    assert errors == [
        "attnlab: error: modality plugin 'crashing' is broken: import failed: RuntimeError: the plugin could not start"
        " (from attnlab-crashing 0.1 (attnlab_crashing:plugin))"
    ], broken.stderr

    assert checked.returncode == 1, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].startswith(f"ok   vision: {len(contract.CHECKS)} checks passed")
    assert lines[1] == "FAIL wide: plugin 'wide' failed check 'tokens': " + CONTRACT_BREAKS["wide"][4]
    assert lines[2].startswith("FAIL crashing: plugin 'crashing' failed check 'plugin loads': import failed")


def test_other_modalities_still_train_next_to_broken_plugins(site, tmp_path):
    run_dir = tmp_path / "run"
    args = ["modality=vision", "debug=fdr", "logger=csv", f"hydra.run.dir={run_dir}"]
    result = script(site, str(BIN / "attnlab"), *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "metrics.json").is_file()
