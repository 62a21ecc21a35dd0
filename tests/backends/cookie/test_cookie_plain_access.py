"""0.4-style plain access on the encrypted cookie: the data is in the request, loaded on use."""

from __future__ import annotations

from typing import Any

import pytest
from cookie_support import new_key
from environment import require_module
from plain_access_support import check_plain_access, plain_access_app

from sanic_cookies import UnsupportedOperation
from sanic_cookies.backends.memory import MemoryBackend

pytestmark = pytest.mark.cookie


def _cookie_backend(**options: Any) -> Any:
    require_module("sanic_cookies.backends.cookie", "sanic-cookies-cookie")
    from sanic_cookies.backends.cookie import CookieBackend

    return CookieBackend(keys=[new_key()], **options)


async def test_plain_access_on_the_cookie_backend_needs_no_setting() -> None:
    await check_plain_access(lambda **settings: plain_access_app(_cookie_backend(), **settings))


async def test_plain_access_with_an_in_memory_revocation_list() -> None:
    await check_plain_access(
        lambda **settings: plain_access_app(
            _cookie_backend(revocation=MemoryBackend(max_entries=None), single_process=True),
            **settings,
        )
    )


class _Networked(MemoryBackend):
    """A revocation store that, like Redis, can only be read with an await."""

    @property
    def loads_now(self) -> bool:
        return False


async def test_a_networked_revocation_list_needs_autoload() -> None:
    backend = _cookie_backend(revocation=_Networked(max_entries=None), single_process=True)
    assert not backend.loads_now
    token = await backend.encode_cookie(b"x", 60)
    with pytest.raises(UnsupportedOperation):
        backend.decode_cookie_now(token)
    await check_plain_access(
        lambda **settings: plain_access_app(
            _cookie_backend(revocation=_Networked(max_entries=None), single_process=True),
            autoload=True,
            **settings,
        )
    )


async def test_decode_cookie_now_agrees_with_decode_cookie() -> None:
    backend = _cookie_backend(revocation=MemoryBackend(max_entries=None), single_process=True)
    assert backend.loads_now
    token = await backend.encode_cookie(b"value", 60)
    assert backend.decode_cookie_now(token) == await backend.decode_cookie(token)
    assert backend.decode_cookie_now(token) is not None
    for bad in ("", "garbage", token[:-3], token + "x"):
        assert backend.decode_cookie_now(bad) is None
    await backend.revoke_cookie(token, 0)
    assert backend.decode_cookie_now(token) is None
    assert await backend.decode_cookie(token) is None
