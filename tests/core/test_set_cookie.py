"""`SessionCookie` renders exactly what Sanic's `Cookie` renders, from its cache too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sanic.cookies.response import Cookie
from sanic.exceptions import ServerError
from sanic.response import text
from sanic.response.types import HEADER_TRANSLATION_TABLE

from sanic_cookies._set_cookie import (
    _TAILS,
    SET_COOKIE,
    CookieTemplate,
    SessionCookie,
    _HeaderName,
    _HeaderValue,
)

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


template_attributes = st.fixed_dictionaries(
    {
        "path": st.sampled_from(["/", "/app"]),
        "domain": st.sampled_from([None, "example.com"]),
        "secure": st.booleans(),
        "httponly": st.booleans(),
        "samesite": st.sampled_from(["Lax", "Strict", "None", None]),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    value=values,
    attrs=template_attributes,
    max_age=st.one_of(st.none(), st.integers(0, 10**8)),
)
def test_a_template_stamps_what_sanic_renders(
    value: str, attrs: dict[str, Any], max_age: int | None
) -> None:
    expires = EPOCH if max_age == 0 else None
    expected = str(Cookie("session", value, max_age=max_age, expires=expires, **attrs))
    cookie = CookieTemplate("session", **attrs).make(value, max_age)
    assert str(cookie) == expected
    assert (cookie.max_age, cookie.expires, cookie.path) == (max_age, expires, attrs["path"])


def test_a_template_with_the_host_prefix() -> None:
    template = CookieTemplate("session", secure=True, host_prefix=True, partitioned=True)
    assert template.key == "__Host-session"
    expected = Cookie("session", "abc", max_age=9, secure=True, host_prefix=True, partitioned=True)
    assert str(template.make("abc", 9)) == str(expected)


def test_a_template_refuses_what_sanic_refuses() -> None:
    with pytest.raises(ServerError):
        CookieTemplate("session", secure=False, host_prefix=True)
    with pytest.raises(KeyError):
        CookieTemplate("path")
    with pytest.raises(ValueError, match="max-age"):
        CookieTemplate("session").make("abc", -1)
    with pytest.raises(ValueError, match="max-age"):
        CookieTemplate("session").make("abc", 1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["plain; Path=/", "a\r\nSet-Cookie: x=1", "nul\x00byte", "\n", ""])
def test_the_rendering_is_cleaned_like_any_header_value(raw: str) -> None:
    # Sanic's clean-up (and any other table) gives what str.translate gives.
    for value in (_HeaderValue(raw), _HeaderName(raw)):
        assert value.translate(HEADER_TRANSLATION_TABLE) == raw.translate(HEADER_TRANSLATION_TABLE)
        other = str.maketrans("", "", "P")
        assert value.translate(other) == raw.translate(other)


def test_a_rendering_sent_by_sanic_keeps_its_bytes() -> None:
    response = text("ok")
    cookie = CookieTemplate("session", httponly=True).make("abc", 60)
    response.headers.add("Set-Cookie", cookie)
    rendered = str(cookie)
    assert isinstance(rendered, _HeaderValue)
    headers = dict(response.processed_headers)
    assert headers[b"Set-Cookie"] == rendered.encode()
    assert rendered == "session=abc; Path=/; Max-Age=60; SameSite=Lax; Secure; HttpOnly"


def test_the_header_name_is_sanics_set_cookie() -> None:
    # Case-insensitive like Sanic's own names: response.cookies and getall() find it.
    response = text("ok")
    response.headers.add(SET_COOKIE, CookieTemplate("session").make("abc", 60))
    assert SET_COOKIE == "Set-Cookie"
    assert len(response.headers.getall("set-cookie")) == 1
    cookie = response.cookies.get_cookie("session")
    assert cookie is not None and cookie.value == "abc"
    assert [name for name, _ in response.processed_headers if name.lower() == b"set-cookie"] == [
        b"Set-Cookie"
    ]


size_attributes = st.fixed_dictionaries(
    {
        "path": st.sampled_from(["/", "/app", "/a b", "/caf\u00e9"]),
        "domain": st.sampled_from([None, "example.com", "accounts.example-company.co.uk"]),
        "secure": st.booleans(),
        "httponly": st.booleans(),
        "samesite": st.sampled_from(["Lax", "Strict", "None", None]),
    }
)


@settings(max_examples=500, deadline=None)
@given(
    name=st.sampled_from(["session", "sid", "a_rather_long_session_cookie_name"]),
    value=values,
    attrs=size_attributes,
    max_age=st.one_of(st.none(), st.integers(0, 10**12)),
)
def test_a_template_tells_the_size_of_what_it_renders(
    name: str, value: str, attrs: dict[str, Any], max_age: int | None
) -> None:
    # Worked out, not rendered: it must be the rendering's length in bytes all the same.
    template = CookieTemplate(name, **attrs)
    assert template.size(value, max_age) == len(str(template.make(value, max_age)).encode())


@pytest.mark.parametrize("max_age", [None, 0, 1, 9, 10, 86400, 400 * 86400])
@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"domain": "example.com", "path": "/app"},
        {"secure": True, "host_prefix": True, "partitioned": True},
        {"secure": True, "host_prefix": True, "samesite": "None", "httponly": False},
        {"samesite": None, "secure": False, "httponly": False},
    ],
    ids=["defaults", "domain", "host-prefix-partitioned", "host-prefix", "bare"],
)
def test_the_size_of_every_kind_of_cookie(attrs: dict[str, Any], max_age: int | None) -> None:
    template = CookieTemplate("session", **attrs)
    token = "AbC-_09" * 50  # a cookie token's alphabet (urlsafe base64)
    for value in (token, "x", "needs quoting", "caf\u00e9", ""):
        expected = len(str(template.make(value, max_age)).encode())
        assert template.size(value, max_age) == expected, value


def test_the_size_refuses_what_a_rendering_refuses() -> None:
    template = CookieTemplate("session")
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max-age"):
            template.size("abc", bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max-age"):
            template.size("needs quoting", bad)  # type: ignore[arg-type]
