"""Temporal payload encryption: an AES-GCM PayloadCodec with key ids, so keys can be rotated.

Everything the SDK stores in Temporal as a payload (workflow and activity inputs and results,
update, signal and query arguments, failure details, and, with the failure converter below,
failure messages and stack traces) is serialised whole and encrypted with the active key:

    metadata  encoding: binary/encrypted     encryption-key-id: <key id>
    data      12-byte nonce || AES-GCM ciphertext and tag (the key id is authenticated too)

Decoding picks the key named by the payload, so payloads written under an older key stay readable
while that key is still configured. A payload with any other encoding passes through untouched:
histories recorded before encryption was switched on still replay, and workflows that were
running during the upgrade carry on.

Keys come from settings: `payload_keys` ("kid:<base64 key>,kid2:<base64 key>") and
`payload_active_key_id` (default: the last key listed). Without keys (a laptop), a DEVELOPMENT
key is generated once into `data_dir/payload-keys` (mode 0600) and reused. Search attributes are
not payloads of the codec: they stay plaintext, which is why they carry ids only.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

if TYPE_CHECKING:
    from settings import Settings

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
ENCODING_KEY = "encoding"
KEY_ID_KEY = "encryption-key-id"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_SIZES = (16, 24, 32)
NEW_KEY_BYTES = 32
DEV_KEYS_FILE = "payload-keys"
SETTING = "BATON_PAYLOAD_KEYS"
ACTIVE_SETTING = "BATON_PAYLOAD_ACTIVE_KEY_ID"
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HOW_TO_MAKE = "make one with `python cli.py payload-key new`"


class PayloadKeyError(ValueError):
    """The key configuration cannot be used. The message says what to fix, never a key."""


class PayloadDecryptError(ValueError):
    """An encrypted payload cannot be decrypted: unknown key id, or altered bytes."""


@dataclass(frozen=True)
class KeyRing:
    """Every configured key by id; the active one encrypts, all of them decrypt."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_key_id: str
    source: str  # where the keys came from, for messages: the setting or the dev file
    development: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise PayloadKeyError(f"{self.source} lists no keys; {_HOW_TO_MAKE}")
        if self.active_key_id not in self.keys:
            raise PayloadKeyError(
                f"{ACTIVE_SETTING}={self.active_key_id!r} names no key in {self.source} "
                f"(configured ids: {', '.join(self.keys)}); set it to one of them, or unset it "
                "to use the last one listed")

    @property
    def key_ids(self) -> list[str]:
        return list(self.keys)


def parse_keys(spec: str, *, source: str = SETTING) -> dict[str, bytes]:
    """'kid:<base64>' entries separated by commas or newlines -> {kid: key}, in order."""
    lines = [line for line in spec.splitlines() if not line.strip().startswith("#")]
    entries = [e.strip() for e in ",".join(lines).split(",") if e.strip()]
    if not entries:
        raise PayloadKeyError(f"{source} lists no keys; expected 'key-id:base64-key' entries "
                              f"separated by commas; {_HOW_TO_MAKE}")
    keys: dict[str, bytes] = {}
    for number, entry in enumerate(entries, start=1):
        key_id, colon, encoded = (part.strip() for part in entry.partition(":"))
        if not colon or not key_id or not encoded:
            raise PayloadKeyError(f"{source}: entry {number} is not 'key-id:base64-key'; "
                                  f"{_HOW_TO_MAKE}")
        if not _KEY_ID.match(key_id):
            raise PayloadKeyError(f"{source}: key id {key_id!r} (entry {number}) must be 1-64 "
                                  "letters, digits, '.', '_' or '-'")
        if key_id in keys:
            raise PayloadKeyError(f"{source}: key id {key_id!r} is listed twice; every key "
                                  "needs its own id, or old payloads could not be told apart")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadKeyError(f"{source}: the key of {key_id!r} is not valid base64; "
                                  f"{_HOW_TO_MAKE}") from exc
        if len(key) not in KEY_SIZES:
            raise PayloadKeyError(f"{source}: the key of {key_id!r} is {len(key)} bytes; "
                                  "AES-GCM needs 16, 24 or 32 bytes (32 recommended); "
                                  f"{_HOW_TO_MAKE}")
        keys[key_id] = key
    return keys


def new_key_line(key_id: str | None = None) -> str:
    """A fresh 'kid:<base64 32-byte key>' entry, to append to the configured keys."""
    key_id = key_id or f"k{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    if not _KEY_ID.match(key_id):
        raise PayloadKeyError(f"key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    return f"{key_id}:{base64.b64encode(os.urandom(NEW_KEY_BYTES)).decode('ascii')}"


def _create_once(path: Path, data: bytes) -> bool:
    """Create `path` (0600) with `data` unless it exists; True if this call did.

    Written to a temporary file and linked into place, so the worker and the API starting at
    once cannot end up with two different keys or a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def ensure_dev_keys(data_dir: Path) -> tuple[Path, bool]:
    """The development key file under `data_dir`, created once; (path, created now)."""
    path = data_dir / DEV_KEYS_FILE
    if path.exists():
        return path, False
    line = new_key_line(f"dev-{secrets.token_hex(4)}")
    created = _create_once(path, f"# Baton DEVELOPMENT payload key (not for production)\n"
                                 f"{line}\n".encode())
    if created:
        log.warning("created a DEVELOPMENT payload encryption key at %s; set %s for "
                    "production (`python cli.py payload-key new`)", path, SETTING)
    return path, created


@lru_cache(maxsize=16)
def _ring(spec: str | None, active: str | None, data_dir: Path) -> KeyRing:
    if spec is not None:
        keys = parse_keys(spec)
        return KeyRing(keys, active or list(keys)[-1], SETTING)
    path, _ = ensure_dev_keys(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PayloadKeyError(f"cannot read the development payload keys {path}: "
                              f"{exc.strerror or exc}; set {SETTING} instead") from exc
    keys = parse_keys(text, source=str(path))
    return KeyRing(keys, active or list(keys)[-1], str(path), development=True)


def key_ring(settings: Settings) -> KeyRing:
    """The configured keys, or the development key (made once). Cached per configuration."""
    secret = settings.payload_keys
    spec = secret.get_secret_value() if secret is not None else None
    return _ring(spec if spec and spec.strip() else None,
                 settings.payload_active_key_id or None, settings.data_dir)


def _associated_data(key_id: str) -> bytes:
    # authenticated with the ciphertext: a payload relabelled with another key id fails
    return b"baton-payload-v1:" + key_id.encode("utf-8")


class EncryptionCodec(PayloadCodec):
    """AES-GCM over the whole serialised payload (its metadata included)."""

    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self.ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id = self.ring.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(),
                                               _associated_data(key_id))
        return Payload(metadata={ENCODING_KEY: ENCODING, KEY_ID_KEY: key_id.encode("utf-8")},
                       data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get(ENCODING_KEY) != ENCODING:
            return payload  # plaintext from before encryption, or not ours: leave it be
        raw_id = payload.metadata.get(KEY_ID_KEY)
        if not raw_id:
            raise PayloadDecryptError(f"an encrypted payload has no {KEY_ID_KEY} metadata, so "
                                      "its key cannot be chosen; it was not written by Baton")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptError(
                f"the payload was encrypted with key id {key_id!r}, which is not configured "
                f"(configured in {self.ring.source}: {', '.join(self.ring.key_ids)}); add that "
                f"key back to {SETTING}: old keys must stay listed while running workflows or "
                "kept histories use them")
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadDecryptError(f"the payload encrypted with key id {key_id!r} is "
                                      f"truncated ({len(data)} bytes)")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:],
                                   _associated_data(key_id))
        except InvalidTag as exc:
            raise PayloadDecryptError(
                f"the payload encrypted with key id {key_id!r} fails authentication: it was "
                "altered, or the key configured under that id is not the one that encrypted "
                "it") from exc
        try:
            return Payload.FromString(plain)
        except DecodeError as exc:  # authenticated, yet not a payload: a foreign writer
            raise PayloadDecryptError(f"the payload decrypted with key id {key_id!r} is not a "
                                      "serialised Temporal payload") from exc


def encrypted_data_converter(codec: PayloadCodec) -> DataConverter:
    """Baton's pydantic payloads, through `codec`; failure messages and stack traces move into
    an encoded attribute, so an error text naming a person is encrypted as well."""
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def codec_for(settings: Settings) -> EncryptionCodec:
    return EncryptionCodec(key_ring(settings))


def data_converter(settings: Settings) -> DataConverter:
    """The data converter every Temporal client of Baton uses (API, worker, CLI)."""
    return encrypted_data_converter(codec_for(settings))
