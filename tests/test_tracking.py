"""W&B mode selection, secret redaction, and the resolved config reaching the logger."""

from __future__ import annotations

import pytest
import yaml

from attnlab.errors import ConfigError
from attnlab.tracking import redact, resolve_mode, wandb_logger
from attnlab.train import train
from conftest import FAST


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_auto_is_offline_without_credentials(no_credentials):
    assert resolve_mode("auto") == "offline"


def test_auto_is_online_with_an_api_key(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("auto") == "online"


def test_auto_is_online_with_a_netrc_login(no_credentials):
    no_credentials.write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    no_credentials.chmod(0o600)
    assert resolve_mode("auto") == "online"


def test_auto_is_online_after_wandb_login_to_its_default_server(no_credentials):
    """What `wandb login` writes (wandb's own netrc writer, for the server it uses by default)."""
    from wandb.sdk.lib.urls import DEFAULT_BASE_URL
    from wandb.sdk.lib.wbauth.wbnetrc import write_netrc_auth

    write_netrc_auth(host=DEFAULT_BASE_URL, api_key="z" * 40)
    assert resolve_mode("auto") == "online"


def test_an_offline_run_sends_no_wandb_telemetry(no_credentials, tmp_path):
    """wandb 0.31 builds its usage-telemetry exporter (which posts to the W&B server) from its
    process-wide settings, which say online unless WANDB_MODE does; an offline run turns it off."""
    from wandb.analytics.opentelemetry import opentelemetry_proxy

    logger = wandb_logger(project="p", save_dir=str(tmp_path / "run"))
    assert logger._wandb_init["mode"] == "offline"
    assert opentelemetry_proxy.get_open_telemetry_proxy() is None


def test_explicit_modes_win(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_mode("offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    with pytest.raises(ConfigError, match="logger.wandb.mode='cloud' is unknown"):
        resolve_mode("cloud")


@pytest.mark.parametrize("value", ["", "cloud"])
def test_a_bad_wandb_mode_in_the_environment_is_one_clear_error(no_credentials, monkeypatch, value):
    monkeypatch.setenv("WANDB_MODE", value)
    with pytest.raises(ConfigError, match=f"WANDB_MODE={value!r} is not a W&B mode; unset it"):
        resolve_mode("auto")


def test_redact_hides_secret_looking_keys_at_any_depth():
    config = {
        "logger": {"api_key": "abc", "project": "p", "hf_token": "h"},
        "x": [{"token": "t", "n": 1}],
        "password": "pw",
        "backbone": {"cls_token": True, "pad_token": "[PAD]"},
    }
    assert redact(config) == {
        "logger": {"api_key": "<redacted>", "project": "p", "hf_token": "<redacted>"},
        "x": [{"token": "<redacted>", "n": 1}],
        "password": "<redacted>",
        "backbone": {"cls_token": True, "pad_token": "[PAD]"},
    }


def test_the_logged_config_is_resolved(make_config, tmp_path):
    train(make_config(*FAST, "logger=csv", "test=false"))
    logged = yaml.safe_load((tmp_path / "run" / "csv" / "hparams.yaml").read_text())
    assert logged["head"]["num_classes"] == 10
    assert logged["frontend"]["dim"] == logged["backbone"]["dim"] == 32
    assert logged["paths"]["output_dir"] == str(tmp_path / "run")
