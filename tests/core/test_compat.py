"""The core's public-API fallbacks for Sanic's private attributes (`sanic_cookies._compat`).

Every test here runs with `use_private_internals(False)`, as a Sanic without those
attributes would: the renderings and readings must stay byte for byte Sanic's,
and a real session must round-trip through an app.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from core_support import cookie_header, get, session_app, session_cookie
from sanic import Sanic

# The rendering and reading checks of the fast paths, run again on the fallbacks.
from test_request_cookie import test_examples, test_same_value_as_sanic
from test_set_cookie import (
    test_a_changed_attribute_is_rendered,
    test_a_template_refuses_what_sanic_refuses,
    test_a_template_stamps_what_sanic_renders,
    test_a_template_tells_the_size_of_what_it_renders,
    test_a_template_with_the_host_prefix,
    test_host_prefix_and_partitioned,
    test_renders_like_sanic,
    test_the_size_of_every_kind_of_cookie,
)

from sanic_cookies import _compat, served_over_asgi
from sanic_cookies._set_cookie import _TAILS, CookieTemplate

__all__ = [
    "test_a_changed_attribute_is_rendered",
    "test_a_template_refuses_what_sanic_refuses",
    "test_a_template_stamps_what_sanic_renders",
    "test_a_template_tells_the_size_of_what_it_renders",
    "test_a_template_with_the_host_prefix",
    "test_examples",
    "test_host_prefix_and_partitioned",
    "test_renders_like_sanic",
    "test_same_value_as_sanic",
    "test_the_size_of_every_kind_of_cookie",
]


@pytest.fixture(autouse=True)
def public_api_only() -> Iterator[None]:
    _compat.use_private_internals(False)
    _TAILS.clear()  # tails cached by the fast path must not answer for the fallback
    try:
        yield
    finally:
        _compat.use_private_internals(True)
        _TAILS.clear()


def test_the_fallbacks_are_the_ones_in_use() -> None:
    assert _compat.unquote is _compat.public_unquote
    assert _compat.registered_apps is _compat._public_registered_apps
    template = CookieTemplate("session", path="/", secure=True, httponly=True)
    assert str(template.make("abc", 60)).startswith("session=abc; Path=/; Max-Age=60")


def test_this_sanic_has_the_private_attributes_the_fast_paths_use() -> None:
    # If a Sanic release drops them, this fails first: the fallbacks serve meanwhile.
    assert _compat.PRIVATE_INTERNALS_AVAILABLE


async def test_a_session_round_trips_through_an_app_on_the_fallbacks() -> None:
    app, _ = session_app(secure=False)
    first = await get(app, "/set?colour=blue")
    value, attrs = session_cookie(first)
    assert attrs["path"] == "/" and "httponly" in attrs and attrs["samesite"] == "Lax"
    cookie = cookie_header(first)
    assert (await get(app, "/incr", cookie)).json == {"n": 1}
    # A quoted cookie value is read through the unquote fallback.
    again = await get(app, "/locked-read", f'session="{value}"')
    assert again.json == {"colour": "blue", "n": 1}


def test_the_registry_fallback_names_the_only_app_and_none_of_several(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `Sanic.get_app()` (public) stands in for Sanic's registry of apps.
    first: Sanic[Any, Any] = Sanic(f"compat_{uuid.uuid4().hex}")
    second: Sanic[Any, Any] = Sanic(f"compat_{uuid.uuid4().hex}")
    monkeypatch.setattr(Sanic, "_app_registry", {first.name: first})
    assert _compat.registered_apps() == [first]
    monkeypatch.setattr(Sanic, "_app_registry", {first.name: first, second.name: second})
    assert _compat.registered_apps() == []
    monkeypatch.setattr(Sanic, "_app_registry", {})
    assert _compat.registered_apps() == []
    _compat.use_private_internals(True)
    monkeypatch.setattr(Sanic, "_app_registry", {first.name: first, second.name: second})
    assert _compat.registered_apps() == [first, second]


def test_served_over_asgi_on_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    app: Sanic[Any, Any] = Sanic(f"compat_{uuid.uuid4().hex}")
    monkeypatch.delenv("SANIC_WORKER_NAME", raising=False)
    monkeypatch.setattr(Sanic, "_app_registry", {app.name: app})
    assert not served_over_asgi()
    app.asgi = True  # what Sanic.__call__ does when an ASGI server calls the app
    assert served_over_asgi()
