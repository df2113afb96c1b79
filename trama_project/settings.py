"""Trama settings: every value comes from an environment variable with a safe default.

The variables are documented in docs/configuration.md. Read settings through
``django.conf.settings`` at the point of use so tests can override them.
"""

import functools
import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
from django.utils.functional import lazy

from trama_project.env import env_bool, env_float, env_int, env_list, env_str
from trama_project.logging import formatter_from_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TRAMA_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


@functools.cache
def _secret_key() -> str:
    """The server secret: TRAMA_SECRET_KEY, else the key in var/secret_key (never committed).

    Called on first use, not at import (SECRET_KEY below is a lazy string): importing the
    settings writes nothing. The first process of a checkout that needs a key generates the
    file; every later one, and every restart, reads the same key.
    """
    explicit = env_str("TRAMA_SECRET_KEY", "")
    if explicit:
        return explicit
    path = VAR_DIR / "secret_key"
    if not path.exists():
        _create_once(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


def _create_once(path: Path, content: str) -> None:
    """Create ``path`` (mode 600) holding ``content`` unless it exists, atomically: processes that
    start together (make run starts web, workers and timers at once) all end up reading one key."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")  # mode 600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(content)
        os.link(tmp, path)  # fails if another process created it first: its key wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


SECRET_KEY = lazy(_secret_key, str)()
DEBUG = env_bool("TRAMA_DEBUG", False)
ALLOWED_HOSTS = env_list("TRAMA_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("TRAMA_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_prometheus",
    "trama_project",
    "definitions",
    "executions",
    "graph_editor",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from this process under runserver (make run) and gunicorn alike (see STATIC_ROOT).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "trama_project.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "trama_project.urls"
WSGI_APPLICATION = "trama_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
# SQLite (WAL mode) under var/ by default so a fresh clone needs no server;
# PostgreSQL when DATABASE_URL points at it. Persistent connections matter: the
# ORM broker on PostgreSQL opens a connection per task without them.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'trama.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("TRAMA_CONN_MAX_AGE", 300, minimum=0))}
# PostgreSQL connections come from a pool per process (Django 5.2 + psycopg_pool): a worker thread
# takes one around each write and never holds one while its call is in flight, so connections stay
# bounded (processes x TRAMA_DB_POOL_SIZE) whatever TRAMA_WORKER_CONCURRENCY is.
TRAMA_DB_POOL_SIZE = env_int("TRAMA_DB_POOL_SIZE", 4, minimum=0)
# django-prometheus' wrapper of the same backend: django_db_* (queries, errors, new connections) on
# /metrics. It subclasses Django's backend, so the pool and the options below apply unchanged.
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace("django.db.", "django_prometheus.db.")
if DATABASES["default"]["ENGINE"].endswith(".sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Statements a connection runs this many times are prepared on the server (parsed and planned
    # once): the engine's per-step statements are the same every time. 0 turns it off, as PgBouncer
    # in transaction mode needs.
    prepare_threshold = env_int("TRAMA_DB_PREPARE_THRESHOLD", 5, minimum=0)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = prepare_threshold or None
    if TRAMA_DB_POOL_SIZE:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections instead
        # CONN_HEALTH_CHECKS (above) makes the pool check each connection as it hands it out (an empty
        # query): one the server ended while it sat idle (a restart, a failover) is replaced, not used.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": TRAMA_DB_POOL_SIZE,
            "timeout": env_float("TRAMA_DB_POOL_TIMEOUT_SECONDS", 10.0, minimum=0.1),
        }
    # A process stopped inside a transaction (SIGSTOP, a stalled VM) would hold its row locks for
    # ever; PostgreSQL ends such a session after this long, so the next worker is never blocked.
    idle_ms = int(env_float("TRAMA_DB_IDLE_TRANSACTION_TIMEOUT_SECONDS", 60.0, minimum=1.0) * 1000)
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c idle_in_transaction_session_timeout={idle_ms}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------
# WhiteNoise serves STATIC_ROOT at STATIC_URL from the web process itself, with TRAMA_DEBUG off,
# so the admin, /api/docs/ and the UI pages work behind any server without a proxy rule.
# `manage.py collectstatic` fills STATIC_ROOT: `make run` (trama_dev) runs it at every start,
# deployments in their release step (docs/operations.md). The storage also writes a gzip copy
# of each text file, which WhiteNoise sends to clients that accept it.
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Request limits -------------------------------------------------------------
# Bodies over this size are refused with 413 before parsing (definitions, starts, callbacks).
TRAMA_MAX_REQUEST_BYTES = env_int("TRAMA_MAX_REQUEST_BYTES", 1_048_576, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = TRAMA_MAX_REQUEST_BYTES
TRAMA_MAX_NODES = env_int("TRAMA_MAX_NODES", 1000, minimum=1)
TRAMA_MAX_INPUT_BYTES = env_int("TRAMA_MAX_INPUT_BYTES", 262_144, minimum=2)
# JSON bodies nested deeper than this are refused (400) before anything recursive touches them.
TRAMA_MAX_JSON_DEPTH = env_int("TRAMA_MAX_JSON_DEPTH", 100, minimum=8)
# JSON Logic (definitions/rules.py), per evaluation: operators applied, the largest value one operator
# may build and all values built together (sizes in characters plus list/object items); past one, the rule fails.
TRAMA_RULE_MAX_OPERATIONS = env_int("TRAMA_RULE_MAX_OPERATIONS", 100_000, minimum=100)
TRAMA_RULE_MAX_VALUE_SIZE = env_int("TRAMA_RULE_MAX_VALUE_SIZE", 100_000, minimum=100)
TRAMA_RULE_MAX_TOTAL_SIZE = env_int("TRAMA_RULE_MAX_TOTAL_SIZE", 1_000_000, minimum=100)
# POST definitions/simulate/: the most its steps may hold, as JSON, before the dry run stops with a 400.
TRAMA_SIMULATION_MAX_BYTES = env_int("TRAMA_SIMULATION_MAX_BYTES", 4_194_304, minimum=65_536)

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "trama_project.authentication.BearerTokenAuthentication",
        "graph_editor.authentication.StaffSessionAuthentication",  # the /ui/ pages: staff session + CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "trama_project.api.Pagination",  # limit 1-500, default 50; bad values are 400s
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["trama_project.api.JSONParser"],
    "EXCEPTION_HANDLER": "trama_project.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Trama API",
    "DESCRIPTION": "Saga and workflow runtime driven over plain HTTP.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several serializers have a `status` field; name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        "ExecutionStatusEnum": "executions.choices.ExecutionStatus.choices",
        "StepStatusEnum": "executions.choices.StepStatus.choices",
    },
}

# --- Workers --------------------------------------------------------------------
# django-q2 is only a wake-up signal; PostgreSQL holds the truth. The ORM broker
# needs no extra service; TRAMA_BROKER_URL=redis://... switches to Redis.
TRAMA_BROKER_URL = env_str("TRAMA_BROKER_URL", "")
Q_CLUSTER = {
    "name": "trama",
    "workers": env_int("TRAMA_WORKERS", 2, minimum=1),
    # Each task only hands its execution to a thread of the process (executions/inflight.py).
    "recycle": 5000,
    "timeout": env_int("TRAMA_TASK_TIMEOUT", 600, minimum=10),
    "retry": env_int("TRAMA_TASK_TIMEOUT", 600, minimum=10) + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": 0,
    "catch_up": False,
    # On PostgreSQL the ORM broker is woken by NOTIFY (executions/broker.py) and polls only on SQLite.
    "broker_class": "executions.broker.ListeningORM",
    "poll": env_float("TRAMA_ORM_POLL_SECONDS", 0.05, minimum=0.01),
    "bulk": 10,
    "orm": "default",
    "label": "Task queue",
}
if TRAMA_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
    del Q_CLUSTER["orm"], Q_CLUSTER["broker_class"]
    Q_CLUSTER["redis"] = TRAMA_BROKER_URL

# How long an idle ORM-broker cluster on PostgreSQL waits for a NOTIFY before looking anyway.
TRAMA_QUEUE_IDLE_SECONDS = env_float("TRAMA_QUEUE_IDLE_SECONDS", 1.0, minimum=0.05)

# Executions one worker process advances at once, each in a thread that waits on its service's
# answer without holding a database connection (executions/inflight.py, docs/engine.md).
TRAMA_WORKER_CONCURRENCY = env_int("TRAMA_WORKER_CONCURRENCY", 64, minimum=1)

# --- Engine ---------------------------------------------------------------------
TRAMA_PUBLIC_URL = env_str("TRAMA_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
# How long a worker owns an execution it claimed; a worker that dies is replaced
# once this passes. Every request timeout must stay below it.
TRAMA_LEASE_SECONDS = env_float("TRAMA_LEASE_SECONDS", 120.0, minimum=1.0)
TRAMA_TIMER_POLL_SECONDS = env_float("TRAMA_TIMER_POLL_SECONDS", 0.2, minimum=0.01)
# A due execution nobody claimed this long after the timer loop enqueued it is enqueued again
# (the queue was lost, or a worker died holding the task before claiming).
TRAMA_RENUDGE_SECONDS = env_float("TRAMA_RENUDGE_SECONDS", 15.0, minimum=1.0)
TRAMA_RESPONSE_BODY_CAP = env_int("TRAMA_RESPONSE_BODY_CAP", 65_536, minimum=0)
TRAMA_DEFAULT_REQUEST_TIMEOUT = env_float("TRAMA_DEFAULT_REQUEST_TIMEOUT", 10.0, minimum=0.1)
TRAMA_EGRESS_ALLOW = env_list("TRAMA_EGRESS_ALLOW", [])
# Secrets offered to templates as {{secrets.NAME}}: every TRAMA_SECRET_<NAME> variable.
TRAMA_SECRETS_PREFIX = "TRAMA_SECRET_"
# Keys that sign callback tokens; the first signs, all verify (rotate by prepending).
TRAMA_CALLBACK_KEYS = env_list("TRAMA_CALLBACK_KEYS", []) or [SECRET_KEY]
# How long after a node's deadline its callback token still verifies (late callbacks get 409, then 410).
TRAMA_CALLBACK_GRACE_SECONDS = env_int("TRAMA_CALLBACK_GRACE_SECONDS", 3600, minimum=0)
# /metrics counts trama_* from the database; scrapes this close to the last one reuse it (docs/metrics.md).
TRAMA_METRICS_CACHE_SECONDS = env_float("TRAMA_METRICS_CACHE_SECONDS", 5.0, minimum=0.0)
# Finished rows older than this are folded into /metrics' running totals (executions/tallies.py): longer
# than a write can take to commit after its step closed; the newer rows are read on every scrape.
# Worker processes and timer loops write their health (executions/heartbeat.py) this often.
TRAMA_HEARTBEAT_SECONDS = env_float("TRAMA_HEARTBEAT_SECONDS", 5.0, minimum=0.05)
TRAMA_METRICS_SETTLE_SECONDS = env_float("TRAMA_METRICS_SETTLE_SECONDS", 60.0, minimum=0.0)

# --- Production hardening (manage.py check --deploy) ----------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("TRAMA_SSL_REDIRECT", False)
    SESSION_COOKIE_SECURE = env_bool("TRAMA_SECURE_COOKIES", False)
    CSRF_COOKIE_SECURE = env_bool("TRAMA_SECURE_COOKIES", False)
    SECURE_HSTS_SECONDS = env_int("TRAMA_HSTS_SECONDS", 0, minimum=0)
    # Only sent when TRAMA_HSTS_SECONDS > 0; docs/security.md says when to turn them off.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("TRAMA_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("TRAMA_HSTS_PRELOAD", True)
    # Load balancers probe /healthz over plain HTTP; a redirect would read as "down".
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "()": "trama_project.logging.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {"()": "trama_project.logging.JsonFormatter"},
    },
    # Callback tokens in URL paths never reach a log line (trama_project/logging.py).
    "filters": {"redact": {"()": "trama_project.logging.RedactFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": formatter_from_env("TRAMA_LOG_FORMAT"),
            "filters": ["redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("TRAMA_LOG_LEVEL", "INFO")},
    "loggers": {
        # Their 4xx/5xx lines ("Forbidden: /api/v1/callbacks/<token>/") carry the path and the request.
        "django.request": {"filters": ["redact"]},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False, "filters": ["redact"]},
        "django-q": {"level": env_str("TRAMA_QUEUE_LOG_LEVEL", "WARNING")},
        # urllib3 logs each request's URL at DEBUG, query string included: a {{secrets.X}} there would leak.
        "urllib3": {"level": "WARNING"},
    },
}
