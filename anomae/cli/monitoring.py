"""``anomae monitor``: the streaming daemon's command line."""

from __future__ import annotations

import sys
from typing import Any

import click

from anomae.cli.options import (
    EXIT_BAD_INPUT,
    _card_alarm,
    _card_likelihood,
    _card_rule,
    likelihood_options,
    post_rule_options,
)


def _shard(value: str) -> tuple[int, int]:
    i, sep, n = value.partition("/")
    try:
        shard = (int(i), int(n))
    except ValueError:
        shard = (-1, 0)
    if not sep or not 0 <= shard[0] < shard[1]:
        raise click.BadParameter(f"want I/N with 0 <= I < N (e.g. 0/3), got {value!r}")
    return shard


def _duration(value: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` or plain seconds -> seconds."""
    text = value.strip().lower()
    scale = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}.get(text[-1:], 0.0)
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1.0)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise click.BadParameter(f"want a duration such as 7d, 12h, 30m or 45s, got {value!r}")
    return seconds


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--source",
    required=True,
    help="'-' (stdin), file:PATH or PATH (JSON lines), mqtt[s]://host:port/topic/#, "
    "kafka[s]://host:port[,host:port]/topic (consumer group: --source-opt group=NAME, default "
    "anomae-monitor; the message key names the series), prometheus://host:port.",
)
@click.option(
    "--source-opt",
    "source_opts",
    multiple=True,
    metavar="KEY=VALUE",
    help="Option of an mqtt/kafka/prometheus source (repeatable): e.g. group=NAME for Kafka, "
    "kafka.NAME=VALUE for any librdkafka setting, query.FEATURE=PROMQL for Prometheus.",
)
@click.option(
    "--follow/--no-follow",
    default=False,
    show_default=True,
    help="Keep reading a file as it grows (tail -F: survives truncation and rotation).",
)
@click.option("--from-end", is_flag=True, help="With --follow: start at the file's end.")
@click.option(
    "--sink",
    default=None,
    type=click.Path(dir_okay=False),
    help="Append one JSON line per scored window and per event here.",
)
@click.option(
    "--listen",
    default="127.0.0.1:9108",
    show_default=True,
    help="host:port of /metrics, /healthz, /readyz (port 0: any free port, logged).",
)
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False), help="TLS cert (PEM).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False), help="TLS key (PEM).")
@click.option("--batch-size", default=1024, show_default=True, help="Windows per scoring call.")
@click.option(
    "--flush-ms",
    default=20.0,
    show_default=True,
    help="Score a partial batch once its oldest window waited this long.",
)
@click.option(
    "--queue-size", default=65536, show_default=True, help="Readings the intake queue holds."
)
@click.option(
    "--queue-bytes",
    default=128 * 2**20,
    show_default=True,
    help="Payload bytes the intake queue holds (a live source's readings beyond either bound "
    "are dropped and counted as queue_full; a file waits).",
)
@click.option("--threads", default=1, show_default=True, help="onnxruntime intra-op threads.")
@click.option("--device", default="cpu", show_default=True, help="cpu, or cuda / cuda:N.")
@click.option(
    "--max-series",
    default=10000,
    show_default=True,
    help="Series tracked at most (the rest is dropped and counted).",
)
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    callback=lambda ctx, param, value: _shard(value),
    help="I/N: this replica takes the series of shard I of N (a stable hash of the series "
    "name), so N replicas reading the same stream split a fleet without splitting a "
    "series' window; the others' readings count as anomae_events_other_shard_total.",
)
@click.option(
    "--timestamp-unit",
    type=click.Choice(["s", "ms", "us", "ns"]),
    default=None,
    help="Unit of numeric \"ts\" values (default: seconds; ISO strings need none).",
)
@click.option(
    "--no-health",
    is_flag=True,
    help="Do not measure model health (input and score drift, events per series).",
)
@click.option(
    "--series-ttl",
    default=0.0,
    show_default=True,
    help="Forget series silent for this many seconds (0: never).",
)
@click.option(
    "--max-gap-seconds",
    type=float,
    default=None,
    help="A longer gap between readings restarts the series' window. Default: the model "
    "card's gap limit (10x the training data's median interval), the one `anomae score` "
    "applies, so both window alike; a value given here overrides it (0: auto, 10x each "
    "series' recent typical interval, also what a card without a gap limit gets).",
)
@click.option(
    "--max-line-bytes", default=65536, show_default=True, help="Longer readings are invalid."
)
@click.option(
    "--max-future",
    default=300.0,
    show_default=True,
    help="Refuse readings dated more than this many seconds after this host's clock "
    "(counted as invalid, reason future_timestamp; 0: accept any date up to year 5000).",
)
@click.option(
    "--shadow",
    default=None,
    type=click.Path(dir_okay=False),
    help="A candidate model (`anomae retrain`) scored beside MODEL on every batch and never "
    "alerted on: its scores and events go to anomae_shadow_* and "
    "anomae_model_*{model=\"shadow\"}. It must have MODEL's features and window. SIGUSR1 "
    "promotes it: MODEL is kept as MODEL.previous, the shadow written over MODEL "
    "atomically and used in its place, series state kept. SIGUSR2 rolls back to "
    "MODEL.previous the same way.",
)
@click.option(
    "--shadow-promote-after",
    default="0",
    show_default=True,
    callback=lambda ctx, param, value: _duration(value),
    help="Also promote the shadow once it has scored this much of the readings' time (7d, "
    "12h, ...; 0: only on SIGUSR1) if every series seen that long had shadow events per "
    "day within its card's expected false events (upper 95 % bound; else its anomalous-"
    "window rate within its expected false-alarm rate) and it missed no event of MODEL.",
)
@click.option(
    "--rollback-within",
    default="1d",
    show_default=True,
    callback=lambda ctx, param, value: _duration(value),
    help="After a promotion, roll back to MODEL.previous if within this much of the "
    "readings' time a series closes more events than the promoted card's expected false "
    "events (upper 95 % bound) allow for the whole period (0: only on SIGUSR2). The "
    "rolled-back candidate is not scored again until the --shadow file changes.",
)
@post_rule_options
@likelihood_options
@click.option(
    "--reload-check-seconds",
    default=5.0,
    show_default=True,
    help="Reload the model when its file changed, checked this often (0: only on SIGHUP).",
)
@click.option(
    "--drain-seconds",
    default=5.0,
    show_default=True,
    help="On SIGTERM, score what is queued for at most this long.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "logfmt"]),
    default="json",
    show_default=True,
    help="Log lines on stderr as JSON objects or logfmt key=value pairs.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Least severe log level written.",
)
def monitor(
    model: str,
    source: str,
    source_opts: tuple[str, ...],
    follow: bool,
    from_end: bool,
    sink: str | None,
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    batch_size: int,
    flush_ms: float,
    queue_size: int,
    queue_bytes: int,
    threads: int,
    device: str,
    max_series: int,
    shard: tuple[int, int],
    timestamp_unit: str | None,
    no_health: bool,
    shadow: str | None,
    shadow_promote_after: float,
    rollback_within: float,
    series_ttl: float,
    max_gap_seconds: float | None,
    max_line_bytes: int,
    max_future: float,
    min_windows: int | None,
    max_gap: int | None,
    off: float | None,
    cooldown: int | None,
    top_k: int,
    threshold: float | None,
    reload_check_seconds: float,
    drain_seconds: float,
    log_format: str,
    log_level: str,
    **likelihood: Any,
) -> None:
    """Score a live stream with MODEL and serve Prometheus metrics.

    One JSON reading per line or message: {"series": "m1", "ts": RFC 3339 or epoch s,
    "values": {"temp": 21.5, ...}, "seq": 17}. SIGTERM drains and exits 0; SIGHUP reloads
    the model; SIGUSR1 promotes the --shadow model, SIGUSR2 rolls the promotion back. With
    --source - and --sink it replays a file: at the end of the input it drains and exits 0."""
    from anomae.monitor.app import MonitorConfig, run_monitor
    from anomae.monitor.daemon import MonitorError, MonitorOptions

    try:
        opts = MonitorOptions(
            rule=_card_rule(model, min_windows, max_gap, off, cooldown),
            top_k=top_k,
            threshold=threshold,
            likelihood=_card_likelihood(_card_alarm(model), **likelihood),
            batch_size=batch_size,
            flush_ms=flush_ms,
            queue_size=queue_size,
            queue_bytes=queue_bytes,
            max_series=max_series,
            shard=shard,
            timestamp_unit=timestamp_unit,
            health=not no_health,
            shadow=shadow,
            shadow_promote_after_seconds=shadow_promote_after,
            rollback_within_seconds=rollback_within,
            max_gap_seconds=max_gap_seconds,
            series_ttl_seconds=series_ttl,
            max_line_bytes=max_line_bytes,
            max_future_seconds=max_future,
            reload_check_seconds=reload_check_seconds,
            drain_seconds=drain_seconds,
        )
        cfg = MonitorConfig(
            model=model,
            source=source,
            source_opts=source_opts,
            follow=follow,
            from_end=from_end,
            sink=sink,
            listen=listen,
            tls_cert=tls_cert,
            tls_key=tls_key,
            device=device,
            threads=threads,
            log_format=log_format,
            log_level=log_level,
            options=opts,
        )
        code = run_monitor(cfg)
    except MonitorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(code)
