"""Small helpers shared by the operator commands (the leading underscore keeps Django from listing it).

Each helper turns an operator's mistake into a ``CommandError`` with a message
that says what to fix, so no command ever ends in a traceback.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import CommandError, CommandParser

# `trama_run` promises exit code 3 for bad usage; argparse would exit 2 (which means COMPENSATED there).
USAGE_EXIT_CODE = 3
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, option: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s`` → timedelta; CommandError for anything else or zero."""
    match = _DURATION.match(text or "")
    if not match:
        raise CommandError(f"{option} must be a number and a unit s, m, h or d (e.g. 30d, 12h), got {text!r}")
    amount = float(match.group(1))
    if amount <= 0:
        raise CommandError(f"{option} must be more than zero, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: amount})


def load_json_object(path: str, what: str = "input", stdin: TextIO | None = None) -> dict:
    """Read a JSON object from a file, or from stdin when ``path`` is ``-``; CommandError naming the problem."""
    text = _read_text(path, what, stdin)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{what} file {path!r} is not valid JSON: {exc}")
    if not isinstance(value, dict):
        raise CommandError(f"{what} file {path!r} must hold a JSON object, got {type(value).__name__}")
    return value


def _read_text(path: str, what: str, stdin: TextIO | None) -> str:
    if path == "-":
        return (stdin or sys.stdin).read()
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{what} file {path!r} does not exist (or is not a file)")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{what} file {path!r} cannot be read: {exc}")


def usage_errors_exit_with(parser: CommandParser, code: int = USAGE_EXIT_CODE) -> CommandParser:
    """Make argparse's usage errors exit with ``code`` instead of 2 (only when run from the shell)."""
    original_exit = parser.exit

    def exit_with(status: int = 0, message: str | None = None):
        original_exit(code if status == 2 else status, message)

    parser.exit = exit_with  # type: ignore[method-assign]
    return parser


def table(rows: list[list[Any]], headers: list[str]) -> str:
    """Plain left-aligned columns, as operators read them in a terminal."""
    cells = [headers] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def when(value) -> str:
    """A timestamp for tables: ISO-8601 to the second, or ``-``."""
    return value.isoformat(timespec="seconds") if value is not None else "-"
