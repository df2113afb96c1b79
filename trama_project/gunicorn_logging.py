"""gunicorn's loggers for Trama (``logger_class`` in deploy/gunicorn.conf.py).

Two differences from gunicorn's own: no callback token reaches the access or
error log (the token in ``POST /api/v1/callbacks/{token}/`` is a credential,
see trama_project/logging.py), and with TRAMA_LOG_FORMAT=json every line is a
JSON object like the application's, the access line with its fields
(method, path, status, duration_ms...) as keys.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger as GunicornLogger

from trama_project.logging import JsonFormatter, RedactFilter, formatter_from_env, redact


class Logger(GunicornLogger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        json_lines = formatter_from_env("TRAMA_LOG_FORMAT") == "json"
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactFilter) for f in log.filters):
                log.addFilter(RedactFilter())
            for handler in log.handlers:
                if json_lines:
                    handler.setFormatter(JsonFormatter())

    def atoms(self, resp, req, environ, request_time) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) and "/callbacks/" in v else v for k, v in atoms.items()}

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        if formatter_from_env("TRAMA_LOG_FORMAT") != "json":
            return super().access(resp, req, environ, request_time)
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {
            "event": "access",
            "pid": os.getpid(),
            "remote_addr": atoms["h"],
            "method": atoms["m"],
            "path": redact(environ.get("RAW_URI") or atoms["U"] or ""),
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "bytes": atoms["B"],
            "duration_ms": atoms["D"] / 1000,
            "user_agent": atoms["a"],
            "referer": atoms["f"],
        }
        self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
