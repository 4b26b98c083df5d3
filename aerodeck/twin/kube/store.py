"""In-memory Kubernetes object store: JSON dicts keyed by resource and name, with the semantics clients rely
on (resourceVersion conflicts, generation, the status subresource, label selectors, patches, watch events).

Everything runs on one asyncio loop, so the store takes no locks."""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonpatch

JsonObj = dict[str, Any]
# Called with (old or None, new) before a write from a client is committed; raises ApiError to refuse it.
Admission = Callable[[JsonObj | None, JsonObj], None]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH)

# How many past events a watch can resume from before the client must relist (410 Gone).
_HISTORY = 4096


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ResourceKind:
    """One served resource type (what discovery lists and what the store keys objects by)."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False
    verbs: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def resource_name(self) -> str:
        """The CRD-style name, e.g. ``aerospikeclusters.asdb.aerospike.com``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


class ApiError(Exception):
    """An error that the API answers as a ``kind: Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JsonObj | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JsonObj:
        body: JsonObj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: ResourceKind, name: str, causes: list[JsonObj] | None = None) -> JsonObj:
    details: JsonObj = {"name": name, "group": kind.group, "kind": kind.plural}
    if causes:
        details["causes"] = causes
    return details


def not_found(kind: ResourceKind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.resource_name} "{name}" not found', _details(kind, name))


def conflict(kind: ResourceKind, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind.resource_name} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(kind, name),
    )


def invalid(kind: ResourceKind, name: str, message: str, causes: list[JsonObj]) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{kind.kind}.{kind.group or "core"} "{name}" is invalid: {message}',
        _details(kind, name, causes),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


# ----------------------------------------------------------------------------------------------- selectors

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> list[Requirement]:
    """Parse the Kubernetes label selector syntax; a malformed selector raises 400 BadRequest."""
    if not selector:
        return []
    requirements = []
    for term in _split_terms(selector):
        if match := _SET_RE.match(term):
            key, op, raw = match.groups()
            values = frozenset(v.strip() for v in raw.split(",") if v.strip())
            requirements.append(Requirement(key, op, values))
        elif match := _EQ_RE.match(term):
            key, op, value = match.groups()
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", frozenset({value})))
        elif match := _EXISTS_RE.match(term):
            negated, key = match.groups()
            requirements.append(Requirement(key, "!exists" if negated else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector term {term.strip()!r}")
    return requirements


def parse_field_selector(selector: str | None) -> list[tuple[str, str, str]]:
    """Field selectors as (dotted path, op, value); only equality and inequality, as the API server offers."""
    if not selector:
        return []
    result = []
    for term in _split_terms(selector):
        match = _EQ_RE.match(term)
        if not match:
            raise bad_request(f"invalid field selector term {term.strip()!r}")
        path, op, value = match.groups()
        result.append((path, "!=" if op == "!=" else "=", value))
    return result


def _field_value(obj: JsonObj, path: str) -> str:
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    return "" if current is None else str(current)


def matches(obj: JsonObj, labels: list[Requirement], fields: list[tuple[str, str, str]] | None = None) -> bool:
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    if not all(r.matches(obj_labels) for r in labels):
        return False
    for path, op, value in fields or []:
        equal = _field_value(obj, path) == value
        if equal != (op == "="):
            return False
    return True


# ------------------------------------------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _named_list(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A practical subset of strategic merge patch: merge patch, except that lists of named objects
    (containers, env, ports) merge by name, and kubectl's ``$setElementOrder``/``$retainKeys``
    directives are ignored. Custom resources get plain merge-patch behaviour for every other list."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif _named_list(value) and _named_list(result.get(key)):
            merged = {item["name"]: item for item in result[key]}
            order = [item["name"] for item in result[key]]
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                    continue
                if item["name"] not in merged:
                    order.append(item["name"])
                merged[item["name"]] = strategic_merge_patch(merged.get(item["name"]), item)
            result[key] = [merged[name] for name in order if name in merged]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def apply_patch(kind: ResourceKind, name: str, obj: JsonObj, patch_type: str, patch: Any) -> JsonObj:
    """Apply a client patch: a patch of the wrong shape is 400 BadRequest, one that cannot apply is 422."""
    if patch_type == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json patch must be a JSON array of operations")
        try:
            parsed = jsonpatch.JsonPatch(patch)
            result = parsed.apply(obj)
        except jsonpatch.InvalidJsonPatch as exc:
            raise bad_request(f"invalid json patch: {exc}") from exc
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise invalid(kind, name, f"the json patch cannot be applied: {exc}", []) from exc
        except (TypeError, KeyError, IndexError, ValueError) as exc:
            raise bad_request(f"invalid json patch: {exc}") from exc
        if not isinstance(result, dict):
            raise invalid(kind, name, "the patched object is not a JSON object", [])
        return result
    if not isinstance(patch, dict):
        raise bad_request(f"{patch_type} body must be a JSON object")
    if patch_type == MERGE_PATCH:
        return merge_patch(obj, patch)
    if patch_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(obj, patch)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
    )


# --------------------------------------------------------------------------------------------------- watch


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    kind: ResourceKind
    object: JsonObj
    resource_version: int


@dataclass
class _Watcher:
    kind: ResourceKind | None
    namespace: str | None
    queue: asyncio.Queue[WatchEvent] = field(default_factory=asyncio.Queue)

    def wants(self, event: WatchEvent) -> bool:
        if self.kind is not None and event.kind != self.kind:
            return False
        return self.namespace is None or event.object["metadata"].get("namespace") == self.namespace


class Watch:
    """A subscription to store changes; iterate it, and close it when done."""

    def __init__(self, store: ObjectStore, watcher: _Watcher) -> None:
        self._store = store
        self._watcher = watcher

    async def next(self) -> WatchEvent:
        return await self._watcher.queue.get()

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WatchEvent]:
        while True:
            yield await self._watcher.queue.get()

    def close(self) -> None:
        self._store._unsubscribe(self._watcher)


# --------------------------------------------------------------------------------------------------- store

Key = tuple[str, str, str, str, str]  # group, version, plural, namespace ("" if cluster-scoped), name


def _spec_part(obj: JsonObj) -> JsonObj:
    """What bumps metadata.generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class ObjectStore:
    def __init__(self) -> None:
        self._kinds: dict[tuple[str, str, str], ResourceKind] = {}
        self._objects: dict[Key, JsonObj] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._watchers: list[_Watcher] = []
        self._history: deque[WatchEvent] = deque(maxlen=_HISTORY)

    # -- kinds

    def register(self, kind: ResourceKind) -> None:
        self._kinds[(kind.group, kind.version, kind.plural)] = kind

    def kinds(self) -> list[ResourceKind]:
        return list(self._kinds.values())

    def kind(self, group: str, version: str, plural: str) -> ResourceKind | None:
        return self._kinds.get((group, version, plural))

    @property
    def resource_version(self) -> int:
        return self._last_rv

    # -- reads

    def _key(self, kind: ResourceKind, namespace: str | None, name: str) -> Key:
        return (kind.group, kind.version, kind.plural, (namespace or "") if kind.namespaced else "", name)

    def get(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj:
        obj = self._objects.get(self._key(kind, namespace, name))
        if obj is None:
            raise not_found(kind, name)
        return copy.deepcopy(obj)

    def find(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj | None:
        obj = self._objects.get(self._key(kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        kind: ResourceKind,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JsonObj]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        prefix = (kind.group, kind.version, kind.plural)
        items = [
            copy.deepcopy(obj)
            for key, obj in sorted(self._objects.items())
            if key[:3] == prefix and (namespace is None or key[3] == namespace) and matches(obj, labels, fields)
        ]
        return items

    # -- writes

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _notify(self, event_type: str, kind: ResourceKind, obj: JsonObj) -> None:
        event = WatchEvent(event_type, kind, copy.deepcopy(obj), int(obj["metadata"]["resourceVersion"]))
        self._history.append(event)
        for watcher in self._watchers:
            if watcher.wants(event):
                watcher.queue.put_nowait(event)

    def create(
        self,
        kind: ResourceKind,
        obj: JsonObj,
        namespace: str | None = None,
        admission: Admission | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        if not isinstance(obj, dict):
            raise bad_request("the request body must be a JSON object")
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be a JSON object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(
                kind,
                "",
                "metadata.name: Required value: name or generateName is required",
                [{"reason": "FieldValueRequired", "message": "Required value", "field": "metadata.name"}],
            )
        if kind.namespaced:
            body_ns = meta.get("namespace")
            if namespace and body_ns and body_ns != namespace:
                raise bad_request(
                    f"the namespace of the provided object ({body_ns}) does not match the namespace "
                    f"sent on the request ({namespace})"
                )
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        key = self._key(kind, meta.get("namespace"), name)
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{kind.resource_name} "{name}" already exists', _details(kind, name))
        if kind.status_subresource:
            new.pop("status", None)  # clients cannot set status on create, as with the real status subresource
        if admission is not None:
            admission(None, new)
        meta.pop("deletionTimestamp", None)
        if dry_run:
            return new | {"apiVersion": kind.api_version, "kind": kind.kind}
        return self._insert(kind, key, new)

    def _insert(self, kind: ResourceKind, key: Key, new: JsonObj) -> JsonObj:
        meta = new["metadata"]
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_iso()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv()
        self._objects[key] = new
        self._notify("ADDED", kind, new)
        return copy.deepcopy(new)

    def put(self, kind: ResourceKind, obj: JsonObj) -> JsonObj:
        """Server-side create-or-replace for the twin's own controllers: status included, no admission."""
        new = copy.deepcopy(obj)
        meta = new["metadata"]
        key = self._key(kind, meta.get("namespace"), meta["name"])
        old = self._objects.get(key)
        if old is None:
            return self._insert(kind, key, new)
        return self._commit(kind, key, old, new, None, None, False)

    def replace(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        obj: JsonObj,
        subresource: str | None = None,
        admission: Admission | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        """PUT semantics: the body replaces the object (or only its status for the status subresource);
        a body carrying a stale metadata.resourceVersion is refused with 409."""
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("the request body must be a JSON object with object metadata")
        key = self._key(kind, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise not_found(kind, name)
        body_name = obj.get("metadata", {}).get("name")
        if body_name and body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        wanted_rv = obj.get("metadata", {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(kind, name)
        return self._commit(kind, key, old, copy.deepcopy(obj), subresource, admission, True, dry_run)

    def patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        subresource: str | None = None,
        admission: Admission | None = None,
        dry_run: bool = False,
    ) -> JsonObj:
        key = self._key(kind, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise not_found(kind, name)
        patched = apply_patch(kind, name, copy.deepcopy(old), patch_type, patch)
        wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise conflict(kind, name)
        return self._commit(kind, key, old, patched, subresource, admission, True, dry_run)

    def update(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        mutate: Callable[[JsonObj], None],
        subresource: str | None = None,
    ) -> JsonObj:
        """Read-modify-write for in-process controllers (no admission, no conflict: one loop, no races)."""
        key = self._key(kind, namespace, name)
        old = self._objects.get(key)
        if old is None:
            raise not_found(kind, name)
        new = copy.deepcopy(old)
        mutate(new)
        return self._commit(kind, key, old, new, subresource, None, False)

    def set_status(self, kind: ResourceKind, namespace: str | None, name: str, status: JsonObj) -> JsonObj:
        """Replace an object's status (for in-process controllers)."""

        def mutate(obj: JsonObj) -> None:
            obj["status"] = status

        return self.update(kind, namespace, name, mutate, "status")

    def _commit(
        self,
        kind: ResourceKind,
        key: Key,
        old: JsonObj,
        new: JsonObj,
        subresource: str | None,
        admission: Admission | None,
        client: bool,
        dry_run: bool = False,
    ) -> JsonObj:
        if subresource not in (None, "status"):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({subresource})")
        if subresource == "status":
            if not kind.status_subresource:
                raise ApiError(404, "NotFound", f"{kind.resource_name} has no status subresource")
            # Writes to /status change only status.
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if not isinstance(new.get("metadata"), dict):
                raise bad_request("metadata must be a JSON object")
            if kind.status_subresource and client:
                # Client writes to the main resource ignore status, as for CRDs with the status subresource.
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            # Identity and bookkeeping fields are the server's; only its own controllers start a graceful
            # deletion (deletionTimestamp).
            meta = new["metadata"]
            old_meta = old["metadata"]
            owned = ("name", "namespace", "uid", "creationTimestamp", "generation")
            for field_name in (*owned, "deletionTimestamp") if client else owned:
                if field_name in old_meta:
                    meta[field_name] = old_meta[field_name]
                else:
                    meta.pop(field_name, None)
            if admission is not None:
                admission(copy.deepcopy(old), new)
            if _spec_part(new) != _spec_part(old):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        new["apiVersion"] = kind.api_version
        new["kind"] = kind.kind
        if _without_rv(new) == _without_rv(old):
            return copy.deepcopy(old)  # a no-op write keeps the resourceVersion, as the API server does
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._objects[key] = new
        self._notify("MODIFIED", kind, new)
        return copy.deepcopy(new)

    def delete(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj:
        key = self._key(kind, namespace, name)
        obj = self._objects.pop(key, None)
        if obj is None:
            raise not_found(kind, name)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._notify("DELETED", kind, obj)
        return copy.deepcopy(obj)

    # -- watch

    def watch(
        self,
        kind: ResourceKind | None = None,
        namespace: str | None = None,
        since: int | None = None,
    ) -> Watch:
        """Subscribe to changes (of one kind, optionally one namespace). With ``since``, events after that
        resourceVersion are replayed first; too old a version raises 410 Gone, as the API server does."""
        watcher = _Watcher(kind, namespace)
        if since is not None and since < self._last_rv:
            oldest = self._history[0].resource_version if self._history else self._last_rv + 1
            if since + 1 < oldest:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({oldest - 1})")
            for event in self._history:
                if event.resource_version > since and watcher.wants(event):
                    watcher.queue.put_nowait(event)
        self._watchers.append(watcher)
        return Watch(self, watcher)

    def _unsubscribe(self, watcher: _Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)


def _without_rv(obj: JsonObj) -> JsonObj:
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return obj | {"metadata": meta}
