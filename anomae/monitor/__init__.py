"""The streaming monitor (``anomae monitor``): sources → per-series windows → micro-batched
scoring → post-rules → Prometheus metrics (and an optional JSON-lines sink).

One noun per module: :mod:`~anomae.monitor.sources.base` (the interface sources implement),
:mod:`~anomae.monitor.sources.files` (stdin and followed files), :mod:`~anomae.monitor.intake` (the
bounded queue), :mod:`~anomae.monitor.readings` (JSON → columns, invalid input counted by
reason), :mod:`~anomae.monitor.series` (per-series admission: order, gaps, caps),
:mod:`~anomae.monitor.ring` (many ring buffers, pushed a batch at a time),
:mod:`~anomae.monitor.alarms` (post-rules and event records), :mod:`~anomae.monitor.metrics`,
:mod:`~anomae.monitor.sink`, :mod:`~anomae.monitor.http`, :mod:`~anomae.monitor.models`
(reloads), :mod:`~anomae.monitor.logs`, :mod:`~anomae.monitor.daemon` (the threads and the
loop) and :mod:`~anomae.monitor.app` (``run_monitor``: everything wired for the CLI).
"""
