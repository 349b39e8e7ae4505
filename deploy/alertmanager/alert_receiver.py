"""A webhook receiver that prints every alert Alertmanager posts as one JSON line on stdout.

docker-compose.yml runs it as ``alert-receiver`` so that ``docker compose logs alert-receiver``
shows the alerts of the demo stack; replace it with a real integration in production.

    python alert_receiver.py [--listen 0.0.0.0:5001]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            note = json.loads(body)
            alerts = note["alerts"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400, "expected an Alertmanager webhook payload")
            return
        for a in alerts:
            line = {"path": self.path, "receiver": note.get("receiver"), "status": a.get("status")}
            line.update(labels=a.get("labels", {}), annotations=a.get("annotations", {}))
            print(json.dumps(line, sort_keys=True), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # stdout carries the alerts only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="0.0.0.0:5001", help="host:port to listen on")
    host, _, port = parser.parse_args().listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(f"alert receiver listening on {host}:{port}", file=sys.stderr, flush=True)
    # as a container's PID 1 the default SIGTERM action is ignored: exit explicitly
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
