"""Structured log lines (anomae/monitor/logs.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from anomae.monitor.logs import log, setup_logging


@pytest.fixture
def restore_logger():  # type: ignore[no-untyped-def]
    logger = logging.getLogger("anomae")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def test_json_lines_carry_fields_and_errors(restore_logger) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    setup_logging("json", "info", out)
    logger = logging.getLogger("anomae.monitor.test")
    log(logger, logging.DEBUG, "hidden")
    log(logger, logging.WARNING, "source down", source="mqtt://b:1883", retries=3)
    try:
        raise OSError("refused")
    except OSError:
        logger.exception("reconnect failed")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [x["msg"] for x in lines] == ["source down", "reconnect failed"]
    first = lines[0]
    assert (first["level"], first["logger"], first["retries"]) == (
        "warning", "anomae.monitor.test", 3
    )
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24
    assert "OSError: refused" in lines[1]["error"]


def test_logfmt_quotes_what_needs_it(restore_logger) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    setup_logging("logfmt", "debug", out)
    log(logging.getLogger("anomae"), logging.DEBUG, "a b", path="", q='x="1"', n=2)
    line = out.getvalue().strip()
    assert line.split(" ", 1)[1] == (
        'level=debug logger=anomae msg="a b" path="" q="x=\\"1\\"" n=2'
    )
