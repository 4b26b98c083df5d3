"""Aerospike server versions: four-part numbers such as ``8.1.2.0``, parsed from text or image tags."""

from __future__ import annotations

import re
from functools import total_ordering
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
# AKO's GetImageVersion takes the longest version-looking run of the tag; we require all four parts.
_TAG_VERSION_RE = re.compile(r"(?<![\d.])(\d{1,4}\.\d{1,4}\.\d{1,4}\.\d{1,4})(?![\d.])")


class VersionError(ValueError):
    """A version or image tag that is not a valid four-part Aerospike version."""


@total_ordering
class AerospikeVersion:
    """An Aerospike server version: four non-negative integers, ordered numerically."""

    __slots__ = ("parts",)

    def __init__(self, major: int, minor: int, patch: int, build: int) -> None:
        self.parts: tuple[int, int, int, int] = (major, minor, patch, build)

    @classmethod
    def parse(cls, text: str) -> AerospikeVersion:
        """Parse ``8.1.2.0``; anything else raises :class:`VersionError` saying what is expected."""
        if not isinstance(text, str):
            raise VersionError(f"version must be text like 8.1.2.0, got {type(text).__name__}")
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise VersionError(
                f"invalid Aerospike version {text!r}: expected four dot-separated numbers such as 8.1.2.0"
            )
        major, minor, patch, build = (int(p) for p in match.groups())
        return cls(major, minor, patch, build)

    @classmethod
    def from_image(cls, image: str) -> AerospikeVersion:
        """The version in an image's tag, e.g. ``aerospike/aerospike-server-enterprise:8.1.2.0``."""
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag or not tag:
            raise VersionError(
                f"image {image!r} has no explicit tag: use a versioned tag such as "
                "aerospike/aerospike-server-enterprise:8.1.2.0"
            )
        found = _TAG_VERSION_RE.findall(tag)
        if not found:
            raise VersionError(f"image tag {tag!r} of {image!r} carries no four-part Aerospike version such as 8.1.2.0")
        return cls.parse(max(found, key=len))

    @property
    def major(self) -> int:
        return self.parts[0]

    @property
    def minor(self) -> int:
        return self.parts[1]

    @property
    def series(self) -> tuple[int, int]:
        """The feature line, e.g. (8, 1) for 8.1.2.0."""
        return self.parts[0], self.parts[1]

    def __str__(self) -> str:
        return ".".join(str(p) for p in self.parts)

    def __repr__(self) -> str:
        return f"AerospikeVersion('{self}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AerospikeVersion) and self.parts == other.parts

    def __lt__(self, other: AerospikeVersion) -> bool:
        if not isinstance(other, AerospikeVersion):
            return NotImplemented
        return self.parts < other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """Validate from a string or an instance; serialize as the dotted string."""

        def validate(value: Any) -> AerospikeVersion:
            if isinstance(value, AerospikeVersion):
                return value
            return cls.parse(value)

        return core_schema.no_info_plain_validator_function(
            validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )


def image_with_version(image: str, version: AerospikeVersion) -> str:
    """Return ``image`` with its tag replaced by ``version`` (same repository)."""
    repository, sep, tag = image.rpartition(":")
    if not sep or "/" in tag:
        repository = image
    return f"{repository}:{version}"
