"""Log formatting: TRAMA_LOG_FORMAT=text (default) or json (one JSON object per line).

The JSON line carries the standard fields (ts, level, logger, message) and
every ``extra`` the caller passed, so the engine's state-change lines
(executions/telemetry.py) come out with execution_id, node_id and attempt as
fields a log pipeline can index.
"""

import json
import logging
import os
import re
from datetime import UTC, datetime

from django.core.exceptions import ImproperlyConfigured

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_FORMATTERS = {"text": "plain", "json": "json"}

# A callback token in a URL path (POST /api/v1/callbacks/{token}/) is a credential that stays valid
# until its node's deadline plus TRAMA_CALLBACK_GRACE_SECONDS: nothing that logs or traces a path may
# keep it. "<" is excluded so the route pattern ("callbacks/<str:token>/") is left as it is.
_CALLBACK_TOKEN = re.compile(r"(/callbacks/)[^/?#\s\"'<>]+")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with every callback token in a URL path replaced by ``<redacted>``."""
    return _CALLBACK_TOKEN.sub(rf"\g<1>{REDACTED}", text) if "/callbacks/" in text else text


class RedactFilter(logging.Filter):
    """Removes callback tokens from a record's message and from its extras (``request`` above all).

    On the django.request and django.server loggers (their 4xx lines name the path) and on
    every handler, so a record from any logger is cleaned before it is written.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/callbacks/" in message:
            record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_") and not isinstance(value, int | float | bool):
                text = str(value)
                if "/callbacks/" in text:
                    setattr(record, key, redact(text))
        return True


def formatter_from_env(name: str = "TRAMA_LOG_FORMAT", default: str = "text") -> str:
    """The LOGGING formatter the variable names; fails loudly on anything but text or json."""
    raw = os.environ.get(name, default).strip().lower()
    if raw not in _FORMATTERS:
        raise ImproperlyConfigured(f"{name} must be text or json, got {raw!r}")
    return _FORMATTERS[raw]


class PlainFormatter(logging.Formatter):
    """The text format, plus the execution a record is about when its message does not name it.

    The engine's warnings ("lost the execution to another worker", "database
    error, retrying the write") carry the execution only as an ``extra``, which
    the text format would drop; the JSON format has every extra anyway.
    """

    _NAMED = ("execution_id", "parent_execution_id")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)  # before any traceback, which format() appends
        named = {key: str(getattr(record, key, "")) for key in self._NAMED}
        missing = [f"{key}={value}" for key, value in named.items() if value not in record.message]
        return f"{line} [{' '.join(missing)}]" if missing else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, separators=(",", ":"))
