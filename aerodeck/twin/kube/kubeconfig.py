"""A kubeconfig file that points clients (the official Python client, kubectl) at the twin's API emulator."""

from __future__ import annotations

from pathlib import Path

import yaml


def write_kubeconfig(path: Path | str, server_url: str, context: str = "aerodeck-twin") -> Path:
    """Write a kubeconfig with one cluster, user and context: plain http on loopback, no credentials."""
    target = Path(path)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server_url}}],
        "users": [{"name": context, "user": {}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}],
        "current-context": context,
        "preferences": {},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target
