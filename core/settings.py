"""Process-wide settings, read from the environment (and `.env`) with pydantic-settings.

Every variable here is documented in `.env.example` and the README. Defaults are the *embedded*
ones: with nothing configured the platform runs in-process (SQLite checkpointer, milvus-lite file,
rule-based LLM mode, file log source, in-process cache). Validation fails fast with one readable line
per bad variable, so a typo in `REDIS_URL` stops start-up instead of surfacing as a timeout later.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import models
from core.config_files import ConfigFileError, read_utf8


class SettingsError(ValueError):
    """Raised with a human-readable, one-line-per-problem message when the environment is invalid."""


def _check_url(value: str | None, schemes: tuple[str, ...], name: str) -> str | None:
    if value is None or value == "":
        return None
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ValueError(f"{name} must start with one of {', '.join(s + '://' for s in schemes)} (got {value!r})")
    if not parsed.netloc and parsed.scheme not in ("unix", "file"):
        raise ValueError(f"{name} has no host part (got {value!r})")
    return value


class Settings(BaseSettings):
    # extra="allow": a toolset's settings passed by name (or found in .env) are kept for the toolset,
    # which validates them with its own model (tools/<name>/settings.py); the environment itself is
    # read by that model.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="allow",
                                      env_ignore_empty=True)

    # --- HTTP API -------------------------------------------------------------------------------
    API_HOST: str = "0.0.0.0"
    API_PORT: int = Field(8000, ge=1, le=65535)
    DEBUG: bool = False
    # Log lines: `json` (one object per line) or readable `text`; the level (unset: WARNING, plus the INFO
    # event lines of `aiops serve`, `worker`, `bot` and `watch`: one per alert, incident, plan, decision and
    # action; DEBUG with DEBUG=true)
    LOG_FORMAT: Literal["text", "json"] = "text"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None
    AIOPS_API_TOKEN: str | None = None  # a service token: read endpoints and analyze, never approvals
    API_TOKENS: str | None = None  # "alice:<token>,bob:<token>": the user behind a bearer token
    API_TOKENS_FILE: Path | None = None  # one "user:token" per line (# comments), merged with API_TOKENS
    WEBHOOK_TOKEN: str | None = None  # when set, Alertmanager must send "Authorization: Bearer <it>"
    # The web console (/ui/): sessions are signed with this (empty: a random key per start, so a restart
    # signs everyone out) and last this long.
    CONSOLE_SESSION_SECRET: str | None = None
    CONSOLE_SESSION_HOURS: float = Field(12.0, gt=0, le=24 * 30)
    WEBHOOK_MAX_BYTES: int = Field(1_048_576, ge=1024)  # larger webhook bodies get 413
    API_MAX_BODY_BYTES: int = Field(65_536, ge=1024)  # any other request body larger than this gets 413
    API_READ_TIMEOUT_SECONDS: float = Field(30.0, gt=0)  # a request's headers and body must arrive within this
    # Off loopback, `aiops serve` needs WEBHOOK_TOKEN and a reader/user token; this overrides that (and lets
    # anonymous clients off loopback in), loudly, at every start.
    ALLOW_INSECURE_NO_AUTH: bool = False
    ANALYZE_WAIT_SECONDS: float = Field(300.0, gt=0)  # how long POST /api/v1/analyze?wait=true waits
    # processes besides `aiops serve` that accept webhooks on its port (0: it alone; on 2 cores, 1 uses the second)
    API_INTAKE_PROCESSES: int = Field(0, ge=0, le=32)
    # each intake process runs on one CPU of its own (its threads hand the GIL over without crossing CPUs)
    API_INTAKE_PIN_CPU: bool = True

    # --- Queue and workers ----------------------------------------------------------------------
    WORKER_CONCURRENCY: int = Field(2, ge=1, le=64)  # incident runs in parallel per worker process
    WORKER_CLAIM_IDLE_SECONDS: int = Field(300, ge=1)  # unacknowledged this long: another worker takes it
    WORKER_MAX_DELIVERIES: int = Field(5, ge=1)  # then the message goes to the dead-letter list

    # --- Telegram -------------------------------------------------------------------------------
    TELEGRAM_TOKEN: str | None = None
    ADMIN_CHAT_ID: str | None = None  # comma-separated: the chats notified (users or groups); user ids may approve
    # comma-separated Telegram users who may approve (e.g. in a group): `alice:111` (named: cards and the
    # audit trail say alice) or a bare id `111`
    TELEGRAM_APPROVER_IDS: str | None = None
    TELEGRAM_API_URL: str = "https://api.telegram.org"  # a local Bot API server (or the tests' simulator)
    TELEGRAM_POLL_TIMEOUT: int = Field(30, ge=0, le=50)  # getUpdates long-poll seconds

    # --- LLM provider chain ---------------------------------------------------------------------
    OPENAI_API_KEY: str | None = None
    OPENAI_BASE_URL: str | None = None
    OPENAI_MODEL: str = "gpt-4.1-mini"
    ENABLE_LLM_FALLBACK: bool = True
    OLLAMA_BASE_URL: str | None = None
    OLLAMA_MODEL: str = "llama3.2"
    LLM_TIMEOUT: float = Field(60.0, gt=0)
    LLM_MODE: str = Field("auto", description="auto | rules: 'rules' forces the rule-based mode")

    # --- Cache ----------------------------------------------------------------------------------
    ENABLE_CACHING: bool = True
    REDIS_URL: str | None = None
    CACHE_TTL_ANALYSIS: int = Field(600, ge=0)
    CACHE_TTL_PLAYBOOK: int = Field(1800, ge=0)
    CACHE_TTL_NL: int = Field(300, ge=0)

    # --- Resilience -----------------------------------------------------------------------------
    CB_FAILURE_THRESHOLD: int = Field(3, ge=1)
    CB_TIMEOUT: int = Field(60, ge=1)
    CB_SUCCESS_THRESHOLD: int = Field(2, ge=1)
    RETRY_ATTEMPTS: int = Field(3, ge=1, le=10)  # attempts per idempotent call to a dependency
    RETRY_BASE_DELAY: float = Field(0.2, ge=0)  # seconds; doubled per attempt, with jitter
    RETRY_MAX_DELAY: float = Field(5.0, ge=0)

    # --- Notifications --------------------------------------------------------------------------
    ENABLE_EMAIL_NOTIFICATIONS: bool = False
    SMTP_HOST: str | None = None
    SMTP_PORT: int = Field(587, ge=1, le=65535)
    SMTP_USER: str | None = None
    SMTP_PASSWORD: str | None = None
    ENABLE_SLACK_NOTIFICATIONS: bool = False
    SLACK_WEBHOOK_URL: str | None = None
    ENABLE_PAGERDUTY: bool = False
    PAGERDUTY_ROUTING_KEY: str | None = None
    SMTP_FROM: str = "aiops@localhost"
    SMTP_TO: str | None = None  # comma-separated recipients
    SMTP_STARTTLS: bool = True  # upgrade with STARTTLS before login (refuses to send credentials in clear)
    SMTP_CA_BUNDLE: Path | None = None  # CA file for the SMTP server's certificate
    PAGERDUTY_EVENTS_URL: str = "https://events.pagerduty.com/v2/enqueue"
    ENABLE_TELEGRAM_NOTIFICATIONS: bool = True  # effective when TELEGRAM_TOKEN and ADMIN_CHAT_ID are set
    NOTIFY_ROUTES: str | None = None  # minimum severity per channel, e.g. "pagerduty=critical,email=warning"
    NOTIFY_MAX_ATTEMPTS: int = Field(8, ge=1)  # then the notification is dead-lettered
    NOTIFY_BACKOFF_SECONDS: float = Field(2.0, gt=0)  # first retry delay; doubles per attempt, with jitter
    NOTIFY_BACKOFF_MAX_SECONDS: float = Field(300.0, gt=0)
    NOTIFY_TIMEOUT: float = Field(10.0, gt=0)  # seconds one delivery attempt may take

    # --- State and memory -----------------------------------------------------------------------
    AIOPS_DATA_DIR: Path = Path("var")
    CHECKPOINT_DB: Path | None = None  # default: $AIOPS_DATA_DIR/checkpoints.sqlite
    DATABASE_URL: str | None = None  # postgresql://... switches checkpointer + incident registry
    ENABLE_MEMORY: bool = True  # recall similar incidents/runbooks and remember finished incidents
    MILVUS_URI: str | None = None  # default: $AIOPS_DATA_DIR/milvus.db (milvus-lite)
    MILVUS_TOKEN: str | None = None
    EMBEDDINGS_MODEL: str = "all-MiniLM-L6-v2"
    EMBEDDINGS_BASE_URL: str | None = None  # OpenAI-compatible /v1/embeddings endpoint
    EMBEDDINGS_API_KEY: str | None = None

    # --- Observability backends -----------------------------------------------------------------
    PROMETHEUS_URL: str | None = None
    PROMETHEUS_TIMEOUT: float = Field(10.0, gt=0)  # seconds one Prometheus HTTP request may take
    ELASTICSEARCH_URL: str | None = None
    ELASTICSEARCH_INDEX: str = "logs-*"
    ELASTICSEARCH_API_KEY: str | None = None
    ELASTICSEARCH_TIMEOUT: float = Field(10.0, gt=0)  # seconds one Elasticsearch request may take
    LOG_FILES: str | None = None  # comma-separated files/globs for the file log source
    DATASETS_DIR: Path = Path("../shared/datasets")

    # --- Infrastructure targets -----------------------------------------------------------------
    # Each toolset declares its own settings in its folder (tools/<name>/settings.py: a hypervisor's or
    # a router's API address and token): they are read from the environment there, and values passed
    # here by name (tests, `load_settings(<NAME>=...)`) are kept as extras and handed on to the toolset.
    ANSIBLE_INVENTORY: str | None = None  # inventory file; hosts outside it are only dry-run
    ANSIBLE_TIMEOUT: int = Field(300, ge=1)

    # --- Approval policy ------------------------------------------------------------------------
    APPROVAL_TTL_SECONDS: int = Field(86400, ge=1)
    AUTO_APPROVE_LOW_RISK: bool = True
    VERIFY_SETTLE_SECONDS: int = Field(60, ge=0)  # live runs: wait this long after a change before verifying
    APPROVERS: str | None = None  # comma-separated names allowed to approve from CLI/HTTP (empty: anyone local)
    AUTO_APPROVE_LOG_ROOTS: str = "/var/log"  # comma-separated: an automatic cleanup stays under these
    MAX_TARGETS_PER_AUTO_PLAN: int = Field(1, ge=1)  # an auto-approved plan touches at most this many hosts
    MAX_TARGETS_PER_PLAN: int = Field(5, ge=1)  # any plan, even approved by a human
    MAX_GROUP_FRACTION: float = Field(0.5, gt=0, le=1)  # of one inventory group at once (one host always ok)

    # --- Input limits (untrusted payloads) ------------------------------------------------------
    MAX_PAYLOAD_BYTES: int = Field(8 * 1024 * 1024, ge=1024)  # an alert file / webhook body
    MAX_JSON_DEPTH: int = Field(32, ge=4)  # nesting of that JSON
    MAX_ALERTS_PER_PAYLOAD: int = Field(models.MAX_ALERTS_PER_PAYLOAD, ge=1)  # the rest: counted in the incident
    MAX_LABEL_LENGTH: int = Field(models.MAX_LABEL_LENGTH, ge=16)  # one label value (longer: refused)
    MAX_ANNOTATION_LENGTH: int = Field(models.MAX_ANNOTATION_LENGTH, ge=64)  # longer: truncated, marked
    MAX_EXCERPT_LENGTH: int = Field(models.MAX_EXCERPT_LENGTH, ge=64)  # one evidence excerpt kept in state

    # --- Autonomous operation (correlation, self-healing policy, anomaly watcher) ---------------
    CORRELATION_WINDOW_SECONDS: int = Field(300, ge=0)  # related alerts this close join the open incident
    TOPOLOGY_FILE: Path | None = None  # YAML: service -> list of services it calls
    POLICY_FILE: Path | None = None  # YAML self-healing policy (default: agents/policy_default.yaml)
    SELF_HEALING: bool = True  # false: no action ever runs without a human (the run-time switch also counts)
    FLAP_WINDOW_SECONDS: int = Field(3600, ge=0)  # the same fix due again this soon after it ran automatically: human
    WATCH_SERVICES: str | None = None  # comma-separated services the anomaly watcher scans
    WATCH_INTERVAL_SECONDS: int = Field(60, ge=5)

    @field_validator("LOG_LEVEL", "LOG_FORMAT", mode="before")
    @classmethod
    def _log_case(cls, v: object, info: ValidationInfo) -> object:  # LOG_LEVEL=info, LOG_FORMAT=JSON
        if not isinstance(v, str):
            return v
        return v.strip().upper() if info.field_name == "LOG_LEVEL" else v.strip().lower()

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("redis", "rediss", "unix"), "REDIS_URL")

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("postgresql", "postgres"), "DATABASE_URL")

    @field_validator("PROMETHEUS_URL", "ELASTICSEARCH_URL", "OPENAI_BASE_URL", "OLLAMA_BASE_URL",
                     "SLACK_WEBHOOK_URL", "EMBEDDINGS_BASE_URL", "TELEGRAM_API_URL", "PAGERDUTY_EVENTS_URL")
    @classmethod
    def _http_url(cls, v: str | None, info) -> str | None:  # type: ignore[no-untyped-def]
        return _check_url(v, ("http", "https"), info.field_name)

    @field_validator("MILVUS_URI")
    @classmethod
    def _milvus_uri(cls, v: str | None) -> str | None:
        if v and "://" in v:
            return _check_url(v, ("http", "https", "tcp", "grpc", "unix"), "MILVUS_URI")
        return v or None

    @field_validator("AUTO_APPROVE_LOG_ROOTS")
    @classmethod
    def _log_roots(cls, v: str) -> str:
        for root in (r.strip() for r in v.split(",")):
            if root and (not root.startswith("/") or ".." in root.split("/")):
                raise ValueError(f"AUTO_APPROVE_LOG_ROOTS entries must be absolute paths without '..' (got {root!r})")
        return v

    @field_validator("LLM_MODE")
    @classmethod
    def _llm_mode(cls, v: str) -> str:
        if v not in ("auto", "rules"):
            raise ValueError(f"LLM_MODE must be 'auto' or 'rules' (got {v!r})")
        return v

    @model_validator(mode="after")
    def _dependent(self) -> Settings:
        if self.ENABLE_SLACK_NOTIFICATIONS and not self.SLACK_WEBHOOK_URL:
            raise ValueError("ENABLE_SLACK_NOTIFICATIONS is true but SLACK_WEBHOOK_URL is empty")
        if self.ENABLE_PAGERDUTY and not self.PAGERDUTY_ROUTING_KEY:
            raise ValueError("ENABLE_PAGERDUTY is true but PAGERDUTY_ROUTING_KEY is empty")
        if self.ENABLE_EMAIL_NOTIFICATIONS and not self.SMTP_HOST:
            raise ValueError("ENABLE_EMAIL_NOTIFICATIONS is true but SMTP_HOST is empty")
        if self.ENABLE_EMAIL_NOTIFICATIONS and not self.SMTP_TO:
            raise ValueError("ENABLE_EMAIL_NOTIFICATIONS is true but SMTP_TO is empty")
        bad = [i for i in _csv(self.ADMIN_CHAT_ID) if not re.fullmatch(r"-?\d+", i)]
        if bad:
            raise ValueError(f"ADMIN_CHAT_ID must be comma-separated numeric Telegram ids (got {bad[0]!r})")
        bad = [i for i in _csv(self.TELEGRAM_APPROVER_IDS) if not _TELEGRAM_APPROVER.fullmatch(i)]
        if bad:
            raise ValueError("TELEGRAM_APPROVER_IDS must be comma-separated Telegram user ids, each optionally "
                             f"named (alice:111; a name starts with a letter) (got {bad[0]!r})")
        names = [e.partition(":")[0] for e in _csv(self.TELEGRAM_APPROVER_IDS) if ":" in e]
        if len(names) != len(set(names)):
            raise ValueError("TELEGRAM_APPROVER_IDS names one person twice: each name:id once")
        _parse_routes(self.NOTIFY_ROUTES)
        return self

    # --- derived --------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.CHECKPOINT_DB or self.AIOPS_DATA_DIR / "checkpoints.sqlite"

    @property
    def milvus_uri(self) -> str:
        return self.MILVUS_URI or str(self.AIOPS_DATA_DIR / "milvus.db")

    @property
    def approvers(self) -> set[str]:
        return {a.strip() for a in (self.APPROVERS or "").split(",") if a.strip()}

    @property
    def watch_services(self) -> list[str]:
        return [a.strip() for a in (self.WATCH_SERVICES or "").split(",") if a.strip()]

    @property
    def api_users(self) -> dict[str, str]:
        """token -> user, from API_TOKENS and API_TOKENS_FILE (a bad line is a settings error)."""
        lines = [t for t in (self.API_TOKENS or "").split(",") if t.strip()]
        if self.API_TOKENS_FILE:
            try:
                text = read_utf8(self.API_TOKENS_FILE, "API_TOKENS_FILE")
            except ConfigFileError as exc:
                raise SettingsError(str(exc)) from None
            lines += [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        users: dict[str, str] = {}
        for entry in lines:
            user, sep, token = entry.strip().partition(":")
            if not sep or not user.strip() or len(token.strip()) < 16:
                raise SettingsError("API_TOKENS entries must be user:token with a token of 16+ characters")
            users[token.strip()] = user.strip()
        return users

    @property
    def payload_limits(self) -> dict[str, int]:
        """The validation context that makes core.models apply these limits."""
        return {"MAX_ALERTS_PER_PAYLOAD": self.MAX_ALERTS_PER_PAYLOAD, "MAX_LABEL_LENGTH": self.MAX_LABEL_LENGTH,
                "MAX_ANNOTATION_LENGTH": self.MAX_ANNOTATION_LENGTH, "MAX_EXCERPT_LENGTH": self.MAX_EXCERPT_LENGTH}

    @property
    def auto_approve_log_roots(self) -> list[str]:
        return [r.strip().rstrip("/") or "/" for r in self.AUTO_APPROVE_LOG_ROOTS.split(",") if r.strip()]

    @property
    def admin_chat_ids(self) -> set[str]:
        """Telegram ids that may approve: ADMIN_CHAT_ID plus TELEGRAM_APPROVER_IDS. The bot checks the
        *pressing user's* id against this set; a group's (negative) chat id never matches a user."""
        return set(_csv(self.ADMIN_CHAT_ID)) | set(self.telegram_names)

    @property
    def telegram_names(self) -> dict[str, str]:
        """Telegram user id -> the name decisions and the audit trail show (`alice:111`; the id itself
        when unnamed), for the users of TELEGRAM_APPROVER_IDS."""
        out: dict[str, str] = {}
        for entry in _csv(self.TELEGRAM_APPROVER_IDS):
            name, sep, uid = entry.rpartition(":")
            out[uid.strip()] = name.strip() if sep else uid.strip()
        return out

    def telegram_name(self, user_id: int | str) -> str:
        """Who a Telegram user is in decisions and the trail: their TELEGRAM_APPROVER_IDS name, else the id."""
        return self.telegram_names.get(str(user_id), str(user_id))

    @property
    def telegram_chat_ids(self) -> list[int]:
        """The chats notifications go to (ADMIN_CHAT_ID: private chats and/or groups)."""
        return [int(i) for i in _csv(self.ADMIN_CHAT_ID)]

    @property
    def notify_routes(self) -> dict[str, str]:
        return _parse_routes(self.NOTIFY_ROUTES)


SEVERITY_RANK = {"none": 0, "info": 0, "warning": 1, "error": 2, "high": 2, "critical": 3, "page": 3}
CHANNELS = ("telegram", "email", "slack", "pagerduty")


_TELEGRAM_APPROVER = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_.@-]{0,63}:)?\d+$")


def _csv(value: str | None) -> list[str]:
    return [a.strip() for a in (value or "").split(",") if a.strip()]


def _parse_routes(value: str | None) -> dict[str, str]:
    """"pagerduty=critical,email=warning" -> {"pagerduty": "critical", ...}: a channel's minimum severity."""
    routes: dict[str, str] = {}
    for item in _csv(value):
        channel, _, severity = item.partition("=")
        channel, severity = channel.strip().lower(), severity.strip().lower()
        if channel not in CHANNELS or severity not in SEVERITY_RANK:
            raise ValueError(f"NOTIFY_ROUTES entries are CHANNEL=SEVERITY with CHANNEL in {', '.join(CHANNELS)} and "
                             f"SEVERITY in info, warning, error, critical (got {item!r})")
        routes[channel] = severity
    return routes


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning pydantic's multi-line error into a short `SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(f"{where}: {msg}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
