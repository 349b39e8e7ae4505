"""Structured log lines on stderr: one JSON object (or ``key=value`` pairs) per line.

>>> rec = logging.LogRecord("anomae.monitor", logging.INFO, "", 0, "listening", None, None)
>>> rec.fields = {"url": "http://127.0.0.1:9108"}
>>> line = JsonFormatter().format(rec)
>>> json.loads(line)["msg"], json.loads(line)["url"]
('listening', 'http://127.0.0.1:9108')
>>> LogfmtFormatter().format(rec).split(" ", 1)[1]
'level=info logger=anomae.monitor msg=listening url=http://127.0.0.1:9108'
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

LOGGER = "anomae"


def _base(record: logging.LogRecord) -> dict[str, Any]:
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    out: dict[str, Any] = {
        "ts": f"{t}.{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update(getattr(record, "fields", None) or {})
    if record.exc_info:
        out["error"] = logging.Formatter().formatException(record.exc_info)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_base(record), default=str)


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for k, v in _base(record).items():
            text = str(v)
            if not text or any(c in text for c in ' "=\n'):
                text = json.dumps(text)
            parts.append(f"{k}={text}")
        return " ".join(parts)


def setup_logging(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Send the ``anomae`` loggers (the sources' too) to ``stream`` in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """``logger.log`` with structured fields."""
    logger.log(level, msg, extra={"fields": fields})
