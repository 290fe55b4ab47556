"""Re-authentication for signing: one-time codes and passkeys (WebAuthn)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime, utcnow


class OneTimeCode(SQLModel, table=True):
    """A code sent to the signer, bound to one document version. Only its hash is stored."""

    __tablename__ = "one_time_code"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="reassignment_request.id", index=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    document_sha256: str = Field(max_length=64)
    code_hash: str = Field(max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    attempts: int = 0
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasskeyCredential(SQLModel, table=True):
    """A WebAuthn credential the employee registered on their account page."""

    __tablename__ = "passkey_credential"

    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    credential_id: str = Field(max_length=500, unique=True, description="base64url")
    public_key: bytes = Field(sa_type=LargeBinary)
    sign_count: int = 0
    transports: str | None = Field(default=None, max_length=200)
    name: str = Field(default="passkey", max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebAuthnChallenge(SQLModel, table=True):
    """A pending WebAuthn ceremony. For signing, the challenge is derived from the document
    hash, so the authenticator's signature covers exactly that document version."""

    __tablename__ = "webauthn_challenge"

    id: int | None = Field(default=None, primary_key=True)
    employee_id: int = Field(foreign_key="employee.id", index=True)
    purpose: str = Field(max_length=10, description="register or sign")
    challenge: str = Field(max_length=200, unique=True, description="base64url")
    request_id: int | None = Field(default=None, foreign_key="reassignment_request.id")
    document_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
