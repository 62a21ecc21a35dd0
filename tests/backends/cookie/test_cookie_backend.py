"""The cookie backend on its own: keys, URL and options, the token format, logging."""

from __future__ import annotations

import base64
import logging
import os
import struct
import time
from typing import Any

import pytest
from cookie_support import new_key
from cryptography.fernet import Fernet

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
    with_list = backend_from_url("COOKIE://", keys=[new_key()], revocation="memory://")
    assert isinstance(with_list, CookieBackend)
    assert isinstance(with_list.revocation, MemoryBackend)


@pytest.mark.parametrize("url", ["cookie://host", "cookie:///path", "cookie://?keys=x", "redis://"])
def test_from_url_refuses_anything_but_the_bare_scheme(url: str) -> None:
    with pytest.raises(ConfigurationError, match="cookie://"):
        CookieBackend.from_url(url, keys=[new_key()])


def test_from_url_refuses_unknown_options() -> None:
    with pytest.raises(ConfigurationError, match="secret"):
        CookieBackend.from_url("cookie://", keys=[new_key()], secret="x")


def test_revocation_must_be_a_server_side_backend() -> None:
    with pytest.raises(ConfigurationError, match="server-side"):
        CookieBackend(keys=[new_key()], revocation=CookieBackend(keys=[new_key()]))
    with pytest.raises(ConfigurationError, match="revocation"):
        CookieBackend(keys=[new_key()], revocation=42)  # type: ignore[arg-type]


async def test_open_and_close_reach_the_revocation_store() -> None:
    store = MemoryBackend(sweep_interval=0.05)
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
    backend = CookieBackend(keys=[new_key()])
    for size in (0, 1, 15, 16, 17, 100, 1000, 2000):
        token = await backend.encode_cookie(os.urandom(size), 60)
        assert "=" not in token
        plaintext = backend._keyring.decrypt(_pad(token))
        assert len(token) == predict_token_length(len(plaintext))


async def test_compression_is_used_only_when_smaller() -> None:
    backend = CookieBackend(keys=[new_key()])
    repetitive = b'{"cart":[' + b'{"sku":"A-1","qty":1},' * 200 + b"]}"
    token = await backend.encode_cookie(repetitive, 60)
    assert len(token) < len(repetitive) / 5
    assert backend._keyring.decrypt(_pad(token))[0] == 1  # deflated
    random_token = await backend.encode_cookie(os.urandom(300), 60)
    assert backend._keyring.decrypt(_pad(random_token))[0] == 0  # stored plain
    stored = await backend.decode_cookie(token)
    assert stored is not None and stored.value == repetitive


async def test_another_spelling_of_the_same_bytes_is_refused() -> None:
    backend = CookieBackend(keys=[new_key()])
    # 16 value bytes: a token whose length leaves spare bits in its last character.
    for _ in range(20):
        token = await backend.encode_cookie(os.urandom(16), 60)
        if len(token) % 4:
            break
    else:
        pytest.fail("no token with spare bits")
    last = ALPHABET.index(token[-1])
    alias = token[:-1] + ALPHABET[last ^ 1]
    assert _raw(alias) == _raw(token), "the alias decodes to the very same bytes"
    assert await backend.decode_cookie(token) is not None
    assert await backend.decode_cookie(alias) is None
    assert await backend.decode_cookie(_pad(token)) is None, "padding is not ours"


async def test_issue_time_is_fernets_authenticated_timestamp() -> None:
    backend = CookieBackend(keys=[new_key()])
    before = int(time.time())
    token = await backend.encode_cookie(b"{}", 60)
    (issued,) = struct.unpack(">Q", _raw(token)[1:9])
    assert before <= issued <= time.time()
    # Moving the timestamp by hand breaks the HMAC.
    raw = bytearray(_raw(token))
    raw[1:9] = struct.pack(">Q", issued + 3600)
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    assert await backend.decode_cookie(forged) is None


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
    for why in ("does not decrypt", "expired", "outside urlsafe base64", "not a string"):
        assert why in reasons
    assert foreign not in reasons and expired not in reasons
