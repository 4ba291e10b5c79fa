"""How long `tether` commands take to start, against what each cost before its start-up fix.

Baseline: the same command in a process that first imports ``tether.privacy.guard`` (presidio,
spaCy, and transformers where it is installed), which every command did before `privacy scan`
imported it lazily. For `tether ask` (on the bundled personal files, smollm2-135m, no cloud) the
baseline also loads the detector, as `ask` did to cut its excerpts before it learned that an
answer staying on the device needs no cut around personal values. Each command runs as a fresh
process, alternating with its baseline, and the script prints the median wall time of each and
their ratio.

`tether privacy scan` (a short text on stdin) does import presidio; its baseline imports
``transformers`` first, so presidio loads the optional Hugging Face pipeline it probes for, as it
did before ``tether.privacy._presidio_first`` hid transformers during presidio's import (only
where transformers is installed: the test extras bring it).

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


def wall(code: str, args: list[str], stdin: str | None = None) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], capture_output=True, check=True, timeout=300,
                   input=stdin, text=True)
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
    import importlib.util

    if importlib.util.find_spec("transformers"):
        runs.append((["privacy", "scan", "-"], "import transformers; "))
    scanned = "Hi Anna Kowalska, call me on +48 601 234 567 about the flat at 12 rue de Rivoli."
    for cmd, first in runs:
        now, before = [], []
        stdin = scanned if cmd[0] == "privacy" else None
        wall(RUN, cmd, stdin)  # warm the page cache
        for _ in range(args.runs):
            now.append(wall(RUN, cmd, stdin))
            before.append(wall(first + RUN, cmd, stdin))
        a, b = statistics.median(now), statistics.median(before)
        was = "transformers" if cmd[0] == "privacy" else "presidio"
        print(f"tether {' '.join(cmd[:2] if cmd[0] == 'ask' else cmd)}: {a:.2f} s (with {was} imported first, as before: {b:.2f} s), "
              f"{b / a:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
