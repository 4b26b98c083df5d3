"""Debian's kubectl against the twin's API emulator: what an engineer types during a rollout must work."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.twin.kube_fixtures import IMAGE_REPO, TwinThread, cluster_entry, make_fleet, running_twin
from tests.waiting import wait_until

FLEET = make_fleet(
    [
        cluster_entry("ads-cache", namespace="aero-ads", team="ads", version="8.0.0.9"),
        cluster_entry("search-index", namespace="aero-search", team="search", racks=2, size=4, batch=2),
    ]
)


@pytest.fixture(scope="module")
def kubectl_path() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed: run `apt-get install kubectl` (Debian package 'kubectl')", pytrace=False)
    return found


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinThread]:
    with running_twin(FLEET, tmp_path_factory.mktemp("kubectl")) as twin:
        yield twin


class Kubectl:
    def __init__(self, path: str, twin: TwinThread) -> None:
        self.path = path
        self.env = {**os.environ, "KUBECONFIG": str(twin.kubeconfig), "HOME": str(twin.kubeconfig.parent)}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.path, *args], capture_output=True, text=True, env=self.env, timeout=60, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result


@pytest.fixture(scope="module")
def kubectl(kubectl_path: str, twin: TwinThread) -> Kubectl:
    return Kubectl(kubectl_path, twin)


def rows(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_get_aerospikeclusters_all_namespaces(kubectl: Kubectl) -> None:
    table = rows(kubectl.run("get", "aerospikeclusters", "-A").stdout)
    assert table[0][:4] == ["NAMESPACE", "NAME", "SIZE", "IMAGE"]
    assert table[0][-1] == "PHASE"
    by_name = {row[1]: row for row in table[1:]}
    assert set(by_name) == {"ads-cache", "search-index"}
    assert by_name["ads-cache"][:4] == ["aero-ads", "ads-cache", "3", f"{IMAGE_REPO}:8.0.0.9"]
    assert by_name["search-index"][-1] == "Completed"


def test_get_pods_by_cr_label(kubectl: Kubectl) -> None:
    table = rows(kubectl.run("get", "pods", "-n", "aero-search", "-l", "aerospike.com/cr=search-index").stdout)
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[:4] for row in table[1:]] == [
        [name, "1/1", "Running", "0"]
        for name in ["search-index-1-0", "search-index-1-1", "search-index-2-0", "search-index-2-1"]
    ]
    listing = json.loads(kubectl.run("get", "pods", "-A", "-l", "aerospike.com/rack-id=2", "-o", "json").stdout)
    assert {p["metadata"]["name"] for p in listing["items"]} == {"search-index-2-0", "search-index-2-1"}


def test_patch_merge_rolls_the_cluster(kubectl: Kubectl) -> None:
    target = f"{IMAGE_REPO}:8.1.2.0"
    patch = json.dumps({"spec": {"image": target}})
    result = kubectl.run("patch", "aerospikecluster", "ads-cache", "-n", "aero-ads", "--type", "merge", "-p", patch)
    assert "aerospikecluster.asdb.aerospike.com/ads-cache patched" in result.stdout

    def done() -> bool:
        jsonpath = "{.status.phase} {.status.image}"
        out = kubectl.run("get", "aerospikecluster", "ads-cache", "-n", "aero-ads", "-o", f"jsonpath={jsonpath}")
        return out.stdout.split() == ["Completed", target]

    wait_until(done, what="ads-cache to reconcile to 8.1.2.0")
    images = kubectl.run(
        "get", "pods", "-n", "aero-ads", "-l", "aerospike.com/cr=ads-cache", "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ).stdout.split()  # fmt: skip
    assert images == [target] * 3
    events = kubectl.run("get", "events", "-n", "aero-ads").stdout
    assert "PodImageUpdate" in events and "RackImageUpdated" in events


def test_webhook_denial_reaches_kubectl(kubectl: Kubectl) -> None:
    patch = json.dumps({"spec": {"image": f"{IMAGE_REPO}:5.7.0.0"}})
    result = kubectl.run(
        "patch", "aerospikecluster", "search-index", "-n", "aero-search", "--type", "merge", "-p", patch, check=False
    )
    assert result.returncode != 0
    assert 'admission webhook "vaerospikecluster.kb.io" denied the request' in result.stderr
    assert "Base version 6.0.0.0" in result.stderr


def test_crds_and_operator_deployment(kubectl: Kubectl) -> None:
    crds = kubectl.run("get", "crd", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/aerospikeclusters.asdb.aerospike.com" in crds
    refused = kubectl.run("delete", "crd", "aerospikeclusters.asdb.aerospike.com", check=False)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    deployment = rows(kubectl.run("get", "deployment", "-n", "aerospike-operator").stdout)
    assert deployment[1][:2] == ["aerospike-kubernetes-operator", "2/2"]
