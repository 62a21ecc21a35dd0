"""safe_next / is_safe_path: only paths safe in a Location header *and* in an HTML page.

1.0.0 accepted ``/"><script>…`` (a same-site path, to its checks), and the login-form
example of docs/authentication.md echoed it into an attribute: reflected XSS from a link.
It also accepted ``/.//evil.com``, which is ``//evil.com`` once a server or proxy
resolves its dot segments.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote, unquote

import pytest
from auth_support import Browser, build_app
from hypothesis import given
from hypothesis import strategies as st
from sanic import Request, html

from sanic_cookies import is_safe_path, safe_next

XSS = '/"><script>alert(document.cookie)</script>'

UNSAFE_NEXT = [
    # HTML: each could end an attribute or open a tag where the value is echoed.
    XSS,
    '/a"onmouseover=alert(1)',
    "/a'onmouseover=alert(1)",
    "/a`x",
    "/<img src=x onerror=alert(1)>",
    "/?q=<script>",
    "/#<svg onload=alert(1)>",
    # ...also percent-encoded (pages that decode before echoing).
    "/%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
    "/%3Cscript%3E",
    "/%27onmouseover=alert(1)",
    # Headers: CR/LF would split the Location header.
    "/x\r\nSet-Cookie: session=fixed",
    "/x%0d%0aSet-Cookie:%20session=fixed",
    # Dot segments that resolve to //host.
    "/.//evil.com",
    "/././/evil.com",
    "/..//evil.com",
    "/a/..//evil.com",
    "/a/b/../..//evil.com",
    "/%2e//evil.com",
    "/%2E%2E//evil.com",
    "/.%2F/evil.com",
    # Deeper encodings and Unicode look-alikes of / and \\.
    "/%252F/evil.com",
    "/%25252F%25252Fevil.com",
    "/%255Cevil.com",
    "/\uff0fevil.com",  # FULLWIDTH SOLIDUS: NFKC "/"
    "/\uff3cevil.com",  # FULLWIDTH REVERSE SOLIDUS: NFKC "\\"
    "/\uff0e/\uff0fevil.com",
    # Whitespace and controls anywhere.
    "/x y",
    "/x\u00a0y",
    "/x\x7fy",
    "/%00",
]

STILL_FINE = [
    "/",
    "/account",
    "/orders?page=2&sort=date",
    "/a/./b",
    "/a/../b",
    "/a//b",
    "/search?q=%2F%2F",
    "/caf%C3%A9",
    "/café",
    "/p#frag",
    "/100%25",
]


@pytest.mark.parametrize("value", UNSAFE_NEXT)
def test_unsafe_values_are_refused(value: str) -> None:
    assert not is_safe_path(value)


@pytest.mark.parametrize("value", STILL_FINE)
def test_ordinary_paths_are_still_accepted(value: str) -> None:
    assert is_safe_path(value)


@pytest.mark.parametrize("value", UNSAFE_NEXT)
async def test_login_redirect_and_an_echoing_page_get_the_default(value: str) -> None:
    app, _ = build_app("memory://")

    @app.get("/echo")
    async def echo(request: Request) -> Any:
        # Deliberately careless: what 1.0.0's docs example did with the value.
        return html(f'<form action="/login?next={safe_next(request)}"></form>')

    browser = Browser(app)
    response = await browser.post("/login", params={"user": "alice", "next": value})
    assert response.status == 302
    assert response.headers["location"] == "/"
    response = await browser.get("/echo", params={"next": value})
    assert response.text == '<form action="/login?next=/"></form>'


_HTML_SPECIAL = set("\"'`<>")


@given(st.text(max_size=40))
def test_an_accepted_value_holds_nothing_that_breaks_out_of_html(value: str) -> None:
    if not is_safe_path(value):
        return
    for form in (value, unquote(value), unquote(unquote(value))):
        assert not _HTML_SPECIAL & set(form)
        assert not any(unicodedata.category(c)[0] in "CZ" or c.isspace() for c in form)


@given(st.text(alphabet="/.%2eEfF5cC\\ab", max_size=14))
def test_no_accepted_path_resolves_to_a_network_path(value: str) -> None:
    # A small alphabet of the pieces of the tricks above, combined every which way.
    if not is_safe_path(value):
        return
    for form in (value, unquote(value), unquote(unquote(value)), quote(value, safe="/%")):
        path = unquote(form).split("?")[0].split("#")[0]
        segments: list[str] = []
        for segment in path.split("/")[1:]:
            if segment == "..":
                if segments:
                    segments.pop()
            elif segment != ".":
                segments.append(segment)
        assert not ("/" + "/".join(segments)).startswith("//"), value
