from __future__ import annotations

from pathlib import Path

import pytest

from aerodeck.errors import BadInput
from aerodeck.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("AERODECK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AERODECK_CONFIG", str(tmp_path / "absent.toml"))


def test_defaults_point_at_the_embedded_stack() -> None:
    settings = load_settings()
    assert settings.temporal_address == "127.0.0.1:7233"
    assert settings.task_queue == "aerodeck"
    assert settings.llm_base_url is None


def test_environment_overrides_toml_which_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "aerodeck.toml"
    config.write_text('temporal_namespace = "ops"\ntask_queue = "from-toml"\nprometheus_url = "http://p:9090"\n')
    monkeypatch.setenv("AERODECK_CONFIG", str(config))
    monkeypatch.setenv("AERODECK_TASK_QUEUE", "from-env")
    settings = load_settings()
    assert settings.temporal_namespace == "ops"
    assert settings.task_queue == "from-env"
    assert settings.prometheus_url == "http://p:9090"


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AERODECK_LLM_API_KEY", "sk-very-secret")
    monkeypatch.setenv("AERODECK_TEMPORAL_API_KEY", "tmprl-secret")
    shown = load_settings().redacted()
    assert shown["llm_api_key"] == "***"
    assert shown["temporal_api_key"] == "***"
    assert "secret" not in repr(load_settings())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AERODECK_TEMPORAL_ADDRESS", "no-port", "expected host:port"),
        ("AERODECK_DEV_SERVER_PORT", "seventy", "AERODECK_DEV_SERVER_PORT"),
        ("AERODECK_DEV_SERVER_PORT", "70000", "less than or equal to 65535"),
        ("AERODECK_CONSOLE_AUTH", "ldap", "AERODECK_CONSOLE_AUTH"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(BadInput, match=message):
        load_settings()


def test_unknown_and_malformed_toml_are_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    monkeypatch.setenv("AERODECK_CONFIG", str(config))
    config.write_text('temporal_adress = "typo:7233"\n')
    with pytest.raises(BadInput, match="AERODECK_TEMPORAL_ADRESS"):
        load_settings()
    config.write_text("this is = = not toml\n")
    with pytest.raises(BadInput, match="cannot read settings file"):
        load_settings()
