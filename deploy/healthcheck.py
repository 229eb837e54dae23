#!/usr/bin/env python3
"""Probe pelosync's health endpoint: exit 0 on HTTP 200, 1 otherwise (Docker HEALTHCHECK).

    pelosync-healthcheck [PATH]     PATH defaults to /healthz (liveness); /readyz for readiness

Asks ``http://127.0.0.1:$PELOSYNC_PORT`` (8080 if unset). Standard library only: the slim image
has no curl, and this keeps the probe independent of pelosync's own imports.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    port = os.environ.get("PELOSYNC_PORT") or "8080"
    url = f"http://127.0.0.1:{port}{path}"
    # No proxies: an HTTP(S)_PROXY meant for outgoing traffic must not swallow a loopback probe.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # 4xx/5xx: the server answered "no"
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # refused, timed out, bad port
        sys.stderr.write(f"pelosync-healthcheck: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"pelosync-healthcheck: {url}: HTTP {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
