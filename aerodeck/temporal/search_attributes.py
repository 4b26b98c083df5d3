"""The custom search attributes aerodeck sets on its workflows, so anyone can list changes."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

CLUSTER = SearchAttributeKey.for_keyword("AerodeckCluster")
TEAM = SearchAttributeKey.for_keyword("AerodeckTeam")
TIER = SearchAttributeKey.for_keyword("AerodeckTier")
TARGET_VERSION = SearchAttributeKey.for_keyword("AerodeckTargetVersion")
STATE = SearchAttributeKey.for_keyword("AerodeckState")
CAMPAIGN = SearchAttributeKey.for_keyword("AerodeckCampaign")

ALL = (CLUSTER, TEAM, TIER, TARGET_VERSION, STATE, CAMPAIGN)


async def ensure_registered(client: Client, namespace: str) -> None:
    """Register every attribute on a server that lacks them (a self-hosted cluster, the test server)."""
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        existing = set(listed.custom_attributes)
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:  # the Java test server cannot list, only add
            raise
        existing = set()
    missing = {
        key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in ALL if key.name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
