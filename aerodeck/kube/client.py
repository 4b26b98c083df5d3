"""An official-client ApiClient from settings: a kubeconfig (and context), or in-cluster config."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from aerodeck.errors import BadInput
from aerodeck.settings import Settings


def running_twin_kubeconfig(settings: Settings) -> Path | None:
    """The kubeconfig of the twin that `aerodeck up` runs from this data dir, while it runs."""
    state = settings.data_dir / "twin" / "state.json"
    try:
        return Path(json.loads(state.read_text())["kubeconfig"])
    except (OSError, ValueError, KeyError):
        return None


def api_client(settings: Settings) -> client.ApiClient:
    """AERODECK_KUBECONFIG, else in-cluster config, else the running twin's, else ~/.kube/config."""
    try:
        if settings.kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
            twin = running_twin_kubeconfig(settings)
            if twin is not None:
                settings = settings.model_copy(update={"kubeconfig": twin})
        if settings.kubeconfig is not None:
            if not settings.kubeconfig.exists():
                raise BadInput(
                    f"kubeconfig {settings.kubeconfig} does not exist; fix AERODECK_KUBECONFIG "
                    "(`aerodeck up` writes one for the fleet twin and prints its path)"
                )
            return config.new_client_from_config(config_file=str(settings.kubeconfig), context=settings.kube_context)
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except ConfigException:
            return config.new_client_from_config(context=settings.kube_context)
    except ConfigException as exc:
        raise BadInput(
            f"no usable Kubernetes configuration ({exc}); set AERODECK_KUBECONFIG "
            "(and AERODECK_KUBE_CONTEXT) or run inside a pod with a service account"
        ) from exc
