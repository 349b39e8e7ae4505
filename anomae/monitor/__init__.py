"""The streaming monitor (``anomae monitor``): sources → per-series windows → micro-batched
scoring → post-rules → Prometheus metrics (and an optional JSON-lines sink)."""
