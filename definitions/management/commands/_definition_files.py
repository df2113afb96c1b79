"""Reading and writing definition files for trama_export, trama_import and trama_demo.

A file holds one definition's ``source`` (the JSON as its author wrote it), so
an export can be edited, kept in version control and imported elsewhere.
Importing goes through ``definitions.services.store_definition``, the same
write path as ``POST definitions/``; a file whose normalized spec matches the
stored one is reported "unchanged" instead of minting a new version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.core.management.base import CommandError

from definitions.models import Definition
from definitions.services import DefinitionInvalid, definition_versions, spec_digest, store_definition
from definitions.validation import validate_definition

_VERSIONED = re.compile(r"^(?P<stem>.+)\.v(?P<version>\d+)\.json$")


def file_name(definition: Definition, with_version: bool) -> str:
    return f"{definition.name}.v{definition.version}.json" if with_version else f"{definition.name}.json"


def write_source(definition: Definition, directory: Path, with_version: bool) -> Path:
    path = directory / file_name(definition, with_version)
    path.write_text(json.dumps(definition.source, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def definition_files(paths: list[str]) -> list[Path]:
    """Expand FILE|DIR arguments: a directory contributes its *.json files, older versions first."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.json"), key=_file_order))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{raw!r} is neither a file nor a directory")
    return files


def _file_order(path: Path) -> tuple[str, int]:
    # "x.v10.json" must come after "x.v2.json", so versions are recreated in order.
    match = _VERSIONED.match(path.name)
    return (match["stem"], int(match["version"])) if match else (path.name.removesuffix(".json"), 0)


@dataclass
class Imported:
    """What happened to one file: "stored", "unchanged" or "invalid" (``errors`` then says why)."""

    path: Path
    outcome: str
    definition: Definition | None = None
    errors: list[dict] | None = None


def import_files(files: list[Path], created_by: str, write: Callable[[str], object]) -> list[Imported]:
    """Import each file in order, writing what happened to it (``describe``) as it goes."""
    results = [import_file(path, created_by=created_by) for path in files]
    for result in results:
        for line in describe(result):
            write(line)
    return results


def import_file(path: Path, created_by: str) -> Imported:
    source, problem = _read(path)
    if problem:
        return Imported(path, "invalid", errors=[{"path": "", "message": problem}])
    result = validate_definition(source)
    if result.errors:
        return Imported(path, "invalid", errors=result.errors)
    same = _identical_stored(path, result.spec)
    if same is not None:
        return Imported(path, "unchanged", definition=same)
    try:
        return Imported(path, "stored", definition=store_definition(source, created_by=created_by))
    except DefinitionInvalid as exc:
        return Imported(path, "invalid", errors=exc.errors)


def _read(path: Path) -> tuple[object, str]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), ""
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read the file: {exc}"
    except ValueError as exc:
        return None, f"not valid JSON: {exc}"


def _identical_stored(path: Path, spec: dict) -> Definition | None:
    """The stored version this file already is: the latest, or (for ``name.vN.json``) version N."""
    versions = definition_versions(spec["name"])
    latest = versions.first()
    digest = spec_digest(spec)
    if latest is not None and latest.digest == digest:
        return latest
    match = _VERSIONED.match(path.name)
    if match:
        return versions.filter(version=int(match["version"]), digest=digest).first()
    return None


def describe(imported: Imported) -> list[str]:
    """The lines an operator reads about one file."""
    if imported.outcome == "invalid":
        lines = [f"{imported.path}: invalid"]
        return lines + [f"  {e['path'] or '(top level)'}: {e['message']}" for e in imported.errors or []]
    d = imported.definition
    return [f"{imported.path}: {imported.outcome} ({d.name} v{d.version})"]
