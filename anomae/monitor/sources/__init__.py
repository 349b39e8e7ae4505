"""Event sources of the monitor: what each gives the daemon (``base``) and the sources
themselves: stdin and followed files (``files``), MQTT (``mqtt``), Kafka (``kafka``) and
Prometheus / VictoriaMetrics queries (``prometheus``)."""
