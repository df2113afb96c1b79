"""The write path for definitions: validate, version and store; plus the lookups.

Definitions are immutable: nothing here updates a row. Storing a name again
creates the next version.
"""

import difflib
import functools
import hashlib
import json
import uuid
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Max, OuterRef, ProtectedError, QuerySet, Subquery

from definitions.models import Definition
from definitions.validation import validate_definition

# Two stores of the same name can compute the same next version; the loser's
# insert hits the unique (name, version) constraint and tries again.
STORE_ATTEMPTS = 5
INLINE_NAME = "inline"


class DefinitionInvalid(Exception):
    """The definition has problems; ``errors`` lists each as ``{"path", "message"}``."""

    def __init__(self, errors: list[dict]):
        self.errors = errors
        first = errors[0]
        summary = f"{first['path']}: {first['message']}" if first["path"] else first["message"]
        super().__init__(summary if len(errors) == 1 else f"Definition is invalid ({len(errors)} problems).")


def spec_digest(spec: dict) -> str:
    """SHA-256 of the spec as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _validated(source: Any) -> dict:
    result = validate_definition(source)
    if result.errors:
        raise DefinitionInvalid(result.errors)
    return result.spec


def store_definition(source: Any, created_by: str = "", public_id: uuid.UUID | None = None) -> Definition:
    """Validate ``source`` and store it as the next version of its name.

    ``public_id`` is the id the original Trama's API names it by (a new one when None).
    Raises DefinitionInvalid (nothing stored) when it has problems, IntegrityError
    when ``public_id`` is already taken.
    """
    return _store_validated(source, _validated(source), created_by, public_id)


def _store_validated(source: Any, spec: dict, created_by: str, public_id: uuid.UUID | None = None) -> Definition:
    for attempt in range(STORE_ATTEMPTS):
        try:
            with transaction.atomic():
                return _insert_next_version(source, spec, created_by, public_id or uuid.uuid4())
        except IntegrityError:
            if attempt == STORE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def store_definition_if_changed(source: Any, created_by: str = "") -> tuple[Definition, bool]:
    """``store_definition``, except that a source the latest version already says stores nothing.

    Returns (definition, stored). "Already says": the same normalized spec (its digest), the same
    description and the same drawing (``editor``: direction, hand-placed nodes). A change the engine
    cannot see otherwise (a default written out, saga or graph form) is no change. Two identical
    saves racing may still both store (the check holds no lock); that costs a redundant version,
    never a lost one. Raises DefinitionInvalid.
    """
    spec = _validated(source)
    latest = stored_definitions().filter(name=spec["name"]).order_by("-version").first()
    unchanged = latest is not None and latest.digest == spec_digest(spec)
    if unchanged and _presentation(latest.source) == _presentation(source):
        return latest, False
    return _store_validated(source, spec, created_by), True


def _presentation(source: Any) -> tuple:
    """What the source says beside the spec: the description and the editor's drawing."""
    if not isinstance(source, dict):
        return (None, None)
    return (source.get("description"), source.get("editor"))


def _insert_next_version(source: Any, spec: dict, created_by: str, public_id: uuid.UUID) -> Definition:
    """Call inside transaction.atomic(); a concurrent insert of the same version raises IntegrityError."""
    current = Definition.objects.filter(name=spec["name"], is_inline=False).aggregate(latest=Max("version"))["latest"]
    return Definition.objects.create(
        public_id=public_id,
        name=spec["name"],
        version=(current or 0) + 1,
        kind=spec["kind"],
        source=source,
        spec=spec,
        digest=spec_digest(spec),
        created_by=created_by[:150],
    )


def store_inline_definition(source: Any) -> Definition:
    """Validate and store a definition sent inline with an execution start (version 0).

    Rows are shared by digest: the same normalized spec reuses the existing row.
    A source without a name is named "inline". Raises DefinitionInvalid.
    """
    if isinstance(source, dict) and "name" not in source:
        source = {"name": INLINE_NAME, **source}
    spec = _validated(source)
    digest = spec_digest(spec)
    existing = Definition.objects.filter(is_inline=True, digest=digest).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return Definition.objects.create(
                name=spec["name"], version=0, kind=spec["kind"], source=source, spec=spec, digest=digest, is_inline=True
            )
    except IntegrityError:
        # A concurrent start stored the same spec first (unique digest among inline rows).
        return Definition.objects.get(is_inline=True, digest=digest)


def stored_definitions() -> QuerySet[Definition]:
    """Every named (not inline) version."""
    return Definition.objects.filter(is_inline=False)


def latest_definitions(name_contains: str = "") -> QuerySet[Definition]:
    """The latest version of each name, by name; optionally names containing ``name_contains`` (any case)."""
    newest = stored_definitions().filter(name=OuterRef("name")).order_by("-version").values("version")[:1]
    latest = stored_definitions().filter(version=Subquery(newest))
    if name_contains:
        latest = latest.filter(name__icontains=name_contains)
    return latest.order_by("name")


def definition_versions(name: str) -> QuerySet[Definition]:
    """Every version of ``name``, newest first (empty when the name is unknown)."""
    return stored_definitions().filter(name=name).order_by("-version")


class DefinitionNotFound(Definition.DoesNotExist):
    """No stored definition by this name (and version). ``reason`` says why, for the answer to the caller."""

    def __init__(self, name: str, version: int | None = None):
        self.name, self.version = name, version
        super().__init__(f"no definition {name!r} version {'latest' if version is None else version}")

    @functools.cached_property
    def reason(self) -> tuple[str, str]:
        """(field at fault, message naming the closest names or the latest version): see ``why_missing``."""
        return why_missing(self.name, self.version)


def find_definition(name: str, version: int | None = None) -> Definition:
    """Version ``version`` of ``name``, or its latest version when None; raises DefinitionNotFound.

    The one lookup every caller (API, pages, commands) makes by name, each
    answering DefinitionNotFound in its own way (404, 400, exit code). Every
    start request makes it, so it is one plain SQL query for the id (no ORM
    compilation) and the row comes from this process's cache of stored rows.
    """
    pk = _stored_definition_id(name, version)
    if pk is None:
        raise DefinitionNotFound(name, version)
    return definition_by_id(pk)


def _stored_definition_id(name: str, version: int | None) -> int | None:
    table = connection.ops.quote_name(Definition._meta.db_table)
    query = f"SELECT id FROM {table} WHERE name = %s AND NOT is_inline"
    if version is None:
        query, params = query + " ORDER BY version DESC LIMIT 1", [name]
    else:
        query, params = query + " AND version = %s", [name, version]
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


@functools.lru_cache(maxsize=1024)
def definition_by_id(pk: int) -> Definition:
    """A stored definition, kept by this process: a row never changes once stored (see the module docstring)."""
    return Definition.objects.get(pk=pk)


def why_missing(name: str, version: int | None = None) -> tuple[str, str]:
    """(field at fault, message) for a name, or version of it, that is not stored.

    A stored name with a missing version names its latest version; an unknown
    name names the closest stored names, so a typo is one look away. Call only
    after a lookup failed (it costs one or two more queries).
    """
    latest = definition_versions(name).values_list("version", flat=True).first()
    if latest is not None and version is not None:
        return "version", f"Definition '{name}' has no version {version}; the latest is {latest}."
    names = stored_definitions().order_by().values_list("name", flat=True).distinct()
    close = [f"'{n}'" for n in difflib.get_close_matches(name, list(names), n=3)]
    if not close:
        return "definition", f"No definition named '{name}'. GET /api/v1/definitions/ lists the stored ones."
    options = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} or {close[-1]}"
    return "definition", f"No definition named '{name}'. Did you mean {options}?"


# --- The original Trama's view of stored definitions (its API: executions/compat/) ------------------


class DefinitionInUse(Exception):
    """A stored version cannot be deleted: executions pin it (they keep the exact version they ran)."""


def version_label(definition: Definition) -> str:
    """The version as the original names it: the ``version`` string of a definition in its format
    (``"v1"``), else Trama's version number as text."""
    label = definition.source.get("version") if isinstance(definition.source, dict) else None
    return label if isinstance(label, str) and "kind" not in definition.source else str(definition.version)


def _labelled(name: str, label: str) -> QuerySet[Definition]:
    """The stored versions of ``name`` in the original's format whose ``version`` string is ``label``."""
    return definition_versions(name).filter(source__version=label).exclude(source__has_key="kind")


def has_version_label(name: str, label: str) -> bool:
    """Whether ``name`` is stored with the original's version string ``label`` (the original refuses a second)."""
    return _labelled(name, label).exists()


def find_by_version_label(name: str, label: str) -> Definition | None:
    """The stored version of ``name`` the original would find as ``label``: the newest whose original
    ``version`` is ``label``, else (a number) Trama's version ``label``; None when neither exists."""
    found = _labelled(name, label).first()
    if found is None and label.isdigit() and len(label) < 10:
        found = definition_versions(name).filter(version=int(label)).first()
    return found


def delete_definition(public_id: uuid.UUID) -> bool:
    """Delete a stored version; False when there is none. Raises DefinitionInUse when executions pin it."""
    try:
        deleted, _ = stored_definitions().filter(public_id=public_id).delete()
    except ProtectedError as exc:
        count = len(exc.protected_objects)
        raise DefinitionInUse(f"{count} execution(s) ran this version and keep it; it cannot be deleted") from None
    definition_by_id.cache_clear()  # this process may hold it; others only ever look up ids executions pin
    return deleted > 0
