"""Settings from the environment (prefix BATON_). The only module that reads it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_", env_file=".env", extra="ignore")

    database_url: str = f"sqlite:///{ROOT / '.data' / 'baton.db'}"
    temporal_address: str = "localhost:7233"
    # ports of the embedded dev server that `cli.py dev` starts; it points the children's
    # BATON_TEMPORAL_ADDRESS at 127.0.0.1:<temporal_port>
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://localhost:8233"
    task_queue: str = "baton"
    jwt_secret: str = Field(default="dev-only-secret-change-me-in-production-0123456789",
                            min_length=32)
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
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    activity_threads: int = Field(default=16, ge=1)
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

    @model_validator(mode="after")
    def _seal_dev_cert_dir_default(self) -> Settings:
        if self.seal_dev_cert_dir is None:
            self.seal_dev_cert_dir = self.data_dir / "seal"
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
