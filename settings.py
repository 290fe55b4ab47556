"""Settings from the environment (prefix BATON_). The only module that reads it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ROOT = Path(__file__).resolve().parent
DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123456789"
# the password docker-compose.yml and the docs used to default to
DEV_DATABASE_PASSWORDS = frozenset({"baton"})


class ProductionSettingsError(RuntimeError):
    """BATON_ENV=production with development defaults. Not a ValueError on purpose: pydantic
    would wrap it and print every setting's value (secrets included) beside the message."""


class WebhookRobot(BaseModel):
    """One group robot (BATON_WEBHOOK_ROBOTS, a JSON list of these; README "Notifications")."""

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    provider: Literal["wecom", "dingtalk", "feishu"]
    url: SecretStr  # the webhook address carries the robot's key
    secret: SecretStr | None = None  # DingTalk / Feishu signing secret ("加签" / "签名校验")
    # the notice kinds the group hears of; ids and links only, never names or reasons
    kinds: list[str] = Field(default_factory=lambda: [
        "APPROVAL_ESCALATED", "APPEAL_OPENED", "DECLINED", "EXPIRED_NO_CONSENT", "CANCELLED"])
    language: str = "zh-CN"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_", env_file=".env", extra="ignore")

    # production refuses to start with the development defaults below (production_problems)
    env: Literal["development", "production"] = "development"
    database_url: str = f"sqlite:///{ROOT / '.data' / 'baton.db'}"
    temporal_address: str = "localhost:7233"
    # ports of the embedded dev server that `cli.py dev` starts; it points the children's
    # BATON_TEMPORAL_ADDRESS at 127.0.0.1:<temporal_port>
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://localhost:8233"
    task_queue: str = "baton"
    # the largest request body the API and the pages read, in bytes (413 above it; uvicorn has
    # no limit of its own); the CSV import route has its own, larger limit
    max_body_bytes: int = Field(default=6 * 1024 * 1024, ge=1024)
    jwt_secret: str = Field(default=DEV_JWT_SECRET, min_length=32)
    # access tokens are short-lived; a client keeps its session with the refresh token
    jwt_ttl_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_ttl_days: int = Field(default=14, ge=1, le=365)
    # login hardening (issue 6): lock an account (or an unknown username, alike) after this
    # many consecutive failures, for this long; and a moving-window limit per client IP on the
    # password endpoints, in `limits` notation ("20/minute"), kept in this storage
    # (memory:// is per process; several API processes share e.g. redis://host:6379)
    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_rate_limit: str = "20/minute"
    login_rate_limit_storage: str = "memory://"
    # password policy: at least this long, and at least this zxcvbn score (0..4)
    password_min_length: int = Field(default=12, ge=8, le=128)
    password_min_score: int = Field(default=3, ge=0, le=4)
    # session cookies for the web UI: Secure on HTTPS requests (None), or always / never
    session_cookie_secure: bool | None = None
    org_timezone: str = "Asia/Shanghai"
    # bulk reorganisation (workflows/bulk.py): child request workflows started per second,
    # and groups per workflow run before continue-as-new keeps the history small
    bulk_starts_per_second: int = Field(default=10, ge=1, le=1_000)
    bulk_groups_per_run: int = Field(default=100, ge=1, le=10_000)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    activity_threads: int = Field(default=16, ge=1)
    # slots for PDF renders and seals on the worker's documents task queue (they render one
    # at a time per process; a second slot overlaps one's database work with another's render)
    # which task queues this worker process serves: both, the workflows and database
    # activities only, or the renders and seals only (to run renders in processes of their own)
    worker_role: Literal["all", "workflows", "documents"] = "all"
    document_slots: int = Field(default=2, ge=1)
    # how much lower (nice) the render threads run than the rest of the worker: a render is
    # CPU-bound and waited for in minutes, an approval in seconds (0: the same priority)
    document_nice: int = Field(default=10, ge=0, le=19)
    # keep WeasyPrint's font subsets per font and glyph set (documents/font_subset_cache.py;
    # the same PDF bytes, less CPU); false: every render subsets its fonts again
    font_subset_cache: bool = True
    # observability (issue 8; docs/OBSERVABILITY.md). Log lines as JSON for a log shipper, or
    # text (`cli.py dev` sets text for its children)
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # GET /metrics on the API: open to whoever reaches the port (a private network) unless set;
    # then a scraper sends `Authorization: Bearer <token>`
    metrics_token: SecretStr | None = None
    # the worker's Temporal SDK Prometheus endpoint, host:port (compose: 0.0.0.0:9464); empty:
    # off. Worker processes on one host each need their own port.
    worker_metrics_address: str = ""
    # prometheus_client's multiprocess mode, for `uvicorn --workers N`: an empty directory that
    # the API's processes share. Set it in the real environment (prometheus_client reads it on
    # import, not from .env); /metrics then adds up every process.
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"))
    data_dir: Path = ROOT / ".data"
    # signing ceremony (issue 5): WebAuthn relying party, and the one-time code fallback
    webauthn_rp_id: str = "localhost"  # the site's domain, without scheme or port
    webauthn_rp_name: str = "Baton"
    webauthn_origin: str = "http://localhost:8000"  # where the browser runs the ceremony
    otp_ttl_minutes: int = Field(default=10, ge=1, le=24 * 60)
    otp_max_attempts: int = Field(default=5, ge=1, le=20)
    # the organisation's seal on signed agreements (documents/seal.py): a PKCS#12 file, in
    # production from a licensed CA; without one, a self-signed DEVELOPMENT certificate is made
    # once in seal_dev_cert_dir (default data_dir/seal)
    seal_pkcs12_path: Path | None = None
    seal_pkcs12_password: SecretStr | None = None
    seal_dev_cert_dir: Path | None = None
    # Temporal payload encryption (payload_codec.py): "kid:<base64 key>,kid2:<base64 key>"
    # (AES, 16/24/32 bytes; `python cli.py payload-key new` makes one). The active key encrypts
    # new payloads (default: the last listed); every listed key decrypts, so keep old ones
    # while histories use them. Unset: a DEVELOPMENT key made once in data_dir/payload-keys.
    # Checked when first used (payload_codec.key_ring): a validator here would echo the keys.
    payload_keys: SecretStr | None = None
    payload_active_key_id: str | None = None
    # notifications (issue 9; README "Notifications"): without BATON_SMTP_HOST and robots only
    # the in-app records are made. Links in messages start with public_url (default: the
    # WebAuthn origin, where the browser already reaches Baton).
    public_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Baton <baton@localhost>"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_robots: list[WebhookRobot] = Field(default_factory=list)

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("worker_metrics_address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if value:
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("BATON_WORKER_METRICS_ADDRESS must be host:port, e.g. "
                                 "0.0.0.0:9464, or empty to turn the worker's metrics off")
        return value

    @model_validator(mode="after")
    def _seal_dev_cert_dir_default(self) -> Settings:
        if self.seal_dev_cert_dir is None:
            self.seal_dev_cert_dir = self.data_dir / "seal"
        return self

    @property
    def public_base_url(self) -> str:
        return (self.public_url or self.webauthn_origin).rstrip("/")

    @model_validator(mode="after")
    def _production_has_real_secrets(self) -> Settings:
        if self.env == "production":
            problems = self.production_problems()
            if problems:
                raise ProductionSettingsError(
                    "BATON_ENV=production, but these settings still have development values; "
                    "fix each one (see .env.example and docs/OPERATIONS.md):\n"
                    + "\n".join(f"  - {problem}" for problem in problems))
        return self

    def production_problems(self) -> list[str]:
        """Each development default still in place, named with its variable and the fix.
        Never quotes a secret."""
        problems: list[str] = []
        if self.jwt_secret == DEV_JWT_SECRET:
            problems.append("BATON_JWT_SECRET is the development default; set 32+ random "
                            "characters, e.g. `openssl rand -hex 32`")
        if self.payload_keys is None or not self.payload_keys.get_secret_value().strip():
            problems.append("BATON_PAYLOAD_KEYS is not set, so each process would encrypt "
                            "Temporal payloads with its own development key file; set the same "
                            "keys on the API and every worker (`python cli.py payload-key new`)")
        if self.seal_pkcs12_path is None:
            problems.append("BATON_SEAL_PKCS12_PATH is not set, so agreements would be sealed "
                            "with the self-signed development certificate; point it at the "
                            "organisation's PKCS#12 from a licensed CA (and set "
                            "BATON_SEAL_PKCS12_PASSWORD)")
        elif not self.seal_pkcs12_path.is_file():
            problems.append(f"BATON_SEAL_PKCS12_PATH={self.seal_pkcs12_path} is not a file; "
                            "mount the organisation's PKCS#12 there")
        problems.extend(self._database_problems())
        problems.extend(self._webauthn_problems())
        return problems

    def _database_problems(self) -> list[str]:
        try:
            url = make_url(self.database_url)
        except ArgumentError:
            return ["BATON_DATABASE_URL is not a database URL; use "
                    "postgresql+psycopg://user:password@host:5432/baton"]
        if url.get_backend_name() == "sqlite":
            return ["BATON_DATABASE_URL is SQLite, which serialises every write and lives on "
                    "one disk; use PostgreSQL: postgresql+psycopg://user:password@host:5432/baton"]
        if url.password in DEV_DATABASE_PASSWORDS:
            return ["BATON_DATABASE_URL uses the development password 'baton'; give the "
                    "database user a random password (`openssl rand -hex 24`) and put it in "
                    "the URL (in docker compose: APP_DB_PASSWORD)"]
        return []

    def _webauthn_problems(self) -> list[str]:
        # passkeys work only on a secure origin whose host is the relying party id or a
        # subdomain of it; anything else makes every signing ceremony fail in the browser
        problems: list[str] = []
        if self.webauthn_rp_id == "localhost":
            problems.append("BATON_WEBAUTHN_RP_ID is 'localhost'; set the site's domain, e.g. "
                            "baton.example.com (no scheme, no port)")
        origin = urlsplit(self.webauthn_origin)
        if origin.scheme != "https":
            problems.append(f"BATON_WEBAUTHN_ORIGIN={self.webauthn_origin} is not https; "
                            "browsers allow passkeys only on https, e.g. "
                            "https://baton.example.com")
        host = origin.hostname or ""
        if self.webauthn_rp_id != "localhost" and not (
                host == self.webauthn_rp_id or host.endswith("." + self.webauthn_rp_id)):
            problems.append(f"BATON_WEBAUTHN_ORIGIN's host {host!r} is not "
                            f"BATON_WEBAUTHN_RP_ID={self.webauthn_rp_id!r} or a subdomain of it; "
                            "make them name the same site")
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
