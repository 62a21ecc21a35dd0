"""The cookie backend on its own: keys, URL and options, the token format, logging."""

from __future__ import annotations

import base64
import logging
import os
import struct
import time
from typing import Any

import msgspec
import pytest
from cookie_support import decrypt_v2, derive, new_key
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sanic_cookies import ConfigurationError, backend_from_url
from sanic_cookies.backends.cookie import CookieBackend, parse_keys
from sanic_cookies.backends.cookie._token import predict_token_length
from sanic_cookies.backends.memory import MemoryBackend
from sanic_cookies.clock import ManualClock, use_clock

pytestmark = pytest.mark.cookie

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _pad(token: str) -> str:
    return token + "=" * (-len(token) % 4)


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(_pad(token))


# -- keys ---------------------------------------------------------------------------------


def test_keys_in_every_accepted_form() -> None:
    a, b = new_key(), new_key()
    assert parse_keys([a, b]) == [a.encode(), b.encode()]
    assert parse_keys([a.encode(), b]) == [a.encode(), b.encode()]
    assert parse_keys((a,)) == [a.encode()]
    assert parse_keys(a) == [a.encode()]
    assert parse_keys(a.encode()) == [a.encode()]
    assert parse_keys(f" {a},{b}\n") == [a.encode(), b.encode()]
    assert parse_keys(f"{a} {b}") == [a.encode(), b.encode()]
    assert parse_keys([a, b, a]) == [a.encode(), b.encode()], "repeats kept once, first place"
    assert parse_keys([Fernet.generate_key()])  # cryptography's own generator's format


@pytest.mark.parametrize(
    "keys",
    [
        None,
        [],
        "",
        " , ",
        ["short"],
        [os.urandom(32)],  # raw bytes, not base64
        [base64.urlsafe_b64encode(os.urandom(16)).decode()],  # 16 bytes
        [base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")],  # padding lost
        [base64.b64encode(b"\xfb" * 32).decode()],  # standard base64 ('+' and '/')
        [123],
        12345,
        [None],
    ],
)
def test_bad_keys_say_how_to_make_one(keys: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=keys)
    message = str(caught.value)
    assert "python -m sanic_cookies keygen" in message
    assert "SESSION_KEYS" in message


def _key_of(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "raw",
    [b"\x00" * 32, b"\xff" * 32, b"a" * 32, b"password" * 4, bytes(range(15)) * 2 + b"\x00\x01"],
    ids=["zeros", "ones", "one-letter", "repeated-word", "15-distinct"],
)
def test_degenerate_keys_are_refused(raw: bytes) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=[new_key(), _key_of(raw)])
    message = str(caught.value)
    assert "SESSION_KEYS[1]" in message and "distinct" in message
    assert "python -m sanic_cookies keygen" in message


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"ThisIsMySecretKeyForTheCookies!!", "printable ASCII"),
        (b"abcdefghijklmnopqrstuvwxyz012345", "printable ASCII"),
        (bytes(range(32)), "count up by a fixed step"),
        (bytes((200 + 7 * i) % 256 for i in range(32)), "count up by a fixed step"),
        (bytes(range(128, 144)) * 2, "repeat a pattern of 16 bytes"),
    ],
    ids=["passphrase", "alphabet", "counter", "stride", "period-16"],
)
def test_hand_made_keys_are_refused(raw: bytes, why: str) -> None:
    # Review of issue 13 (F3): each has 16+ distinct bytes, so the distinct-byte count
    # alone let it through.
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=[new_key(), _key_of(raw)])
    message = str(caught.value)
    assert "SESSION_KEYS[1]" in message and why in message and "not random" in message
    assert "python -m sanic_cookies keygen" in message
    assert _key_of(raw) not in message


def test_the_review_keys_are_refused() -> None:
    for raw in (
        b"ThisIsMySecretKeyForTheCookies!!",
        b"0123456789abcdef" * 2,
        bytes(range(32)),
        b"abcdefghijklmnopqrstuvwxyz012345",
    ):
        with pytest.raises(ConfigurationError, match="keygen"):
            CookieBackend(keys=[_key_of(raw)])


def test_random_keys_are_accepted() -> None:
    for _ in range(2000):
        assert CookieBackend(keys=[new_key()])


def test_a_44_character_key_that_is_not_base64_says_so() -> None:
    bad = "!" * 43 + "="
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=[bad])
    message = str(caught.value)
    assert "44 characters, not 44" not in message
    assert "not urlsafe base64" in message
    with pytest.raises(ConfigurationError, match="40 characters instead of 44"):
        CookieBackend(keys=[new_key()[:40]])


def test_a_bad_key_is_never_echoed() -> None:
    secret = new_key()[:40]
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=[new_key(), secret])
    assert secret not in str(caught.value)
    assert "SESSION_KEYS[1]" in str(caught.value)


# -- URL and options -------------------------------------------------------------------------


def test_from_url() -> None:
    backend = backend_from_url("cookie://", keys=[new_key()])
    assert isinstance(backend, CookieBackend)
    assert backend.revocation is None
    with_list = backend_from_url(
        "COOKIE://", keys=[new_key()], revocation="memory://", single_process=True
    )
    assert isinstance(with_list, CookieBackend)
    assert isinstance(with_list.revocation, MemoryBackend)


@pytest.mark.parametrize("url", ["cookie://host", "cookie:///path", "cookie://?keys=x", "redis://"])
def test_from_url_refuses_anything_but_the_bare_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError, match="cookie://"):
        CookieBackend.from_url(url, keys=[new_key()])


@pytest.mark.parametrize(
    "revocation",
    ["redis://:Tr0ub[4dor]x@127.0.0.1:6379/0", "postgresql://u:Tr0ub4dor\uff0fx@127.0.0.1/test"],
)
def test_a_revocation_url_that_does_not_parse_hides_its_password(revocation: str) -> None:
    # urlsplit's own ValueError quoted part of the password (outside review).
    with pytest.raises(ConfigurationError) as caught:
        CookieBackend(keys=[new_key()], revocation=revocation)
    assert "Tr0ub" not in str(caught.value) and "4dor" not in str(caught.value)


def test_a_key_put_in_the_url_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match="SESSION_KEYS") as caught:
        CookieBackend.from_url("cookie://?keys=Tr0ub4dorKEY", keys=[new_key()])
    assert "Tr0ub4dor" not in str(caught.value)


def test_from_url_refuses_unknown_options() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        CookieBackend.from_url("cookie://", keys=[new_key()], secret="x")


def test_revocation_must_be_a_server_side_backend() -> None:
    with pytest.raises(ConfigurationError, match="server-side"):
        CookieBackend(keys=[new_key()], revocation=CookieBackend(keys=[new_key()]))
    with pytest.raises(ConfigurationError, match="revocation"):
        CookieBackend(keys=[new_key()], revocation=42)  # type: ignore[arg-type]


def test_a_memory_revocation_store_is_never_capped() -> None:
    """A full memory store drops entries; a dropped revocation would un-revoke its cookie."""
    backend = CookieBackend(
        keys=[new_key()], revocation="memory://?sweep_interval=5", single_process=True
    )
    assert isinstance(backend.revocation, MemoryBackend)
    assert backend.revocation.max_entries is None
    for capped in (MemoryBackend(), "memory://?max_entries=1000"):
        with pytest.raises(ConfigurationError, match="would drop revocations"):
            CookieBackend(keys=[new_key()], revocation=capped)


async def test_open_and_close_reach_the_revocation_store() -> None:
    store = MemoryBackend(max_entries=None, sweep_interval=0.05)
    backend = CookieBackend(keys=[new_key()], revocation=store)
    await backend.open()
    assert store._sweeper is not None
    await backend.close()
    assert store._sweeper is None


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf")])
async def test_encode_refuses_a_meaningless_ttl(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        await CookieBackend(keys=[new_key()]).encode_cookie(b"{}", ttl)


# -- the token ---------------------------------------------------------------------------------


async def test_token_needs_no_quoting_and_has_its_predicted_length() -> None:
    key = new_key()
    backend = CookieBackend(keys=[key])
    for size in (0, 1, 15, 16, 17, 100, 1000, 2000):
        value = os.urandom(size)
        token = await backend.encode_cookie(value, 60)
        assert "=" not in token
        plaintext = decrypt_v2(token, key)
        assert len(token) == predict_token_length(len(plaintext))
        assert value in plaintext


async def test_the_documented_byte_format() -> None:
    # docs/backend-cookie.md: version 0x02 | key id (4) | issue time ms (8) | nonce (12)
    # | AES-256-GCM ciphertext | tag (16), key and key id from HKDF-SHA256, bytes 0-12
    # authenticated as associated data. Decrypted here from that description alone.
    key = new_key()
    backend = CookieBackend(keys=[key])
    before = time.time()
    token = await backend.encode_cookie(b'{"x":1}', 60)
    raw = _raw(token)
    assert raw[0] == 0x02
    aes_key, key_id = derive(key)
    assert raw[1:5] == key_id
    (issued_ms,) = struct.unpack(">Q", raw[5:13])
    assert before - 0.001 <= issued_ms / 1000 <= time.time()
    plaintext = AESGCM(aes_key).decrypt(raw[13:25], raw[25:], raw[:13])
    sid, ttl, deadline, value = msgspec.msgpack.decode(plaintext)
    assert len(sid) == 16 and value == b'{"x":1}'
    assert 59 < ttl <= 60.001 and deadline == pytest.approx(issued_ms / 1000 + ttl, abs=0.01)


async def test_nothing_is_compressed() -> None:
    # A compressed plaintext's length would reveal how well attacker-chosen data matches
    # a secret stored next to it (CRIME/BREACH); 1.0 deflated it when that was smaller.
    key = new_key()
    backend = CookieBackend(keys=[key])
    repetitive = b'{"cart":[' + b'{"sku":"A-1","qty":1},' * 100 + b"]}"
    token = await backend.encode_cookie(repetitive, 60)
    assert repetitive in decrypt_v2(token, key)
    random_token = await backend.encode_cookie(os.urandom(len(repetitive)), 60)
    assert len(token) == len(random_token)
    stored = await backend.decode_cookie(token)
    assert stored is not None and stored.value == repetitive


async def test_another_spelling_of_the_same_bytes_is_refused() -> None:
    backend = CookieBackend(keys=[new_key()])
    # Value sizes whose token length leaves spare bits in its last character.
    spare = [n for n in range(16, 24) if predict_token_length(len(await _plain(n))) % 4]
    assert spare
    token = await backend.encode_cookie(os.urandom(spare[0]), 60)
    assert len(token) % 4
    last = ALPHABET.index(token[-1])
    alias = token[:-1] + ALPHABET[last ^ 1]
    assert _raw(alias) == _raw(token), "the alias decodes to the very same bytes"
    assert await backend.decode_cookie(token) is not None
    assert await backend.decode_cookie(alias) is None
    assert await backend.decode_cookie(_pad(token)) is None, "padding is not ours"


async def _plain(n: int) -> bytes:
    from sanic_cookies.backends.cookie._token import pack_plaintext

    return pack_plaintext(b"s" * 16, 60.0, 1e9, b"v" * n)


@pytest.mark.parametrize(
    "where",
    ["version", "key id", "issue time", "nonce", "ciphertext", "tag"],
)
async def test_a_changed_header_or_body_does_not_open(where: str) -> None:
    backend = CookieBackend(keys=[new_key()])
    token = await backend.encode_cookie(b'{"x":1}', 60)
    raw = bytearray(_raw(token))
    offset = {
        "version": 0,
        "key id": 2,
        "issue time": 10,
        "nonce": 20,
        "ciphertext": 30,
        "tag": len(raw) - 1,
    }[where]
    raw[offset] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert await backend.decode_cookie(token) is not None
    assert await backend.decode_cookie(forged) is None


async def test_the_key_id_picks_the_key() -> None:
    old, new = new_key(), new_key()
    token = await CookieBackend(keys=[old]).encode_cookie(b"{}", 60)
    both = CookieBackend(keys=[new, old])
    assert _raw(token)[1:5] == derive(old)[1] != derive(new)[1]
    assert await both.decode_cookie(token) is not None
    # A token naming the new key's id but sealed by the old key is refused.
    raw = bytearray(_raw(token))
    raw[1:5] = derive(new)[1]
    relabelled = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert await both.decode_cookie(relabelled) is None


async def test_token_issued_in_the_future_is_refused() -> None:
    backend = CookieBackend(keys=[new_key()])
    with use_clock(ManualClock(time.time() + 3600)):  # a key holder with a clock an hour fast
        token = await backend.encode_cookie(b"{}", 7200)
    assert await backend.decode_cookie(token) is None


async def test_refusals_are_logged_at_debug_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="sanic_cookies.backends.cookie")
    backend = CookieBackend(keys=[new_key()])
    foreign = await CookieBackend(keys=[new_key()]).encode_cookie(b"{}", 60)
    with use_clock(ManualClock(time.time() - 60)):  # issued a minute ago, valid for 1 s
        expired = await backend.encode_cookie(b"{}", 1)
    for value in (foreign, expired, "%" * 120, 42):
        assert await backend.decode_cookie(value) is None  # type: ignore[arg-type]
    lines = [r for r in caplog.records if r.name == "sanic_cookies.backends.cookie"]
    assert len(lines) == 4
    assert all(r.levelno == logging.DEBUG for r in lines)
    reasons = " | ".join(r.getMessage() for r in lines)
    for why in ("key that is not configured", "expired", "outside urlsafe base64", "not a string"):
        assert why in reasons
    assert foreign not in reasons and expired not in reasons
