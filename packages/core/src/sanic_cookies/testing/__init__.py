"""The backend conformance suite, a pytest plugin.

Prove a backend keeps the contract of `sanic_cookies.Backend`::

    # conftest.py at the top of your tests
    pytest_plugins = ["sanic_cookies.testing"]

    # test_my_backend.py
    from sanic_cookies.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        def backend_url(self):
            return "mine://localhost/test-db"  # the suite builds the backend from it

Unless the backend declares ``per_process = True``, the suite also opens the
same URL in a second OS process and proves the lock across processes (the
cross-process rule). Configure pytest-asyncio with
``asyncio_default_fixture_loop_scope = "function"``.

A client-side backend (the session inside the cookie) runs
`ClientSideBackendConformance` instead, with ``make_backend``,
``make_foreign_backend`` and ``make_rotation``.

Every test of the suite then runs against your backend. The classes here are
not named ``Test*`` so pytest collects them only through your subclass.
The suite needs pytest-asyncio (its tests are marked ``asyncio``).

For fault-injection tests, `FaultyBackend` wraps any backend and makes any of
its operations fail on demand (``faulty.fail("save", times=1)``).

To let time pass without sleeping, the ``manual_clock`` fixture hands the test
a `sanic_cookies.clock.ManualClock` the whole library reads for the test's
duration: ``manual_clock.advance(3600)`` is an hour later. Time a server keeps
(a Redis TTL, a lock's lease) cannot be moved: `wait_until` polls for the
condition the test needs, with a generous bound, instead of a fixed sleep.

For applications' own tests, `login_as` logs a test client in as a given
user without the login form (see its docstring for Secure cookies).
"""

from ._client_side import ClientSideBackendConformance, KeyRotation
from ._clock import manual_clock, wait_until
from ._faults import OPERATIONS, Fault, FaultyBackend, InjectedFault
from ._login import cookie_header, login_as
from ._suite import BackendConformance, decode_stored, encode_value

__all__ = [
    "OPERATIONS",
    "BackendConformance",
    "ClientSideBackendConformance",
    "Fault",
    "FaultyBackend",
    "InjectedFault",
    "KeyRotation",
    "cookie_header",
    "decode_stored",
    "encode_value",
    "login_as",
    "manual_clock",
    "wait_until",
]
