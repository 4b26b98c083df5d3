"""The custom search attributes aerodeck sets on its workflows, so anyone can list changes."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CLUSTER = SearchAttributeKey.for_keyword("AerodeckCluster")
TEAM = SearchAttributeKey.for_keyword("AerodeckTeam")
TIER = SearchAttributeKey.for_keyword("AerodeckTier")
TARGET_VERSION = SearchAttributeKey.for_keyword("AerodeckTargetVersion")
STATE = SearchAttributeKey.for_keyword("AerodeckState")
CAMPAIGN = SearchAttributeKey.for_keyword("AerodeckCampaign")

ALL = (CLUSTER, TEAM, TIER, TARGET_VERSION, STATE, CAMPAIGN)
