"""``anomae monitor`` setup errors: each names the option at fault and how to fix it, as an
``error:`` line and exit status 1, never a traceback, and before any output is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli

from anomae.monitor.app import MonitorError, open_sink


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-series", "0"], "--max-series must be >= 1, got 0"),
        (["--queue-size", "0"], "--queue-size must be >= 1"),
        (["--max-future", "-1"], "--max-future must be >= 0"),
        (["--tls-cert", "absent.pem", "--tls-key", "absent.key"], "--tls-cert absent.pem: no such"),
        (["--listen", "nonsense"], "--listen wants host:port"),
    ],
)
def test_bad_options_exit_1_naming_the_option(
    args: list[str], message: str, tmp_path: Path
) -> None:
    # the model need not exist: options are checked before it is loaded
    r = run_cli(["monitor", str(tmp_path / "m.onnx"), "--source", "-", *args], cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert f"error: {message}" in r.stderr and "Traceback" not in r.stderr


def test_tls_key_path_is_named_not_listen(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("not a certificate\n")
    r = run_cli(["monitor", "m.onnx", "--source", "-", "--tls-cert", str(cert), "--tls-key", "k"])
    assert r.returncode == 1 and "--tls-key k: no such file" in r.stderr
    r = run_cli(
        ["monitor", "m.onnx", "--source", "-", "--tls-cert", str(cert), "--tls-key", str(cert)]
    )
    assert r.returncode == 1 and "not a PEM certificate and its private key" in r.stderr
    assert "--listen" not in r.stderr


def test_sink_in_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match=r"--sink .*missing does not exist; create it first"):
        open_sink(str(tmp_path / "missing" / "s.jsonl"))
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "s.jsonl").mkdir()  # a folder where the file should be
    with pytest.raises(MonitorError, match="cannot open it for appending"):
        open_sink(str(tmp_path / "ro" / "s.jsonl"))
