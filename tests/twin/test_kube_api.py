"""The twin's Kubernetes API through the official client, configured from a kubeconfig file like production."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from aerodeck.twin.fleet import ApiFaults
from tests.twin.kube_fixtures import (
    GROUP,
    IMAGE_REPO,
    PLURAL,
    VERSION,
    TwinThread,
    cluster_entry,
    make_fleet,
    running_twin,
)
from tests.waiting import wait_until

JSON_PATCH = "application/json-patch+json"
FLEET = make_fleet(
    [
        cluster_entry("ads-cache", namespace="aero-ads", team="ads", tier="prod"),
        cluster_entry("ads-staging", namespace="aero-ads", team="ads", tier="staging"),
        cluster_entry("search-index", namespace="aero-search", team="search", tier="prod", racks=2, size=4, batch=2),
        cluster_entry("scratch", namespace="aero-scratch", team="qa"),
        cluster_entry("doomed", namespace="aero-scratch", team="qa", size=2),
    ]
)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinThread]:
    with running_twin(FLEET, tmp_path_factory.mktemp("kube-api")) as twin:
        yield twin


@pytest.fixture(scope="module")
def api(twin: TwinThread) -> Iterator[client.ApiClient]:
    with twin.api_client() as api_client:
        yield api_client


def status_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    assert body["kind"] == "Status"
    assert body["code"] == exc.status
    return body


def raw(
    api: client.ApiClient, method: str, path: str, body: str | None = None, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    """A request with a body the typed client would never send; returns (HTTP status, JSON body)."""
    response = api.rest_client.request(
        method, f"{api.configuration.host}{path}", headers={"Content-Type": content_type}, body=body
    )
    decoded: dict[str, Any] = json.loads(response.read())
    if response.status >= 400:
        assert decoded["kind"] == "Status" and decoded["code"] == response.status
    return response.status, decoded


def test_version_and_discovery(api: client.ApiClient) -> None:
    assert client.VersionApi(api).get_code().git_version.startswith("v1.32")
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"asdb.aerospike.com", "apps", "apiextensions.k8s.io"} <= groups
    resources = client.CustomObjectsApi(api).get_api_resources(GROUP, VERSION).resources
    assert {"aerospikeclusters", "aerospikeclusters/status"} <= {r.name for r in resources}


def test_list_across_namespaces_with_label_selectors(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)

    def names(selector: str | None = None) -> set[str]:
        listing = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, label_selector=selector)
        return {item["metadata"]["name"] for item in listing["items"]}

    assert names() == {"ads-cache", "ads-staging", "search-index", "scratch", "doomed"}
    assert names("aerodeck.io/team=ads") == {"ads-cache", "ads-staging"}
    assert names("aerodeck.io/team=ads,aerodeck.io/tier!=staging") == {"ads-cache"}
    assert names("aerodeck.io/team in (search, qa)") == {"search-index", "scratch", "doomed"}
    assert names("aerodeck.io/team notin (ads),aerodeck.io/tier=prod") == {"search-index"}
    assert names("aerodeck.io/use-case") == names()
    assert names("!aerodeck.io/use-case") == set()
    namespaced = custom.list_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL)
    assert {i["metadata"]["name"] for i in namespaced["items"]} == {"ads-cache", "ads-staging"}


def test_get_reads_spec_labels_slos_and_status(api: client.ApiClient, twin: TwinThread) -> None:
    custom = client.CustomObjectsApi(api)
    cr = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-search", PLURAL, "search-index")
    assert cr["spec"]["size"] == 4
    assert cr["spec"]["rackConfig"]["racks"] == [{"id": 1}, {"id": 2}]
    assert cr["spec"]["rackConfig"]["rollingUpdateBatchSize"] == 2
    assert cr["metadata"]["labels"]["aerospike.com/api-version"] == "v1"
    assert cr["metadata"]["annotations"]["aerodeck.io/slo-read-p99-ms"] == "2"
    assert cr["metadata"]["annotations"]["aerodeck.io/slo-min-tps"] == "1000"

    status = custom.get_namespaced_custom_object_status(GROUP, VERSION, "aero-search", PLURAL, "search-index")
    assert status["status"]["phase"] == "Completed"
    assert status["status"]["image"] == cr["spec"]["image"]
    assert status["status"]["selector"] == "app=aerospike-cluster,aerospike.com/cr=search-index"
    ports = twin.call(
        lambda: {n.pod_name: n.port for n in twin.runtime.cluster("aero-search", "search-index").nodes.values()}
    )
    pods = status["status"]["pods"]
    assert set(pods) == {"search-index-1-0", "search-index-1-1", "search-index-2-0", "search-index-2-1"}
    entry = pods["search-index-2-1"]
    assert entry["aerospike"] == {
        "clusterName": "search-index",
        "nodeID": "2a1",
        "rackID": 2,
        "accessEndpoints": [f"127.0.0.1:{ports['search-index-2-1']}"],
        "alternateAccessEndpoints": [f"127.0.0.1:{ports['search-index-2-1']}"],
    }
    assert entry["podIP"] == "127.0.0.1"
    assert entry["servicePort"] == entry["podPort"] == ports["search-index-2-1"]


def test_merge_patch_changes_spec_and_ignores_status(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    before = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-scratch", PLURAL, "scratch")
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "aero-scratch",
        PLURAL,
        "scratch",
        {"metadata": {"labels": {"owner": "sre"}}, "status": {"phase": "Error"}},
    )
    assert patched["metadata"]["labels"]["owner"] == "sre"
    assert patched["status"]["phase"] == "Completed"  # the main resource ignores status
    assert patched["metadata"]["generation"] == before["metadata"]["generation"]  # metadata only
    assert int(patched["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])

    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "aero-scratch", PLURAL, "scratch", {"spec": {"maxUnavailable": 2}}
    )
    assert patched["spec"]["maxUnavailable"] == 2
    assert patched["metadata"]["generation"] == before["metadata"]["generation"] + 1


def test_json_patch(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "aero-ads",
        PLURAL,
        "ads-staging",
        [
            {"op": "test", "path": "/spec/size", "value": 3},
            {"op": "add", "path": "/metadata/annotations/aerodeck.io~1change", "value": "CHG-1"},
        ],
        _content_type=JSON_PATCH,  # client 37 sends merge-patch unless told otherwise
    )
    assert patched["metadata"]["annotations"]["aerodeck.io/change"] == "CHG-1"
    with pytest.raises(ApiException) as failed_test:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "aero-ads",
            PLURAL,
            "ads-staging",
            [{"op": "test", "path": "/spec/size", "value": 9}],
            _content_type=JSON_PATCH,
        )
    assert failed_test.value.status == 422
    assert status_body(failed_test.value)["reason"] == "Invalid"


def test_status_subresource_writes_only_status(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    before = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-scratch", PLURAL, "scratch")
    after = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "aero-scratch",
        PLURAL,
        "scratch",
        {"status": {"aerodeckNote": "checked"}, "spec": {"size": 7}, "metadata": {"labels": {"x": "y"}}},
    )
    assert after["status"]["aerodeckNote"] == "checked"
    assert after["spec"] == before["spec"]
    assert "x" not in after["metadata"]["labels"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_stale_resource_version_is_a_conflict(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    current = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-cache")
    current["metadata"].setdefault("annotations", {})["aerodeck.io/touched"] = "1"
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-cache", current)
    assert replaced["metadata"]["annotations"]["aerodeck.io/touched"] == "1"

    current["metadata"]["annotations"]["aerodeck.io/touched"] = "2"  # still carries the old resourceVersion
    with pytest.raises(ApiException) as stale:
        custom.replace_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-cache", current)
    assert stale.value.status == 409
    body = status_body(stale.value)
    assert body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]

    # A merge patch with a resourceVersion precondition is refused the same way.
    with pytest.raises(ApiException) as precondition:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, "aero-ads", PLURAL, "ads-cache", {"metadata": {"resourceVersion": "1"}}
        )
    assert precondition.value.status == 409


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"spec": {"image": "aerospike/aerospike-server-enterprise:5.7.0.0"}}, "Base version 6.0.0.0"),
        ({"spec": {"image": "aerospike/aerospike-server-enterprise"}}, "image version is mandatory"),
        ({"spec": {"image": "aerospike/aerospike-server-federal:8.1.2.0"}}, "federal"),
        (
            {"spec": {"rackConfig": {"rollingUpdateBatchSize": 2}}},
            "can not use spec.rackConfig.rollingUpdateBatchSize when number of racks is less than two",
        ),
        (
            {
                "spec": {
                    "image": f"{IMAGE_REPO}:8.1.2.0",
                    "operations": [{"kind": "WarmRestart", "id": "op-1"}],
                }
            },
            "cannot change Spec.Operations along with image update",
        ),
        ({"spec": {"image": "aerospike/aerospike-server:8.1.2.0"}}, "CommunityEdition Cluster not supported"),
    ],
)
def test_webhook_rejections_are_422_and_change_nothing(
    api: client.ApiClient, patch: dict[str, Any], message: str
) -> None:
    custom = client.CustomObjectsApi(api)
    before = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging")
    with pytest.raises(ApiException) as denied:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging", patch)
    assert denied.value.status == 422
    body = status_body(denied.value)
    assert body["reason"] == "Invalid"
    assert body["message"].startswith('admission webhook "vaerospikecluster.kb.io" denied the request: ')
    assert message in body["message"]
    assert body["details"]["causes"][0]["field"].startswith("spec.")
    after = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging")
    assert after == before


def test_unknown_resources_and_objects_are_404(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as unknown_kind:
        custom.list_cluster_custom_object(GROUP, VERSION, "aerospikewidgets")
    assert unknown_kind.value.status == 404
    assert status_body(unknown_kind.value)["reason"] == "NotFound"
    with pytest.raises(ApiException) as unknown_object:
        custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "no-such-cluster")
    assert unknown_object.value.status == 404
    assert '"no-such-cluster" not found' in status_body(unknown_object.value)["message"]
    status, body = raw(api, "GET", "/apis/nothing.example.com/v9/things")
    assert (status, body["reason"]) == (404, "NotFound")


def test_malformed_requests_are_400_and_wrong_methods_405(api: client.ApiClient) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/aero-ads/{PLURAL}/ads-cache"
    for content_type, payload in [
        ("application/merge-patch+json", "{not json"),
        ("application/json-patch+json", '{"op": "add"}'),
        ("application/json-patch+json", '[{"op": "frobnicate", "path": "/spec"}]'),
        ("application/merge-patch+json", "[1, 2]"),
    ]:
        status, body = raw(api, "PATCH", path, payload, content_type)
        assert (status, body["reason"]) == (400, "BadRequest"), (content_type, payload)
    status, body = raw(api, "POST", path, "{}")
    assert (status, body["reason"]) == (405, "MethodNotAllowed")
    status, body = raw(api, "PATCH", path, "{}", "application/apply-patch+yaml")
    assert status == 415
    with pytest.raises(ApiException) as bad_selector:
        client.CoreV1Api(api).list_pod_for_all_namespaces(label_selector="a in (b")
    assert bad_selector.value.status == 400


def test_create_existing_is_already_exists_and_crds_cannot_be_deleted(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    existing = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-cache")
    with pytest.raises(ApiException) as exists:
        custom.create_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, existing)
    assert exists.value.status == 409
    assert status_body(exists.value)["reason"] == "AlreadyExists"

    extensions = client.ApiextensionsV1Api(api)
    crd = extensions.read_custom_resource_definition("aerospikeclusters.asdb.aerospike.com")
    assert crd.metadata.annotations["aerospike-kubernetes-operator/version"] == "4.5.0"
    assert {c.name for c in crd.spec.versions[0].additional_printer_columns} >= {"Size", "Image", "Phase"}
    with pytest.raises(ApiException) as forbidden:
        extensions.delete_custom_resource_definition("aerospikeclusters.asdb.aerospike.com")
    assert forbidden.value.status == 403
    assert "never be deleted" in status_body(forbidden.value)["message"]
    # Replacing a CRD (what a helm-based AKO upgrade does first) is allowed.
    crd.metadata.annotations["aerospike-kubernetes-operator/version"] = "4.6.0"
    replaced = extensions.replace_custom_resource_definition(crd.metadata.name, crd)
    assert replaced.metadata.annotations["aerospike-kubernetes-operator/version"] == "4.6.0"


def test_pods_deployment_namespaces(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod("aero-search", label_selector="aerospike.com/cr=search-index").items
    assert sorted(p.metadata.name for p in pods) == [
        "search-index-1-0",
        "search-index-1-1",
        "search-index-2-0",
        "search-index-2-1",
    ]
    pod = core.read_namespaced_pod("search-index-2-0", "aero-search")
    assert pod.metadata.labels == {
        "app": "aerospike-cluster",
        "aerospike.com/cr": "search-index",
        "aerospike.com/rack-id": "2",
        "statefulset.kubernetes.io/pod-name": "search-index-2-0",
    }
    assert pod.spec.containers[0].name == "aerospike-server"
    assert pod.status.container_statuses[0].ready is True
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    rack_two = core.list_pod_for_all_namespaces(label_selector="aerospike.com/rack-id in (2)").items
    assert {p.metadata.name for p in rack_two} == {"search-index-2-0", "search-index-2-1"}

    deployment = client.AppsV1Api(api).read_namespaced_deployment("aerospike-kubernetes-operator", "aerospike-operator")
    container = deployment.spec.template.spec.containers[0]
    assert (container.name, container.image) == ("manager", "aerospike/aerospike-kubernetes-operator:4.5.0")
    assert deployment.status.ready_replicas == 2
    namespaces = {n.metadata.name for n in core.list_namespace().items}
    assert {"aero-ads", "aero-search", "aero-scratch", "aerospike-operator"} <= namespaces


def test_deleted_pod_is_recreated_by_its_statefulset(api: client.ApiClient, twin: TwinThread) -> None:
    core = client.CoreV1Api(api)
    old_uid = core.read_namespaced_pod("ads-cache-0-1", "aero-ads").metadata.uid
    core.delete_namespaced_pod("ads-cache-0-1", "aero-ads")

    def recreated_and_ready() -> bool:
        try:
            pod = core.read_namespaced_pod("ads-cache-0-1", "aero-ads")
        except ApiException:
            return False
        return pod.metadata.uid != old_uid and bool(pod.status.container_statuses[0].ready)

    wait_until(recreated_and_ready, what="ads-cache-0-1 to come back ready")
    assert twin.call(lambda: twin.runtime.cluster("aero-ads", "ads-cache").nodes["ads-cache-0-1"].up)


def test_watch_streams_changes(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    current = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging")
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "aero-ads", PLURAL, "ads-staging", {"metadata": {"annotations": {"aerodeck.io/w": "1"}}}
    )
    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "aero-ads",
        PLURAL,
        resource_version=current["metadata"]["resourceVersion"],
        timeout_seconds=5,
    )
    for event in stream:
        if event["object"]["metadata"]["name"] == "ads-staging":
            assert event["type"] == "MODIFIED"
            assert event["object"]["metadata"]["annotations"]["aerodeck.io/w"] == "1"
            break
    else:
        pytest.fail("the watch ended without the MODIFIED event")


def test_api_faults_hit_writes_only(api: client.ApiClient, twin: TwinThread) -> None:
    custom = client.CustomObjectsApi(api)
    patch = {"metadata": {"annotations": {"aerodeck.io/f": "1"}}}
    for fault, status in [(ApiFaults(conflict_rate=1.0), 409), (ApiFaults(error_5xx_rate=1.0), 500)]:
        twin.call(lambda f=fault: twin.runtime.faults.append(f))
        try:
            with pytest.raises(ApiException) as injected:
                custom.patch_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging", patch)
            assert injected.value.status == status
            status_body(injected.value)
            assert custom.get_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging")
        finally:
            twin.call(lambda f=fault: twin.runtime.faults.remove(f))
    custom.patch_namespaced_custom_object(GROUP, VERSION, "aero-ads", PLURAL, "ads-staging", patch)


def test_deleting_a_cluster_tears_it_down(api: client.ApiClient, twin: TwinThread) -> None:
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    custom.delete_namespaced_custom_object(GROUP, VERSION, "aero-scratch", PLURAL, "doomed")
    wait_until(
        lambda: not core.list_namespaced_pod("aero-scratch", label_selector="aerospike.com/cr=doomed").items,
        what="doomed's pods to go",
    )
    assert twin.call(lambda: not any(n.up for n in twin.runtime.cluster("aero-scratch", "doomed").nodes.values()))


def test_a_cluster_outside_the_fleet_file_is_refused_by_the_emulated_operator(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    template = custom.get_namespaced_custom_object(GROUP, VERSION, "aero-scratch", PLURAL, "scratch")
    new = {"apiVersion": template["apiVersion"], "kind": template["kind"], "spec": template["spec"]}
    new["metadata"] = {"name": "newcomer", "namespace": "aero-scratch"}
    with pytest.raises(ApiException) as no_namespace:
        custom.create_namespaced_custom_object(GROUP, VERSION, "aero-nowhere", PLURAL, new)
    assert no_namespace.value.status == 404
    assert 'namespaces "aero-nowhere" not found' in status_body(no_namespace.value)["message"]
    created = custom.create_namespaced_custom_object(GROUP, VERSION, "aero-scratch", PLURAL, new)
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1
    assert "status" not in created
    wait_until(
        lambda: (
            custom.get_namespaced_custom_object_status(GROUP, VERSION, "aero-scratch", PLURAL, "newcomer")
            .get("status", {})
            .get("phase")
            == "Error"
        ),
        what="the emulated operator to refuse the new cluster",
    )
    events = client.CoreV1Api(api).list_namespaced_event("aero-scratch", field_selector="involvedObject.name=newcomer")
    assert any("fleet file" in (e.message or "") for e in events.items)
