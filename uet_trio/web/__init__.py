"""
The live web view of a store (``uet serve``): an ASGI app, its data, its assets.

`server.serve_web` serves `app.build_app` with Hypercorn's Trio worker; the
app reads the store read-only through `data` (runs, a run's snapshot and its
changes since an event, a task's attempts, tails and log slices), draws the
DAG from `dag`, and ships its page, script and style from ``static/``: nothing
is fetched from the network. Needs the ``web`` extra (Starlette, Hypercorn).
"""
