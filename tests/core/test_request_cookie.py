"""`cookie_value` reads the session cookie exactly as Sanic's `parse_cookie` would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sanic.cookies.request import parse_cookie

from sanic_cookies._request_cookie import cookie_value

names = st.sampled_from(["session", "sid", "a.b", "__Host-session"])
# Cookie headers built from pieces that matter to the parser: separators, spaces,
# quotes and escapes, prefixes and look-alike names, empty and nameless cookies.
pieces = st.sampled_from(
    [
        "session",
        "sid",
        "a.b",
        "__Host-session",
        "__Secure-session",
        "sessions",
        "xsession",
        "=",
        ";",
        "; ",
        " ",
        '"',
        "\\",
        "\\101",
        "abc",
        "-_",
        "\t",
        ",",
    ]
)
headers = st.one_of(st.lists(pieces, max_size=14).map("".join), st.text(max_size=40))


def sanic_reads(header: str, name: str) -> str | None:
    values = parse_cookie(header).get(name)
    return values[0] if values else None


@settings(max_examples=2000, deadline=None)
@given(header=headers, name=names)
def test_same_value_as_sanic(header: str, name: str) -> None:
    assert cookie_value(header, name) == sanic_reads(header, name)


def test_examples() -> None:
    assert cookie_value("", "session") is None
    assert cookie_value("a=1; session=abc; session=def", "session") == "abc"
    assert cookie_value("__Host-session=abc", "session") is None
    assert cookie_value("sessionx=1; session = abc ", "session") == "abc"
    assert cookie_value('session="a\\"b"', "session") == 'a"b'
    assert cookie_value("session", "session") is None  # a nameless cookie whose value is "session"
