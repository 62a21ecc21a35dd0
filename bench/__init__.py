"""Benchmarks of sanic-cookies against bare Sanic and hand-written session floors.

Run ``python bench/run.py --help`` (or ``nox -s bench``). The modules:

* `bench.apps`: the Sanic apps under test (bare, the floors, every backend).
* `bench.server`: runs one of them, pinned to a core, as its own process.
* `bench.loadgen`: wrk (when installed) or a Python keep-alive load generator.
* `bench.proxy`: a TCP proxy that counts store round trips and commands.
* `bench.stores`: a private Redis server and a private PostgreSQL schema.
* `bench.memsize`: bytes per session in the memory backend; cookie sizes.
* `bench.cli`: the orchestration and the table.
"""
