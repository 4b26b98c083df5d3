"""The command line as scripts use it: help, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import time

from tests.cli_helpers import clean_env, run_cli


def test_help_lists_the_command_tree() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("up", "worker", "doctor", "config"):
        assert command in result.stdout
    up_help = run_cli("up", "--help")
    assert up_help.returncode == 0 and "--data-dir" in up_help.stdout and "--ui-port" in up_help.stdout


def test_config_show_json_is_the_effective_settings_with_secrets_redacted() -> None:
    env = clean_env(AERODECK_TASK_QUEUE="q-from-env", AERODECK_LLM_API_KEY="sk-secret-value")
    result = run_cli("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["task_queue"] == "q-from-env"
    assert shown["llm_api_key"] == "***"
    assert "sk-secret-value" not in result.stdout


def test_bad_settings_exit_2_with_one_line() -> None:
    result = run_cli("config", "show", env=clean_env(AERODECK_DEV_SERVER_PORT="not-a-port"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: invalid settings")
    assert "Traceback" not in result.stderr


def test_unreachable_temporal_fails_fast_with_what_to_do() -> None:
    started = time.monotonic()
    result = run_cli("worker", env=clean_env(AERODECK_TEMPORAL_ADDRESS="127.0.0.1:1"), timeout=30)
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot reach Temporal at 127.0.0.1:1")
    assert "aerodeck up" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_unknown_command_is_bad_input() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr
