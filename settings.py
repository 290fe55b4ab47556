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
    jwt_ttl_minutes: int = Field(default=30, ge=1, le=24 * 60)
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

    @model_validator(mode="after")
    def _seal_dev_cert_dir_default(self) -> Settings:
        if self.seal_dev_cert_dir is None:
            self.seal_dev_cert_dir = self.data_dir / "seal"
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
