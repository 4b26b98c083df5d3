"""All I/O of aerodeck: every activity the worker registers."""

from collections.abc import Callable
from typing import Any

from activities.cluster import ClusterActivities
from activities.health import check_cluster_health
from activities.self_check import describe_worker
from activities.validation import ValidationActivities, judge_validation
from aerodeck.kube.client import api_client
from aerodeck.settings import Settings


def all_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity, bound to the clients the settings describe."""
    cluster = ClusterActivities(lambda: api_client(settings))
    validation = ValidationActivities(settings)
    return [
        describe_worker,
        check_cluster_health,
        cluster.read_cluster,
        cluster.patch_cluster_image,
        cluster.set_cluster_paused,
        cluster.await_rollout_progress,
        validation.collect_evidence,
        judge_validation,
    ]
