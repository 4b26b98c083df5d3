"""Effective settings: defaults < TOML file < environment (``AERODECK_*``) < explicit overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from aerodeck.errors import BadInput
from aerodeck.policy import FreezeWindow, RolloutPolicy

CONFIG_ENV = "AERODECK_CONFIG"


def default_config_file() -> Path:
    """``$AERODECK_CONFIG`` if set, else ``~/.config/aerodeck/config.toml`` (read only if it exists)."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME", "~/.config")).expanduser() / "aerodeck" / "config.toml"


def default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")).expanduser() / "aerodeck"


class Settings(BaseSettings):
    """Everything aerodeck can be configured with. Secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_prefix="AERODECK_", extra="forbid", validate_default=True)

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_api_key: SecretStr | None = None
    task_queue: str = "aerodeck"
    temporal_connect_timeout_s: float = Field(default=10.0, gt=0, le=120)

    # Embedded stack (`aerodeck up`)
    data_dir: Path = Field(default_factory=default_data_dir)
    dev_server_port: int = Field(default=7233, ge=1, le=65535)
    dev_ui_port: int = Field(default=8233, ge=1, le=65535)

    # Kubernetes: a kubeconfig (and context), or in-cluster config when running in a pod
    kubeconfig: Path | None = None
    kube_context: str | None = None

    # LLM: any OpenAI-compatible endpoint; none means the offline planner
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr | None = None

    # Prometheus with aerospike-prometheus-exporter metrics
    prometheus_url: str | None = None

    # Rollout policy (per tier where it says so); each change keeps the policy it started with
    approval_required_tiers: list[str] = Field(default_factory=lambda: ["prod"])
    finalize_approval_tiers: list[str] = Field(default_factory=list)
    four_eyes_tiers: list[str] = Field(default_factory=lambda: ["prod", "staging"])
    gate_timeout_s: float = Field(default=24 * 3600, gt=0)
    gate_timeout_outcome: Literal["reject", "approve"] = "reject"
    rollback_policy: Literal["auto", "ask"] = "auto"
    error_persist_s: float = Field(default=120, gt=0)
    batch_deadline_s: float = Field(default=15 * 60, gt=0)
    overall_deadline_s: float = Field(default=4 * 3600, gt=0)
    poll_interval_s: float = Field(default=5, gt=0)
    settle_deadline_s: float = Field(default=10 * 60, gt=0)
    validation_source: Literal["probe", "prometheus", "info", "none"] = "probe"
    validation_duration_s: float = Field(default=60, gt=0, le=3600)
    freeze_windows: list[FreezeWindow] = Field(default_factory=list)

    # Console
    console_port: int = Field(default=8501, ge=1, le=65535)
    console_auth: Literal["dev", "oidc"] = "dev"
    console_dev_user: str = "dev@aerodeck.local"
    console_dev_roles: list[str] = Field(default_factory=lambda: ["operator", "approver"])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_config_file())
        return init_settings, env_settings, toml

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port such as 127.0.0.1:7233, got {value!r}")
        return value

    @property
    def temporal_tls_enabled(self) -> bool:
        return self.temporal_tls_cert is not None or self.temporal_tls_ca is not None

    def policy_for(self, tier: str | None, **overrides: Any) -> RolloutPolicy:
        """The policy a change on a cluster of ``tier`` starts with (unlabelled clusters count as prod)."""
        tier = tier or "prod"
        values: dict[str, Any] = {
            "approval": "required" if tier in self.approval_required_tiers else "auto",
            "finalize_approval": tier in self.finalize_approval_tiers,
            "four_eyes": tier in self.four_eyes_tiers,
            "gate_timeout_s": self.gate_timeout_s,
            "gate_timeout_outcome": self.gate_timeout_outcome,
            "rollback": self.rollback_policy,
            "error_persist_s": self.error_persist_s,
            "batch_deadline_s": self.batch_deadline_s,
            "overall_deadline_s": self.overall_deadline_s,
            "poll_interval_s": self.poll_interval_s,
            "settle_deadline_s": self.settle_deadline_s,
            "validation_source": self.validation_source,
            "validation_duration_s": self.validation_duration_s,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return RolloutPolicy.model_validate(values)

    def redacted(self) -> dict[str, Any]:
        """JSON-friendly view with secrets replaced, for `aerodeck config show`."""
        data = self.model_dump(mode="json")
        for name in ("temporal_api_key", "llm_api_key"):
            if getattr(self, name) is not None:
                data[name] = "***"
        return data


def load_settings(**overrides: Any) -> Settings:
    """Load settings, turning validation errors into one BadInput line that names the variable."""
    config_file = default_config_file()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"AERODECK_{str(err['loc'][0]).upper()}: {err['msg'].removeprefix('Value error, ')}"
            if err["loc"]
            else err["msg"]
            for err in exc.errors()
        )
        raise BadInput(f"invalid settings ({problems}); fix the environment variable or {config_file}") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read settings file {config_file}: {exc}") from exc
