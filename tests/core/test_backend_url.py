"""parse_backend_url: a backend URL into typed parts; unknown or mistyped options refused."""

from __future__ import annotations

from typing import Any

import pytest

from sanic_cookies import BackendURL, ConfigurationError, parse_backend_url

ACCEPTS: dict[str, Any] = {"lease": 30.0, "pool": 4, "create": True, "table": "s", "tls": None}


def test_every_part_and_typed_options() -> None:
    parsed = parse_backend_url(
        "MyStore://ann:p%40ss@db.example:5433/var/app%20x?lease=2.5&pool=8&create=no",
        accepts=ACCEPTS,
    )
    assert parsed == BackendURL(
        scheme="mystore",
        username="ann",
        password="p@ss",
        host="db.example",
        port=5433,
        path="/var/app x",
        options={"lease": 2.5, "pool": 8, "create": False, "table": "s", "tls": None},
    )


def test_defaults_fill_in_and_keywords_override_the_query() -> None:
    given = {"pool": 3, "lease": 1, "tls": "on"}
    parsed = parse_backend_url("s://h?pool=2", given, accepts=ACCEPTS)
    assert parsed.options == {"lease": 1.0, "pool": 3, "create": True, "table": "s", "tls": "on"}
    assert isinstance(parsed.options["lease"], float)
    assert parsed.username is None and parsed.port is None and parsed.path == ""


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("s://h?lease=1&leese=2", {}, "does not take the option(s) leese; it takes: create, lease"),
        ("s://h", {"bogus": 1}, "bogus"),
        ("s://h?pool=many", {}, "'pool' must be int, got 'many'"),
        ("s://h?create=maybe", {}, "'create' must be bool"),
        ("s://h", {"pool": True}, "'pool' must be int, got bool"),
        ("s://h", {"lease": "soon"}, "'lease' must be float"),
        ("s://h", {"table": 3}, "'table' must be str"),
        ("s://h?pool=1&pool=2", {}, "given twice"),
        ("s://h:99999", {}, "Malformed s:// URL"),
        ("no-scheme", {}, "scheme://"),
        ("s:///var/a#b.db", {}, "percent-encode it as %23"),  # else the path ends at "a"
    ],
)
def test_mistakes_are_configuration_errors(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_backend_url(url, options, accepts=ACCEPTS)
    assert message in str(caught.value)


def test_a_password_never_reaches_the_message() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_backend_url("s://u:hunter2@h?nope=1", accepts={})
    assert "hunter2" not in str(caught.value)
    assert "it takes: none" in str(caught.value)
