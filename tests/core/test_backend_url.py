"""parse_backend_url: a backend URL into typed parts; unknown or mistyped options refused.

split_backend_url and redact_url: a URL that does not parse as written is refused, and
no message shows a password.
"""

from __future__ import annotations

from typing import Any

import pytest

from sanic_cookies import (
    BackendURL,
    ConfigurationError,
    backend_from_url,
    parse_backend_url,
    redact_url,
    register,
    split_backend_url,
)

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
        ("s://h:99999", {}, "Malformed URL 's://h:***'"),
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


# A password with '#', '/' or '?' left as it is: the parser would take part of it for a
# port, or another host; and the text it quotes would be the password.
MISREAD = [
    "s://app:Tr0ub4dor#3@db:5432/x",
    "s://app:Tr0/ub4dor@db:5432/x",
    "s://app:Tr0?ub4dor@db:5432/x",
    "s://app:12?Tr0ub4dor@db/x",  # "12" would read as a port: connects elsewhere
    "s://:12345#Tr0ub4dor@db/x",
    "s://app:Tr0ub4dor@db:abc/x",
    "s://app:Tr0ub4dor@db:99999/x",
    "s://app:Tr0＠ub4dor@db/x",  # a full-width @: the parser quotes the whole authority
    "s://app:Tr0ub4dor",  # no "@host": the password reads as a port
]


@pytest.mark.parametrize("url", MISREAD)
def test_a_url_that_does_not_parse_as_written_is_refused_without_its_password(url: str) -> None:
    for parse in (split_backend_url, lambda u: parse_backend_url(u, accepts={})):
        with pytest.raises(ConfigurationError) as caught:
            parse(url)
        message = str(caught.value)
        assert "Tr0" not in message and "ub4dor" not in message, message
        assert "percent-encode" in message


def test_split_backend_url_passes_what_parses_and_leaves_several_hosts_to_the_driver() -> None:
    assert split_backend_url("s://u:p%23w@db:5432/x?a=b@c").port == 5432
    assert split_backend_url("s://[::1]:6379/0").hostname == "::1"
    assert split_backend_url("s://h1:5432,h2:5433/db").netloc == "h1:5432,h2:5433"
    assert split_backend_url("s:///var/run/x").path == "/var/run/x"


def test_redact_url_hides_passwords_only() -> None:
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("memory://") == "memory://"
    assert redact_url("redis://h:6379/0?socket_timeout=1") == "redis://h:6379/0?socket_timeout=1"
    assert redact_url("s://h/0?prefix=app:&db=0") == "s://h/0?prefix=app:&db=0"


def test_redact_url_hides_every_credential_option() -> None:
    """Sentinel's own password, and any option named like a credential (review 18)."""
    url = "redis+sentinel://:secret@s1:26379,s2:26379/sessions/0?sentinel_password=spass&db=0"
    shown = redact_url(url)
    assert "secret" not in shown and "spass" not in shown, shown
    assert shown == "redis+sentinel://:***@s1:26379,s2:26379/sessions/0?sentinel_password=***&db=0"
    shown = redact_url(
        "postgresql://u@h/db?api_token=t0k&client_secret=c5&replica=postgresql://r:rp@h2/db"
    )
    assert not any(word in shown for word in ("t0k", "c5", "rp@")), shown
    assert "api_token=***" in shown and "client_secret=***" in shown and "r:***@h2" in shown


@pytest.mark.parametrize("url", [*MISREAD[:5], "s:/app:Tr0ub4dor@db/x"])
def test_redact_url_hides_all_before_the_last_at_of_a_url_that_does_not_parse(url: str) -> None:
    shown = redact_url(url)
    assert "Tr0" not in shown and "ub4dor" not in shown, shown
    # (Of one without its '://', only the scheme.)
    assert shown.startswith("s://***@db") or shown == "s://***"


@pytest.mark.parametrize(
    "url",
    [
        "s://app:p/w@db/app?sslpassword=Tr0ub4dor",  # a URL that does not parse, with an option
        "s://app:p/w@db/0?prefix=a@b&password=Tr0ub4dor",  # ... and an '@' in the query
        "s://app:Tr0ub4dor",  # "user:password" with no "@host"
        "s://app:Tr0,ub4dor",
    ],
)
def test_redact_url_hides_what_a_misread_url_holds_after_its_host_too(url: str) -> None:
    shown = redact_url(url)
    assert "Tr0" not in shown and "ub4dor" not in shown, shown


@pytest.mark.parametrize(
    ("url", "options"), [("s://h?password=x654321", {}), ("s://h", {"password": 6.54321})]
)
def test_an_option_named_like_a_secret_is_not_shown_when_it_is_refused(
    url: str, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_backend_url(url, options, accepts={"password": 1})
    assert "654321" not in str(caught.value)
    assert "'password' must be int" in str(caught.value)


def test_the_memory_backend_checks_its_url_too() -> None:
    with pytest.raises(ConfigurationError, match="percent-encode") as caught:
        backend_from_url("memory://admin:Tr0/ub4dor@h/")
    assert "Tr0" not in str(caught.value) and "ub4dor" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        backend_from_url("memory://admin:Tr0ub4dor@h/?max_entries=many")
    assert "Tr0ub4dor" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="each option once"):
        backend_from_url("memory://?max_entries=10&max_entries=20")


def test_a_url_with_several_hosts_is_refused_by_parse_backend_url() -> None:
    # BackendURL holds one host; split_backend_url passes the list on (PostgreSQL takes it).
    with pytest.raises(ConfigurationError, match="names one host") as caught:
        parse_backend_url("s://u:Tr0ub4dor@h1:7000,h2:7001/ns", accepts={})
    assert "Tr0ub4dor" not in str(caught.value)
    assert split_backend_url("s://u:Tr0ub4dor@h1:7000,h2:7001/ns").path == "/ns"


def test_an_at_sign_in_an_option_s_name_with_no_credentials_is_taken_for_a_misread() -> None:
    url = "s://app:7?Tr0ub4dor@kv.local/ns"  # '?' in the password: "port" 7, then the query
    with pytest.raises(ConfigurationError, match="percent-encode") as caught:
        split_backend_url(url)
    assert "Tr0ub4dor" not in str(caught.value)
    assert "Tr0ub4dor" not in redact_url(url)


def test_an_at_sign_where_no_password_can_be() -> None:
    # In a path, an '@' is written %40: with no host, a raw one may end a password that
    # lost its host ("redis:///:pw@h:6379/0", one slash too many).
    with pytest.raises(ConfigurationError, match="percent-encode"):
        split_backend_url("s:///srv/ops@example.com/sessions.json")
    with pytest.raises(ConfigurationError, match="percent-encode") as caught:
        split_backend_url("s:///:Tr0ub4dor@127.0.0.1:6379/0")
    assert "Tr0ub4dor" not in str(caught.value)
    parsed = parse_backend_url("s:///srv/ops%40example.com/sessions.json", accepts={})
    assert parsed.path == "/srv/ops@example.com/sessions.json"
    assert split_backend_url("s://u:p@h/0?prefix=app@v2:").query == "prefix=app@v2:"
    # In an option's value, with or without credentials (an Azure-style user, a prefix).
    assert split_backend_url("s:///db?user=admin@server&host=/tmp").query.startswith("user=")
    assert split_backend_url("s://h/0?prefix=app@v2:").query == "prefix=app@v2:"
    assert redact_url("s://h/0?application_name=me@x") == "s://h/0?application_name=me@x"
    assert split_backend_url("s://h/0?replica=s://u:p@h2/db").hostname == "h"
    with pytest.raises(ConfigurationError, match="percent-encode"):
        split_backend_url("s://h/team@corp")  # an '@' after a host: written %40


def test_redaction_of_option_values_and_host_less_credentials() -> None:
    assert "Tr0ub4dor" not in redact_url("s://u:pa/Tr0ub4dor")
    assert redact_url("s://h/0?api_key=k3y&auth=a&passwd=p") == (
        "s://h/0?api_key=***&auth=***&passwd=***"
    )
    assert "Tr0ub4dor" not in redact_url("s://h/0?replica=//u:Tr0ub4dor@h2")
    with pytest.raises(ConfigurationError) as caught:
        parse_backend_url("s://h/ns?db=s://u:Tr0ub4dor@replica/ns", accepts={"db": 1})
    assert "Tr0ub4dor" not in str(caught.value)


def test_the_host_is_percent_decoded_like_the_other_parts() -> None:
    parsed = parse_backend_url("s://%2Fvar%2Frun%2Fkv.sock/ns", accepts={})
    assert parsed.host == "/var/run/kv.sock"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("s://h/0?apikey=Tr0ub4dor&db=0", "s://h/0?apikey=***&db=0"),
        ("s://h/0?pwd=Tr0ub4dor", "s://h/0?pwd=***"),
        ("s://h/0?ssl_passphrase=Tr0ub4dor", "s://h/0?ssl_passphrase=***"),
        ("s://h/0?api-key=Tr0ub4dor", "s://h/0?api-key=***"),
        ("s://h/0?private_key=Tr0ub4dor", "s://h/0?private_key=***"),
        # ';' separates options for some parsers: split there too.
        ("s://h/0?db=0;password=Tr0ub4dor", "s://h/0?db=0&password=***"),
        ("s://u@h/db?replica=s://r:Tr0ub4dor@h2/db;x=1", "s://u@h/db?replica=s://r:***@h2/db&x=1"),
        # A fragment is never a part the library reads: whatever it holds is not shown.
        ("s://:pw@h/0#Tr0ub4dor", "s://:***@h/0#***"),
        ("s://h/0#Tr0ub4dor", "s://h/0#***"),
    ],
)
def test_redact_url_hides_more_spellings_of_a_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("value", [123, None, b"redis://:Tr0ub4dor@h/0", ["memory://"]])
def test_what_is_not_a_str_is_a_configuration_error_and_redaction_never_raises(
    value: Any,
) -> None:
    assert redact_url(value) == f"<{type(value).__name__}, not a URL>"
    with pytest.raises(ConfigurationError, match="must be a str"):
        split_backend_url(value)
    with pytest.raises(ConfigurationError) as caught:
        backend_from_url(value)
    assert "Tr0ub4dor" not in str(caught.value)


@pytest.mark.parametrize("url", ["s://h/0?prefix=app#2", "s://h/0#x", "s://u:pw@h/db#", "s://h#"])
def test_split_backend_url_refuses_a_hash_sign(url: str) -> None:
    # A fragment is read by no backend: ?prefix=app#2 would silently be prefix "app".
    with pytest.raises(ConfigurationError, match="cannot contain '#'") as raised:
        split_backend_url(url)
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        # An '@' left in a password, then a '/' or a '?': the host after it was lost.
        "postgresql://postgres:Tr0u@localhost?b4dor@10.1.1.1:5432/test",
        "redis://:Tr0u@b4?dor@127.0.0.1:6379/0",
        "redis://:Tr0u@b4/dor@127.0.0.1:6379/0",
        "redis:///:Tr0ub4dor@127.0.0.1:6379/0",  # one slash too many
        "my_kv://admin:Tr0ub4dor@db1/x",  # a scheme urlsplit cannot read: all of it a path
        "redis ://:Tr0ub4dor@h/0",
        "redis://:Tr0ub\tdor@127.0.0.1:6379/0",  # urlsplit deletes the tab without a word
        "redis://:Tr0ub\ndor@127.0.0.1:6379/0",
    ],
)
def test_more_urls_that_do_not_read_as_written_are_refused_without_their_password(
    url: str,
) -> None:
    shown = redact_url(url)
    assert "Tr0" not in shown and "dor" not in shown and "b4" not in shown, shown
    with pytest.raises(ConfigurationError) as caught:
        split_backend_url(url)
    assert "Tr0" not in str(caught.value) and "dor" not in str(caught.value), caught.value


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("host=db user=app password=Tr0ub4dor dbname=app", "***"),  # libpq key=value
        ("db:6379,password=Tr0ub4dor,ssl=True", "db://***"),  # StackExchange.Redis
        ("redis://h/0?password=x&a=\udce9", "<unparsable URL>"),  # a lone surrogate
        ("redis://h/0?" + "a=x://h?" * 400 + "password=Tr0ub4dor", None),  # deep nesting
        ("cookie://?keys=Tr0ub4dor", "cookie://?keys=***"),
    ],
)
def test_redact_url_shows_nothing_of_what_is_not_a_url_and_never_raises(
    text: str, shown: str | None
) -> None:
    redacted = redact_url(text)
    assert "Tr0ub4dor" not in redacted
    if shown is not None:
        assert redacted == shown
    with pytest.raises(ConfigurationError) as caught:
        backend_from_url(text)
    assert "Tr0ub4dor" not in str(caught.value)


def test_register_refuses_what_is_not_a_url_scheme() -> None:
    with pytest.raises(ConfigurationError, match="URL scheme"):
        register("my_kv", "x:Y")
    with pytest.raises(ConfigurationError, match="URL scheme"):
        register("1kv", "x:Y")


def test_a_space_is_kept_as_written() -> None:
    # urlsplit keeps it (unlike a tab): an option's value may hold one, as before.
    assert split_backend_url("s://h/db?options=-c search_path=x").query == (
        "options=-c search_path=x"
    )
    assert redact_url("s://:Tr0ub dor@h/0") == "s://:***@h/0"
