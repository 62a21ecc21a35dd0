"""`SessionCookie` renders exactly what Sanic's `Cookie` renders, from its cache too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sanic.cookies.response import Cookie
from sanic.response import text

from sanic_cookies._set_cookie import _TAILS, SessionCookie

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

attributes = st.fixed_dictionaries(
    {
        "path": st.sampled_from(["/", "/app", "/a b"]),
        "domain": st.sampled_from([None, "example.com"]),
        "secure": st.booleans(),
        "max_age": st.one_of(st.none(), st.integers(0, 10**8)),
        "expires": st.sampled_from([None, EPOCH]),
        "httponly": st.booleans(),
        "samesite": st.sampled_from(["Lax", "Strict", "None", "lax", None]),
    }
)
# Session ids, cookie tokens, and values Sanic must quote (spaces, quotes, commas, ...).
values = st.one_of(
    st.text("ABCxyz019_-", min_size=1, max_size=60),
    st.text(min_size=0, max_size=30),
    st.just(""),
)


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(["session", "sid", "a.b"]), value=values, attrs=attributes)
def test_renders_like_sanic(name: str, value: str, attrs: dict[str, Any]) -> None:
    expected = str(Cookie(name, value, **attrs))
    cookie = SessionCookie(name, value, **attrs)
    assert str(cookie) == expected
    assert str(cookie) == expected  # the second time from the cache
    assert str(SessionCookie(name, value, **attrs)) == expected  # a new object, cached tail


def test_host_prefix_and_partitioned() -> None:
    kw: dict[str, Any] = {"secure": True, "host_prefix": True, "partitioned": True, "max_age": 60}
    assert str(SessionCookie("session", "abc", **kw)) == str(Cookie("session", "abc", **kw))


def test_a_changed_attribute_is_rendered() -> None:
    cookie = SessionCookie("session", "abc", max_age=60)
    assert "Max-Age=60" in str(cookie)
    cookie.max_age = 120
    cookie.domain = "example.com"
    assert str(cookie) == str(Cookie("session", "abc", max_age=120, domain="example.com"))


def test_the_cache_stays_small() -> None:
    for age in range(500):
        str(SessionCookie("session", "abc", max_age=age))
    assert len(_TAILS) <= 64


def test_on_a_response_it_is_a_cookie_like_any_other() -> None:
    response = text("ok")
    response.headers.add("Set-Cookie", SessionCookie("session", "abc", max_age=5))
    found = response.cookies.get_cookie("session")
    assert isinstance(found, Cookie)
    assert found.max_age == 5
    headers = dict(response.processed_headers)
    assert headers[b"Set-Cookie"] == b"session=abc; Path=/; Max-Age=5; SameSite=Lax; Secure"
