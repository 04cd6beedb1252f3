"""``attnlab-plugins new``: write a complete, working modality plugin package.

The package is rendered from the templates in ``attnlab/templates/plugin``: a
pyproject with the ``attnlab.plugins`` entry point, a front-end, a datamodule with a
generated toy dataset, Hydra configs, a contract test and a README. Placeholders are
``{{key}}``, so the templates keep Hydra's ``${...}`` as it is.
"""

from __future__ import annotations

import keyword
import re
from importlib.resources import files
from pathlib import Path

import attnlab
from attnlab import plugins
from attnlab.errors import ConfigError

TEMPLATE_DIR = "templates/plugin"

LAYOUT = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "src/{module}/__init__.py": "__init__.py.tmpl",
    "src/{module}/frontend.py": "frontend.py.tmpl",
    "src/{module}/data.py": "data.py.tmpl",
    "src/{module}/conf/modality/{name}.yaml": "modality.yaml.tmpl",
    "src/{module}/conf/data/{name}_toy.yaml": "data.yaml.tmpl",
    "src/{module}/conf/experiment/{name}_long.yaml": "experiment.yaml.tmpl",
    "tests/test_contract.py": "test_contract.py.tmpl",
}
"""Where each file of the new package comes from: path in the package → template."""

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def check_name(name: str) -> None:
    """A plugin name: lowercase identifier, not a keyword, not taken by an installed plugin.

    Raises:
        ConfigError: the name cannot be used, with the reason.
    """
    if not plugins.NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise ConfigError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and '_', starting with a letter "
            "(it becomes the Python package attnlab_<name>)"
        )
    source = plugins.registered().get(name)
    if source is not None:
        raise ConfigError(f"a plugin named {name!r} is already installed ({source}); choose another name")


def values(name: str) -> dict[str, str]:
    """The placeholders of the templates for plugin ``name``."""
    return {
        "name": name,
        "module": f"attnlab_{name}",
        "dist": f"attnlab-{name.replace('_', '-')}",
        "Camel": "".join(part.capitalize() for part in name.split("_")),
        "attnlab_version": attnlab.__version__,
    }


def render(template: str, mapping: dict[str, str]) -> str:
    """``template`` with each ``{{key}}`` replaced; an unknown key is a bug in the template."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in mapping:
            raise KeyError(f"template placeholder {{{{{key}}}}} has no value; known: {sorted(mapping)}")
        return mapping[key]

    return _PLACEHOLDER.sub(value, template)


def default_dir(name: str) -> Path:
    """Where ``attnlab-plugins new <name>`` writes without ``--dir``: ``./attnlab-<name>``."""
    return Path(values(name)["dist"])


def scaffold(name: str, target: Path | None = None) -> list[Path]:
    """Write the plugin package for ``name`` into ``target`` and return the files written.

    Raises:
        ConfigError: an invalid or taken name, or a ``target`` that is a file or a
            folder that is not empty.
    """
    check_name(name)
    target = Path(target) if target is not None else default_dir(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} exists and is not an empty folder; choose another with --dir")
    mapping = values(name)
    templates = files(attnlab).joinpath(TEMPLATE_DIR)
    written = []
    for dest, source in LAYOUT.items():
        path = target / dest.format(**mapping)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(templates.joinpath(source).read_text(encoding="utf-8"), mapping), encoding="utf-8")
        written.append(path)
    return written
