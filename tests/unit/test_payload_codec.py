"""The AES-GCM payload codec: round trip, rotation, tampering, pass-through, key settings."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.exceptions import ApplicationError

import cli
from payload_codec import (
    ENCODING,
    KEY_ID_KEY,
    EncryptionCodec,
    KeyRing,
    PayloadDecryptError,
    PayloadKeyError,
    _ring,
    encrypted_data_converter,
    key_ring,
    new_key_line,
    parse_keys,
)
from settings import Settings

NAME = "Li Sales"


def key_line(key_id: str, size: int = 32) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(size)).decode()}"


def codec(spec: str, active: str | None = None) -> EncryptionCodec:
    keys = parse_keys(spec)
    return EncryptionCodec(KeyRing(keys, active or list(keys)[-1], "test"))


def plain(text: str = NAME) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_round_trip_hides_data_and_metadata() -> None:
    c = codec(key_line("k1"))
    original = plain()
    [encrypted] = await c.encode([original])
    assert dict(encrypted.metadata) == {"encoding": ENCODING, KEY_ID_KEY: b"k1"}
    assert NAME.encode() not in encrypted.data and b"json/plain" not in encrypted.data
    assert await c.decode([encrypted]) == [original]
    # a fresh nonce each time: the same value never encrypts to the same bytes
    [again] = await c.encode([original])
    assert again.data != encrypted.data


async def test_rotation_reads_old_payloads_and_writes_with_the_new_key() -> None:
    old_line, new_line = key_line("k1"), key_line("k2")
    [written_before] = await codec(old_line).encode([plain("before")])
    rotated = codec(f"{old_line},{new_line}")  # the new key appended: it is the active one
    [written_after] = await rotated.encode([plain("after")])
    assert written_after.metadata[KEY_ID_KEY] == b"k2"
    assert await rotated.decode([written_before, written_after]) == [plain("before"),
                                                                     plain("after")]
    # rolling out: the new key known everywhere, but still writing with the old one
    staged = codec(f"{old_line},{new_line}", active="k1")
    [staged_payload] = await staged.encode([plain()])
    assert staged_payload.metadata[KEY_ID_KEY] == b"k1"
    # once the old key is dropped, its payloads fail with an error naming the key id
    with pytest.raises(PayloadDecryptError, match="'k1'.*not configured"):
        await codec(new_line).decode([written_before])


async def test_tampered_ciphertext_and_relabelled_key_id_fail() -> None:
    c = codec(f"{key_line('k1')},{key_line('k2')}")
    [encrypted] = await c.encode([plain()])
    flipped = bytearray(encrypted.data)
    flipped[-1] ^= 0x01
    tampered = Payload(metadata=encrypted.metadata, data=bytes(flipped))
    with pytest.raises(PayloadDecryptError, match="fails authentication"):
        await c.decode([tampered])
    relabelled = Payload(metadata={**encrypted.metadata, KEY_ID_KEY: b"k1"},
                         data=encrypted.data)
    with pytest.raises(PayloadDecryptError, match="'k1'.*fails authentication"):
        await c.decode([relabelled])
    truncated = Payload(metadata=encrypted.metadata, data=encrypted.data[:20])
    with pytest.raises(PayloadDecryptError, match="truncated"):
        await c.decode([truncated])
    no_key_id = Payload(metadata={"encoding": ENCODING}, data=encrypted.data)
    with pytest.raises(PayloadDecryptError, match=KEY_ID_KEY):
        await c.decode([no_key_id])


async def test_plaintext_payloads_pass_through_untouched() -> None:
    c = codec(key_line("k1"))
    recorded_before_encryption = [plain(), Payload(metadata={"encoding": b"binary/null"}),
                                  Payload()]
    assert await c.decode(recorded_before_encryption) == recorded_before_encryption


@pytest.mark.parametrize(("spec", "message"), [
    ("", "lists no keys"),
    ("k1", "entry 1 is not 'key-id:base64-key'"),
    ("k1:", "entry 1 is not"),
    ("bad id:AAAA", "key id 'bad id'"),
    ("k1:not base64!", "the key of 'k1' is not valid base64"),
    (key_line("k1", 20), "the key of 'k1' is 20 bytes; AES-GCM needs 16, 24 or 32"),
    (f"{key_line('k1')},{key_line('k1')}", "'k1' is listed twice"),
])
def test_bad_key_configuration_is_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message) as caught:
        parse_keys(spec)
    secret = spec.partition(":")[2]
    assert not secret or secret not in str(caught.value)  # never echo the key


@pytest.mark.parametrize("size", [16, 24, 32])
def test_aes_key_sizes(size: int) -> None:
    assert len(parse_keys(key_line("k", size))["k"]) == size


def test_settings_keys_and_active_key_id(tmp_path: Path) -> None:
    spec = f"{key_line('k1')},\n{key_line('k2')}"
    ring = key_ring(Settings(payload_keys=SecretStr(spec), data_dir=tmp_path))
    assert ring.key_ids == ["k1", "k2"] and ring.active_key_id == "k2"
    assert not ring.development and not (tmp_path / "payload-keys").exists()
    pinned = key_ring(Settings(payload_keys=SecretStr(spec), payload_active_key_id="k1",
                               data_dir=tmp_path))
    assert pinned.active_key_id == "k1"
    with pytest.raises(PayloadKeyError, match="BATON_PAYLOAD_ACTIVE_KEY_ID='k9' names no key"):
        key_ring(Settings(payload_keys=SecretStr(spec), payload_active_key_id="k9",
                          data_dir=tmp_path))
    assert "keys=" not in repr(ring)  # a logged key ring shows no key


def test_development_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    first = key_ring(Settings(data_dir=tmp_path / "a"))
    path = tmp_path / "a" / "payload-keys"
    assert first.development and first.source == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    _ring.cache_clear()  # as a new process would: read the file again
    again = key_ring(Settings(data_dir=tmp_path / "a"))
    assert again.keys == first.keys and path.read_text() == content
    other = key_ring(Settings(data_dir=tmp_path / "b"))
    assert other.keys != first.keys


def test_new_key_line_is_a_valid_32_byte_key() -> None:
    line = new_key_line("k2026")
    assert len(parse_keys(line)["k2026"]) == 32
    assert new_key_line() != new_key_line()
    with pytest.raises(PayloadKeyError):
        new_key_line("no spaces")


def test_cli_payload_key_new_prints_a_usable_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["payload-key", "new", "--key-id", "k-next"]) == 0
    out = capsys.readouterr().out.strip()
    assert list(parse_keys(out)) == ["k-next"]


class Person(BaseModel):
    name: str


async def test_data_converter_encrypts_values_and_failure_messages() -> None:
    converter = encrypted_data_converter(codec(key_line("k1")))
    [payload] = await converter.encode([Person(name=NAME)])
    assert payload.metadata["encoding"] == ENCODING and NAME.encode() not in payload.data
    assert await converter.decode([payload], [Person]) == [Person(name=NAME)]

    from temporalio.api.failure.v1 import Failure

    failure = Failure()
    await converter.encode_failure(ApplicationError(f"{NAME} may not sign", type="X"), failure)
    assert NAME not in failure.message and NAME.encode() not in failure.SerializeToString()
    error = await converter.decode_failure(failure)
    assert isinstance(error, ApplicationError) and error.message == f"{NAME} may not sign"
