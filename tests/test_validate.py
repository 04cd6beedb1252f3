"""attnlab.validate against hand-written signatures: keys, types, ranges, Optional, Literal,
nested targets, partials, interpolations, and a library's own ValueError."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest
import torch
from annotated_types import Ge, Gt, Interval, Le
from omegaconf import OmegaConf

from attnlab import config, validate
from attnlab.describe import describe
from attnlab.errors import ConfigError

HERE = __name__


class Block:
    """A nested target: an int >= 1 and a rate in [0, 1)."""

    def __init__(self, width: Annotated[int, Ge(1)], rate: Annotated[float, Interval(ge=0, lt=1)] = 0.0) -> None:
        self.width, self.rate = width, rate


class Widget:
    def __init__(
        self,
        size: Annotated[int, Ge(1)],
        scale: float = 1.0,
        mode: Literal["fast", "exact"] = "fast",
        window: Annotated[int, Gt(0)] | None = None,
        name: str = "w",
        sizes: list[Annotated[int, Ge(0)]] = (),  # type: ignore[assignment]
        block: Block | None = None,
        flag: bool = False,
        anything: Any = None,
        unreadable: NotImportable | None = None,  # noqa: F821 - pydantic cannot read it: unchecked
    ) -> None:
        self.size = size


def open_ended(size: Annotated[int, Le(10)], **options: Any) -> dict[str, Any]:
    return {"size": size, **options}


def library_call(value: int) -> int:
    """Stands for a third-party constructor: it checks its argument itself."""
    if value < 0:
        raise ValueError(f"Invalid value: {value}")
    return value


def library_apply(hook: Any) -> Any:
    """Stands for library code that calls back into the caller's code."""
    return hook()


def node(**values: Any):
    return OmegaConf.create({"_target_": f"{HERE}.Widget", "size": 3, **values})


def message(cfg, path: str = "widget") -> str:
    with pytest.raises(ConfigError) as caught:
        validate.check_target(path, cfg)
    return str(caught.value)


def test_a_config_that_fits_passes():
    cfg = node(scale=2, mode="exact", window=None, sizes=[0, 4], flag=True, anything={"a": [1]}, unreadable=5)
    validate.check_target("widget", cfg)  # 2 (an int) is a fine float; unreadable annotations are not checked


def test_unknown_key_names_the_target_its_settings_and_a_close_match():
    text = message(node(sclae=2.0))
    assert text.startswith(f"widget.sclae: widget ({HERE}.Widget) has no setting 'sclae' (did you mean scale?)")
    assert "its settings: size, scale, mode, window, name, sizes, block, flag, anything, unreadable" in text


def test_a_target_taking_kwargs_takes_any_key_but_checks_its_own():
    validate.check_target("f", OmegaConf.create({"_target_": f"{HERE}.open_ended", "size": 3, "extra": "x"}))
    bad = OmegaConf.create({"_target_": f"{HERE}.open_ended", "size": 11, "extra": "x"})
    assert message(bad, "f") == f"f.size=11: must be an integer <= 10 ({HERE}.open_ended)"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"size": "abc"}, "widget.size=abc: must be an integer >= 1"),
        ({"size": 2.0}, "widget.size=2.0: must be an integer >= 1"),  # no silent float -> int
        ({"size": True}, "widget.size=true: must be an integer >= 1"),  # nor bool -> int
        ({"size": "3"}, "widget.size=3: must be an integer >= 1"),  # nor str -> int
        ({"size": 0}, "widget.size=0: must be an integer >= 1"),
        ({"scale": "1e-3"}, "widget.scale=1e-3: must be a number"),
        ({"flag": "yes"}, "widget.flag=yes: must be true or false"),
        ({"flag": 1}, "widget.flag=1: must be true or false"),
        ({"name": 5}, "widget.name=5: must be a string"),
    ],
)
def test_wrong_type_or_range_names_key_value_and_what_fits(values, expected):
    assert message(node(**values)) == f"{expected} ({HERE}.Widget)"


def test_optional_accepts_null_and_says_so_when_wrong():
    validate.check_target("widget", node(window=None))
    assert message(node(window=0)) == f"widget.window=0: must be an integer > 0 or null ({HERE}.Widget)"


def test_literal_lists_its_choices():
    assert message(node(mode="slow")) == f"widget.mode=slow: must be one of fast, exact ({HERE}.Widget)"


def test_an_item_of_a_list_is_named():
    assert message(node(sizes=[1, -2])) == (
        f"widget.sizes=[1,-2] (item 1 is -2): must be a list of integers >= 0 ({HERE}.Widget)"
    )


def test_nested_targets_are_checked_with_their_own_path():
    block = {"_target_": f"{HERE}.Block", "width": 4, "rate": 1.0}
    assert message(node(block=block)) == f"widget.block.rate=1.0: must be a number in [0, 1) ({HERE}.Block)"
    block = {"_target_": f"{HERE}.Block", "width": 4, "depth": 2}
    assert message(node(block=block)).startswith(f"widget.block.depth: widget.block ({HERE}.Block) has no setting")
    validate.check_target("widget", node(block={"_target_": f"{HERE}.Block", "width": 4}))


def test_required_parameters_must_be_set_unless_partial():
    bare = OmegaConf.create({"_target_": f"{HERE}.Block"})
    assert message(bare, "block") == f"block ({HERE}.Block) needs width; set block.width=<value>"
    validate.check_target("block", OmegaConf.create({"_target_": f"{HERE}.Block", "_partial_": True}))


def test_a_target_that_does_not_exist_is_one_line():
    cfg = OmegaConf.create({"_target_": f"{HERE}.Gadget"})
    assert message(cfg, "x") == f"x._target_={HERE}.Gadget does not exist: {HERE} has no 'Gadget'"
    cfg = OmegaConf.create({"_target_": "no_such_package.Thing"})
    assert message(cfg, "x") == "x._target_=no_such_package.Thing does not exist: there is no module 'no_such_package'"


def test_interpolations_are_checked_once_they_resolve():
    cfg = OmegaConf.create({"widget": {"_target_": f"{HERE}.Widget", "size": "${from_data:size}"}})
    config.register_resolvers()
    validate.check_config(cfg)  # before the data is set up: skipped
    late = r"widget.size=\$\{from_data:size\} \(= 0\): must be an integer >= 1"
    with config.data_info({"size": 0}), pytest.raises(ConfigError, match=late):
        validate.check_config(cfg)
    with config.data_info({"size": 7}):
        validate.check_config(cfg)


def test_an_interpolation_to_nothing_and_a_missing_value_are_errors():
    cfg = OmegaConf.create({"widget": {"_target_": f"{HERE}.Widget", "size": "${nope}"}})
    with pytest.raises(ConfigError, match=r"widget.size=\$\{nope\} cannot be resolved: Interpolation key 'nope'"):
        validate.check_config(cfg)
    cfg = OmegaConf.create({"widget": {"_target_": f"{HERE}.Widget", "size": "???"}})
    with pytest.raises(ConfigError, match=r"widget.size is required but has no value \(\?\?\?\)"):
        validate.check_config(cfg)


@dataclass(frozen=True)
class Settings:
    seed: Annotated[int, Ge(0)] | None = None
    tags: list[str] = field(default_factory=list)


def test_top_level_settings_are_checked_against_a_dataclass():
    validate.check_settings(OmegaConf.create({"seed": 3, "tags": ["a"], "model": {}}), Settings, ["model"])
    with pytest.raises(ConfigError, match=r"^seed=-1: must be an integer >= 0 or null$"):
        validate.check_settings(OmegaConf.create({"seed": -1}), Settings)
    with pytest.raises(ConfigError, match=r"^tags=a: must be a list of strings$"):
        validate.check_settings(OmegaConf.create({"tags": "a"}), Settings)
    with pytest.raises(ConfigError, match=r"^sed: a run has no setting 'sed' \(did you mean seed\?\)"):
        validate.check_settings(OmegaConf.create({"sed": 1}), Settings)


def test_a_librarys_own_value_error_is_one_line_naming_the_node():
    with pytest.raises(ConfigError) as caught, validate.rejections("thing", "lib.Thing"):
        library_call(-1)
    assert str(caught.value) == "thing (lib.Thing) rejected its settings: Invalid value: -1"


def test_errors_of_attnlab_code_and_other_exceptions_keep_their_traceback():
    own = {"__name__": "attnlab.somewhere"}
    exec("def broken():\n    raise ValueError('a bug')", own)  # a ValueError raised in attnlab's code
    with pytest.raises(ValueError, match="a bug"), validate.rejections("thing", "attnlab.Thing"):
        own["broken"]()
    with pytest.raises(ValueError, match="a bug"), validate.rejections("thing", "lib.Thing"):
        library_apply(own["broken"])  # the library called attnlab's code, which raised
    with pytest.raises(TypeError), validate.rejections("thing", "lib.Thing"):
        library_call("x")  # type: ignore[arg-type]


def test_a_torch_optimizer_checks_its_own_settings_at_composition():
    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1, "momentum": -0.5}
    with pytest.raises(ConfigError) as caught:
        validate.check_target("optimizer", OmegaConf.create(sgd))
    assert str(caught.value) == "optimizer (torch.optim.SGD) rejected its settings: Invalid momentum value: -0.5"
    sgd["momentum"] = 0.9
    validate.check_target("optimizer", OmegaConf.create(sgd))
    assert torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)  # the probe's reference


def save_to(folder: Annotated[str, validate.WritableFolder()] | None = None) -> None:
    """A target that writes into ``folder``."""


def test_a_folder_to_write_into_must_be_creatable_and_writable(tmp_path):
    (tmp_path / "a-file").write_text("")
    target = f"{HERE}.save_to"
    validate.check_target("saver", OmegaConf.create({"_target_": target, "folder": str(tmp_path / "new" / "deeper")}))
    validate.check_target("saver", OmegaConf.create({"_target_": target, "folder": None}))
    assert not (tmp_path / "new").exists()  # checking creates nothing
    bad = OmegaConf.create({"_target_": target, "folder": str(tmp_path / "a-file" / "x")})
    assert message(bad, "saver") == (
        f"saver.folder={tmp_path}/a-file/x cannot be created: {tmp_path}/a-file is a file, not a folder"
    )


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (Annotated[int, Ge(1)] | None, "an integer >= 1 or null"),
        (Annotated[float, Interval(ge=0, le=1)], "a number in [0, 1]"),
        (Literal["a", "b"] | Literal["c"] | None, "one of a, b, c or null"),
        (list[Annotated[int, Gt(0)]], "a list of integers > 0"),
        (tuple[float, float], "a list of 2 (a number, a number)"),
        (dict[str, int], "a mapping"),
    ],
)
def test_describe(annotation, words):
    assert describe(annotation) == words
