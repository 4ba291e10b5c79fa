"""How the privacy guard's time grows with the length of a text dense with personal data.

Issue 3 asks that 1 MB of text be handled; the gateway and `tether privacy scan` take up to
1 MB. This times `guard.prepare(text, "third_party")` (detection with the off-device candidates,
then pseudonymization) on the start of one text made of presidio-evaluator's PII sentences,
at growing lengths, and prints seconds per 10,000 characters at each length and the ratio of the
longest to the shortest: 1.0 is linear growth, 4.0 at 16x the length is quadratic.

    .venv/bin/python benchmarks/privacy_scaling.py [--sizes 10000,40000,160000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from privacy_eval import sentences  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,40000,160000", help="text lengths in characters")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per length (the median is shown)")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(",") if x.strip())

    from rich.progress import track

    from tether.privacy import PrivacyGuard

    guard = PrivacyGuard()
    guard.detect("warm up Maria")
    text = ""
    seed = 5
    while len(text) < sizes[-1]:
        text += "\n".join(s.full_text for s in sentences(2000, seed, pii_request=True)) + "\n"
        seed += 1
    print(f"{os.cpu_count()} vCPU {platform.machine()}, python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    per_10k = {}
    for n in sizes:
        piece = text[:n]
        times, found = [], 0
        for _ in track(range(args.runs), description=f"{n:,} chars"):
            t0 = time.perf_counter()
            out = guard.prepare(piece, "third_party", session=guard.session())
            times.append(time.perf_counter() - t0)
            found = sum(e.count for e in out.entities)
        med = statistics.median(times)
        per_10k[n] = med / n * 10_000
        print(f"{n:>9,} chars  {found:>6,} entities  prepare() median {med:7.2f} s  "
              f"({per_10k[n]:.2f} s per 10,000 chars)")
    lo, hi = sizes[0], sizes[-1]
    print(f"time per character at {hi:,} vs {lo:,} chars: {per_10k[hi] / per_10k[lo]:.2f}x "
          f"(1.0 linear; {hi / lo:.0f}x would be quadratic)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
