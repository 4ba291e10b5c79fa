"""How long `tether` commands that need no privacy scan take to start.

Baseline: the same command in a process that first imports ``tether.privacy.guard`` (presidio,
spaCy, and transformers where it is installed), which every command did before `privacy scan`
imported it lazily. For `tether ask` (on the bundled personal files, smollm2-135m, no cloud) the
baseline also loads the detector, as `ask` did to cut its excerpts before it learned that an
answer staying on the device needs no cut around personal values. Each command runs as a fresh
process, alternating with its baseline, and the script prints the median wall time of each and
their ratio.

    .venv/bin/python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["models", "list"], ["stats", "--json"]]
PERSONAL = Path(__file__).resolve().parent.parent / "src/tether/data/personal"
RUN = "import sys; from tether.cli import main; sys.argv = ['tether', *sys.argv[1:]]; main()"


def wall(code: str, args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=True, timeout=300)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} vCPU {platform.machine()}, "
          f"python {platform.python_version()}, {args.runs} runs each")
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "index.sqlite")
    subprocess.run([sys.executable, "-m", "tether", "index", "add", str(PERSONAL), "--db", db], check=True,
                   capture_output=True, timeout=600)
    ask = ["ask", "When is my dentist appointment?", "--db", db, "--model", "smollm2-135m"]
    runs = [(cmd, "import tether.privacy.guard; ") for cmd in COMMANDS]
    runs.append((ask, "from tether.privacy import get_detector; get_detector(); "))
    for cmd, first in runs:
        now, before = [], []
        wall(RUN, cmd)  # warm the page cache
        for _ in range(args.runs):
            now.append(wall(RUN, cmd))
            before.append(wall(first + RUN, cmd))
        a, b = statistics.median(now), statistics.median(before)
        print(f"tether {' '.join(cmd[:2] if cmd[0] == 'ask' else cmd)}: {a:.2f} s (with presidio imported first, as before: {b:.2f} s), "
              f"{b / a:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
