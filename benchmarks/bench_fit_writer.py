"""FIT writer speed: ``dump_fit`` against encoding the same records with the SDK's Encoder.

Run: ``.venv/bin/python -m benchmarks.bench_fit_writer``. Target: <= 20 ms for a 60-minute 1 Hz
workout (3,600 records) on one core. Prints figures; asserts nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from garmin_fit_sdk import FIT_EPOCH_S, CrcCalculator, Encoder

from service.convert.fit import dump_fit
from service.convert.fit_records import checksum
from service.convert.model import Activity
from tests.convert.activities import build


def _ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times)


def _sdk_records(activity: Activity) -> bytes:
    """The records alone, written the plain SDK way (already-converted values, one dict each)."""
    encoder = Encoder()
    start = round(activity.start.timestamp()) - FIT_EPOCH_S
    k = 2**31 / 180
    for s in activity.samples:
        encoder.write_mesg(
            {
                "mesg_num": 20,
                "timestamp": start + round(s.offset_s),
                "position_lat": None if s.latitude is None else round(s.latitude * k),
                "position_long": None if s.longitude is None else round(s.longitude * k),
                "heart_rate": s.heart_rate,
                "cadence": None if s.cadence is None else round(s.cadence),
                "power": None if s.power is None else round(s.power),
                "distance": s.distance,
                "speed": s.speed,
                "enhanced_speed": s.speed,
                "altitude": s.altitude,
                "enhanced_altitude": s.altitude,
            }
        )
    return encoder.close()


def main() -> None:
    cases = {
        "indoor ride (hr, power, cadence, speed, distance)": build(seconds=3600, laps=10),
        "outdoor run (+ gps, altitude)": build(seconds=3600, laps=10, gps=True, altitude=True),
        "strength (hr only)": build(seconds=3600, laps=10, power=False, cadence=False, speed=False),
    }
    for name, activity in cases.items():
        data = dump_fit(activity)
        median, best = _ms(partial(dump_fit, activity), 30)
        print(f"dump_fit, {name}: {len(data):,} bytes, median {median:.1f} ms, best {best:.1f} ms")

    activity = cases["outdoor run (+ gps, altitude)"]
    data = dump_fit(activity)
    median, _ = _ms(lambda: _sdk_records(activity), 3)
    print(f"SDK Encoder, records only (same outdoor run): median {median:.1f} ms")
    median, _ = _ms(lambda: CrcCalculator.calculate_crc(data, 0, len(data)), 5)
    print(f"SDK CrcCalculator over the file: {median:.1f} ms")
    median, _ = _ms(lambda: checksum(data), 50)
    print(f"fastcrc over the file: {median:.3f} ms")


if __name__ == "__main__":
    main()
