"""The payload keys every test shares: the Temporal test servers, the workers and the API's
codec server must agree on them. Fixed (not secret), so a history recorded by
tests/replay/record_history.py replays with them too."""

from __future__ import annotations

import base64

from payload_codec import EncryptionCodec, KeyRing, encrypted_data_converter, parse_keys

TEST_KEY_ID = "test-k1"
TEST_KEY = b"baton-test-payload-key-32-bytes!"
TEST_PAYLOAD_KEYS = f"{TEST_KEY_ID}:{base64.b64encode(TEST_KEY).decode()}"
TEST_CODEC = EncryptionCodec(KeyRing(parse_keys(TEST_PAYLOAD_KEYS), TEST_KEY_ID, "tests"))
TEST_DATA_CONVERTER = encrypted_data_converter(TEST_CODEC)
