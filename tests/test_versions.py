from __future__ import annotations

import pytest
from pydantic import BaseModel

from aerodeck.versions import AerospikeVersion, VersionError, image_with_version


def test_parse_orders_and_prints_numerically() -> None:
    versions = [AerospikeVersion.parse(v) for v in ["8.1.2.0", "7.2.0.6", "8.0.0.10", "8.0.0.9"]]
    assert [str(v) for v in sorted(versions)] == ["7.2.0.6", "8.0.0.9", "8.0.0.10", "8.1.2.0"]
    assert AerospikeVersion.parse(" 8.1.2.0 ") == AerospikeVersion(8, 1, 2, 0)
    assert AerospikeVersion.parse("8.1.2.0").series == (8, 1)


@pytest.mark.parametrize("text", ["8.1.2", "8.1.2.0.1", "v8.1.2.0", "8.1.x.0", "", "latest", "8..2.0", "-1.0.0.0"])
def test_malformed_versions_are_rejected_with_the_expected_form(text: str) -> None:
    with pytest.raises(VersionError, match=r"expected four dot-separated numbers such as 8\.1\.2\.0"):
        AerospikeVersion.parse(text)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("aerospike/aerospike-server-enterprise:8.1.2.0", "8.1.2.0"),
        ("registry.local:5000/aerospike/aerospike-server-enterprise:7.2.0.6", "7.2.0.6"),
        ("aerospike/aerospike-server-federal:8.0.0.9-ubi9", "8.0.0.9"),
        ("aerospike/aerospike-server-enterprise:ce-8.1.2.0_1", "8.1.2.0"),
    ],
)
def test_versions_come_from_image_tags(image: str, expected: str) -> None:
    assert str(AerospikeVersion.from_image(image)) == expected


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("aerospike/aerospike-server-enterprise", "no explicit tag"),
        ("registry.local:5000/aerospike/aerospike-server-enterprise", "no explicit tag"),
        ("aerospike/aerospike-server-enterprise:latest", "carries no four-part Aerospike version"),
        ("aerospike/aerospike-server-enterprise:8.1.2", "carries no four-part Aerospike version"),
    ],
)
def test_images_without_a_version_are_rejected(image: str, message: str) -> None:
    with pytest.raises(VersionError, match=message):
        AerospikeVersion.from_image(image)


def test_image_with_version_keeps_the_repository() -> None:
    v = AerospikeVersion.parse("8.1.2.0")
    assert image_with_version("reg:5000/aerospike/server:8.0.0.9", v) == "reg:5000/aerospike/server:8.1.2.0"
    assert image_with_version("aerospike/server", v) == "aerospike/server:8.1.2.0"


def test_pydantic_fields_validate_and_serialize_as_text() -> None:
    class Change(BaseModel):
        target: AerospikeVersion

    change = Change.model_validate({"target": "8.1.2.0"})
    assert change.target == AerospikeVersion(8, 1, 2, 0)
    assert change.model_dump_json() == '{"target":"8.1.2.0"}'
    assert Change.model_validate_json(change.model_dump_json()) == change
    with pytest.raises(ValueError, match="invalid Aerospike version"):
        Change.model_validate({"target": "8.1"})
