"""Sizes of full-length workouts' files, and of the webhook bodies that carry them inline.

The figures behind ``PELOSYNC_WEBHOOK_INLINE_MAX_BYTES``'s default (16 MiB, see
docs/destinations.md): raw, gzip (level 6, what compression would save) and base64 (the
``content_base64`` field) sizes of every format of 1 Hz workouts from 30 minutes to a 5-hour
outdoor GPS ride, and the whole signed JSON body of the biggest one.

    python -m benchmarks.file_sizes
"""

from __future__ import annotations

import base64
import gzip
from unittest import mock

from service.convert.formats import render_all
from service.convert.peloton import parse_bundle
from service.peloton.sandbox import catalog, generate_bundle

# (label, sandbox kind, seconds). The outdoor kinds are runs: at 1 Hz a GPS ride writes the
# same samples (position, altitude, speed, heart rate), so it makes files of the same size.
WORKOUTS = (
    ("30-minute strength class", "strength", 1800),
    ("30-minute rower class", "rowing", 1800),
    ("60-minute ride", "cycling_class", 3600),
    ("60-minute outdoor GPS run", "outdoor_just_run", 3600),
    ("3-hour ride", "cycling_just_ride", 3 * 3600),
    ("5-hour outdoor GPS ride", "outdoor_just_run", 5 * 3600),
)
KIB = 1024


def kib(size: int) -> str:
    return f"{size / KIB:8.0f} KiB" if size < 1024 * KIB else f"{size / KIB / KIB:6.1f} MiB  "


def main() -> None:
    biggest = 0
    print(f"{'workout':27} {'format':6} {'raw':>12} {'gzip':>12} {'base64':>12}")
    # The sandbox caps generated workouts at 4 hours; a 5-hour ride is past that.
    with mock.patch.object(catalog, "MAX_DURATION_S", 6 * 3600):
        for label, kind, seconds in WORKOUTS:
            activity = parse_bundle(generate_bundle(1, kind, duration=seconds, heart_rate=True))
            for fmt, data in render_all(activity).items():
                encoded = len(base64.b64encode(data))
                biggest = max(biggest, len(data))
                print(
                    f"{label:27} {fmt.value:6} {kib(len(data)):>12} "
                    f"{kib(len(gzip.compress(data, 6))):>12} {kib(encoded):>12}"
                )
    body = 4 * ((biggest + 2) // 3) + 1500  # base64 and the event's other fields (~1.5 KB)
    print(f"\nbiggest file {kib(biggest).strip()}: webhook body about {kib(body).strip()}")


if __name__ == "__main__":
    main()
