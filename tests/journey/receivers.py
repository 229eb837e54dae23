"""The documented receivers, served on 127.0.0.1 as a reader would run them.

* Python (both snippets): the page's code runs unchanged in a standard-library HTTP server; the
  wrapper only reads the request, calls the snippet, answers with what it returns and keeps the
  requests it accepted.
* Node (both snippets): the page's code is written to a file and run by ``node``; the wrapper
  appended after it (or requiring it) listens and writes one JSON line per accepted event.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.journey import docs

NODE_DIR = Path(__file__).resolve().parent / "node"


@dataclass
class Accepted:
    """A request a receiver accepted (answered 2xx)."""

    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    name: str
    url: str
    accepted: list[Accepted] = field(default_factory=list)
    #: Node receivers: the events they accepted, summarised by the wrapper (one per line).
    record: Path | None = None

    def events(self) -> list[dict[str, Any]]:
        """What a Node receiver accepted: ``{"id", "type", "files": [{format, size, sha256,
        url}]}`` with ``sha256`` computed by the receiver from ``content_base64``."""
        assert self.record is not None
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]


def _python_handler(name: str, secret: str) -> Callable[[bytes, dict[str, str]], int]:
    """The snippet's way of answering a request: status code from (body, headers)."""
    if name == "python-standardwebhooks":
        namespace: dict[str, Any] = {"secret": secret}
        exec(docs.snippet(docs.PYTHON_STANDARDWEBHOOKS, "python"), namespace)
        handle: Callable[[bytes, dict[str, str]], int] = namespace["handle"]
        return handle
    namespace = {}
    exec(docs.snippet(docs.PYTHON_STDLIB, "python"), namespace)
    verify = namespace["verify"]
    return lambda body, headers: 204 if verify(secret, headers, body) else 401


@contextmanager
def python_receiver(name: str, secret: str) -> Iterator[Receiver]:
    handle = _python_handler(name, secret)
    receiver = Receiver(name, "")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = dict(self.headers.items())
            status = handle(body, headers)
            if 200 <= status < 300:
                receiver.accepted.append(Accepted(headers, body))
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what matters

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/pelosync"
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# Appended after the Express snippet: listen, and record every event the library verified.
_EXPRESS_TAIL = """
// ---- appended by tests/journey: record what was verified, then listen ----
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const verified = Webhook.prototype.verify;
Webhook.prototype.verify = function (payload, headers, options) {
  const event = verified.call(this, payload, headers, options);
  fs.appendFileSync(process.env.RECORD, JSON.stringify(summary(headers, event)) + "\\n");
  return event;
};
"""

# The standard-library snippet exports verify(); this server calls it for every request.
_STDLIB_SERVER = """
// ---- written by tests/journey: a plain node:http server around the page's verify() ----
const http = require("node:http");
const fs = require("node:fs");
const { createHash } = require("node:crypto");
const { verify } = require("./verify.js");

const app = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    if (!verify(process.env.PELOSYNC_WEBHOOK_SECRET, req.headers, body)) {
      res.statusCode = 401;
      return res.end();
    }
    const event = JSON.parse(body.toString("utf8"));
    fs.appendFileSync(process.env.RECORD, JSON.stringify(summary(req.headers, event)) + "\\n");
    res.statusCode = 204;
    res.end();
  });
});
"""

_COMMON_TAIL = """
function summary(headers, event) {
  const files = ((event.data || {}).files || []).map((f) => ({
    format: f.format,
    size: f.size,
    sha256: f.content_base64
      ? createHash("sha256").update(Buffer.from(f.content_base64, "base64")).digest("hex")
      : null,
    url: f.url || null,
  }));
  return { id: headers["webhook-id"], type: event.type, files };
}

const server = app.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
"""


def node_missing() -> str | None:
    """Why the Node receivers cannot run here (None: they can)."""
    if shutil.which("node") is None:
        return "node is not installed"
    return None


@contextmanager
def node_receiver(name: str, secret: str, folder: Path) -> Iterator[Receiver]:
    """Run a Node receiver of the page; its packages come from tests/journey/node (npm ci)."""
    modules = NODE_DIR / "node_modules"
    assert modules.is_dir(), f"the Node receivers need their packages: npm ci --prefix {NODE_DIR}"
    folder.mkdir(parents=True)
    if name.startswith("node-express"):
        express = docs.snippet(docs.NODE_EXPRESS, "javascript")
        if name == "node-express-100kb":
            # The same receiver as a reader who missed the body limit writes it: Express's
            # default, 100 KB, so every bigger body is refused with 413.
            express, found = re.subn(r',\s*limit:\s*"[^"]*"', "", express)
            assert found == 1, "the Express example no longer sets express.raw's limit"
        script = express + _EXPRESS_TAIL + _COMMON_TAIL
    else:
        (folder / "verify.js").write_text(docs.snippet(docs.NODE_STDLIB, "javascript"))
        script = _STDLIB_SERVER + _COMMON_TAIL
    (folder / "server.js").write_text(script)
    record = folder / "accepted.jsonl"
    env = dict(
        os.environ,
        NODE_PATH=str(modules),
        PELOSYNC_WEBHOOK_SECRET=secret,
        RECORD=str(record),
    )
    proc = subprocess.Popen(
        ["node", str(folder / "server.js")],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line, f"{name} did not start: {proc.stderr.read()}"
        port = json.loads(line)["port"]
        yield Receiver(name, f"http://127.0.0.1:{port}/hooks/pelosync", record=record)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
