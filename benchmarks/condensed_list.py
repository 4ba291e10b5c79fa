"""What the 640-token cap on a list or table of a long text saves.

Baseline: the same ``writing.summarize(text, "list")`` with the cap lifted (the answer may use
all the window leaves, as before the cap). The text is the long-text test's article: 99
sentences, about 2,250 tokens. Prints, per model, the time, items and answer tokens of each,
and the ratio of the times.

    .venv/bin/python benchmarks/condensed_list.py [--models qwen2.5-0.5b,smollm2-135m]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

ARTICLE = " ".join(f"On day {i} the team reviewed report {i} and agreed to ship version {i} next week."
                   for i in range(1, 100))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="qwen2.5-0.5b,smollm2-135m")
    args = ap.parse_args()

    from tether.features import writing
    from tether.models.engine import load

    cap = writing.MAX_CONDENSED_BUDGET
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} vCPU {platform.machine()}, "
          f"python {platform.python_version()}; text of {load(args.models.split(',')[0]).count_tokens(ARTICLE)} tokens")
    for model in [m for m in args.models.split(",") if m]:
        engine = load(model)
        seconds = {}
        for label, limit in (("uncapped", 10**6), (f"cap {cap}", cap)):
            writing.MAX_CONDENSED_BUDGET = limit
            t = time.perf_counter()
            r = writing.summarize(ARTICLE, "list", model=model)
            seconds[label] = time.perf_counter() - t
            print(f"{model}, {label}: {seconds[label]:.1f} s, {len(r.items)} items, "
                  f"{engine.count_tokens(r.text)} tokens, fallback {r.fallback}")
        writing.MAX_CONDENSED_BUDGET = cap
        print(f"{model}: {seconds['uncapped'] / seconds[f'cap {cap}']:.2f}x faster with the cap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
