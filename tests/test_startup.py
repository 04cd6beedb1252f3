"""Commands that do not train start without the training stack; ``attnlab --help`` is attnlab's.

Which libraries a command imports is seen in a fresh process (``startup_probe.py``), one
per command, run side by side. The core may import a heavy library only on behalf of a
plugin (its import chain passes through the plugin's package): what plugins import is
their own business, and ``attnlab-plugins``/``--help`` must import the plugins to list them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from attnlab import cli, usage
from conftest import ROOT

PROBE = Path(__file__).with_name("startup_probe.py")

COMMANDS = {
    "config error": ["attnlab", "modality=nope"],
    "help": ["attnlab", "--help"],
    "plugins": ["attnlab-plugins"],
    "new plugin": ["attnlab-plugins", "new", "probe_only", "--kind", "sequence", "--dir", "{tmp}/pkg"],
}


@pytest.fixture(scope="module")
def probes(tmp_path_factory) -> dict[str, dict]:
    """Each command of :data:`COMMANDS` run once under the probe, all at the same time."""
    tmp = tmp_path_factory.mktemp("startup")
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(PROBE), *(a.format(tmp=tmp) for a in argv)],
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, argv in COMMANDS.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results[name] = json.loads(out)
    return results


def core_imports(probe: dict) -> dict[str, list[str]]:
    """The heavy imports whose chain does not pass through a plugin's package."""
    plugins = set(probe["plugin_packages"])
    return {lib: chain for lib, chain in probe["imports"].items() if not {m.split(".")[0] for m in chain} & plugins}


def test_a_config_error_before_composition_imports_nothing_heavy(probes):
    probe = probes["config error"]
    assert probe["exit"] == 2
    assert probe["stderr"].startswith("attnlab: error: unknown modality 'nope'; known modalities: cnn, ")
    assert probe["imports"] == {}  # not even torch


def test_scaffolding_a_plugin_imports_nothing_heavy(probes):
    probe = probes["new plugin"]
    assert probe["exit"] == 0 and "wrote plugin 'probe_only'" in probe["stdout"]
    assert probe["imports"] == {}


@pytest.mark.parametrize("command", ["help", "plugins"])
def test_listing_imports_heavy_libraries_only_through_plugins(probes, command):
    probe = probes[command]
    assert probe["exit"] == 0, probe["stderr"][-2000:]
    assert core_imports(probe) == {}
    # the bundled plugins need torch for their modules, not torchvision's model zoo (~2 s)
    assert "torchvision" not in probe["imports"], probe["imports"].get("torchvision")


def readme_tour() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## A tour\n\n```bash\n") + len("## A tour\n\n```bash\n")
    return readme[start : readme.index("```", start)]


def test_the_help_tour_is_the_readme_tour():
    assert readme_tour() == usage.TOUR


def test_help_says_what_attnlab_is_and_shows_the_tour_and_the_groups(probes):
    out = probes["help"]["stdout"]
    assert out.startswith("attnlab: self-attention experiments across vision, speech and text")
    assert "powered by Hydra" not in out
    assert f"== A tour ==\n{readme_tour()}\n" in out
    lines = out.split("\n")
    assert "modality: cnn, speech, text, vision" in lines  # plugins' groups and options too
    assert "backbone: gru, lstm, none, small, tiny" in lines and "launcher: joblib, slurm" in lines
    assert not any(line.startswith("hydra") for line in lines)


def test_config_groups_merge_the_folders_and_nest(tmp_path):
    for root, files in {
        "a": ["x/one.yaml", "x/two.yaml", "y/z/deep.yaml", "hydra/h.yaml", "top.yaml"],
        "b": ["x/three.yaml"],
    }.items():
        for name in files:
            (tmp_path / root / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / root / name).write_text("{}")
    groups = usage.config_groups([tmp_path / "a", tmp_path / "b"])
    assert groups == {"x": ["one", "three", "two"], "y/z": ["deep"]}


@pytest.fixture
def run_attnlab(monkeypatch, capsys):
    """``attnlab <args>`` in this process; returns its stdout (Hydra ends some flags in ``exit(0)``)."""

    def run(*args: str) -> str:
        monkeypatch.setattr(sys, "argv", ["attnlab", *args])
        try:
            cli.train_main()
        except SystemExit as exc:
            assert exc.code in (0, None), capsys.readouterr().err
        finally:
            GlobalHydra.instance().clear()
        return capsys.readouterr().out

    return run


def test_hydras_own_flags_keep_working(run_attnlab):
    assert "Hydra (" in run_attnlab("--hydra-help") and "--cfg,-c" in run_attnlab("--hydra-help")
    job = run_attnlab("--cfg", "job", "backbone=small", "seed=7")
    assert "seed: 7" in job and "dim: 192" in job and "\nhydra:" not in job  # the job's config, not Hydra's
    info = run_attnlab("--info", "searchpath")
    assert "attnlab-plugin-vision" in info


@pytest.mark.parametrize("flags", [["-m"], ["--cfg", "job"], ["--multirun", "seed=1,2"]])
def test_names_are_checked_before_composition_whatever_the_flags(flags, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["attnlab", *flags, "modality=nope"])
    with pytest.raises(SystemExit) as info:
        cli.train_main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab: error: unknown modality 'nope'; known modalities: ") and err.count("\n") == 1
