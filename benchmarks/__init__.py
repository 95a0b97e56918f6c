"""livecall's benchmark suite: livecall against the raw websocket-client loop.

Run ``python -m benchmarks`` (``make bench``); see ``benchmarks/README.md``.
"""
