"""The original Trama's HTTP API (github.com/thiagoribeiro/trama, its ``openapi.json`` and Ktor routes in
``app/Application.kt``), served at ``/workflows/...`` beside ours so its clients move over unchanged.

Thin adapters only: each view checks its input, calls the service our own API calls (starting, retry,
wake, the callback receiver, definition storage) and reshapes the answer as the original does.
docs/upstream.md has the endpoint-by-endpoint table.
"""
