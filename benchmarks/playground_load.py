#!/usr/bin/env python
"""How fast the playground loads, and what it weighs: a real ``tether serve`` and Debian's Chromium.

The issue asks for a page that "loads fast and works without a network". This opens the page
``--loads`` times in fresh browser contexts (no cache) with every request to another host blocked,
and reports the median time to DOMContentLoaded, to the load event and until the page is settled
(its first reads of the gateway, what is configured and the recent decisions, answered), with the
bytes it fetched. Baseline in
the same run: ``/healthz``, the smallest JSON the gateway serves, fetched by the same browser, as
the floor any page on this gateway pays.

    .venv/bin/python benchmarks/playground_load.py [--loads 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]


@contextlib.contextmanager
def local_gateway(model: str, prefix: str) -> Iterator[str]:
    """A real ``tether serve`` on a free loopback port, on ``model`` with no cloud configured and a
    throwaway ledger; yields its URL and stops it afterwards."""
    from tether.cloud.serving import spawn, stop

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        config = Path(tmp) / "router.toml"
        config.write_text(f'device_model = "{model}"\n')
        env = {**os.environ, "TETHER_LEDGER": str(Path(tmp) / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": str(config)}
        proc, url = spawn([sys.executable, "-m", "tether", "serve", "--port", "0", "--model", model],
                          Path(tmp) / "serve.log", env=env, timeout=300)
        try:
            yield url
        finally:
            stop(proc, timeout=15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--model", default="smollm2-135m", help="the gateway's device model (the page loads none)")
    ap.add_argument("--chromium", default=os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[float]] = {"dom": [], "load": [], "ready": [], "healthz": []}
    weights: list[int] = []
    remote: list[str] = []
    with local_gateway(args.model, "tether-playground-load-") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        for i in range(args.loads + 1):  # the first load warms the gateway and is not counted
            context = browser.new_context()
            page = context.new_page()
            fetched: list[int] = []

            def block_remote(route) -> None:  # noqa: ANN001 - playwright's Route
                if route.request.url.startswith(url):
                    route.continue_()
                else:
                    remote.append(route.request.url)
                    route.abort()

            arrived: list[float] = []

            def answered(response) -> None:  # noqa: ANN001 - playwright's Response
                arrived.append(time.perf_counter())
                try:
                    fetched.append(len(response.body()))
                except Exception:  # noqa: BLE001 - a late answer after the context closed
                    pass

            page.route("**/*", block_remote)
            page.on("response", answered)
            start = time.perf_counter()
            page.goto(url + "/", wait_until="load")
            page.wait_for_load_state("networkidle")  # its first reads of the gateway are answered
            ready = (max(arrived) - start) * 1000  # the last of them, not the idle wait after it
            timing = page.evaluate("() => { const t = performance.getEntriesByType('navigation')[0];"
                                   " return [t.domContentLoadedEventEnd, t.loadEventEnd]; }")
            start = time.perf_counter()
            page.goto(url + "/healthz")
            healthz = (time.perf_counter() - start) * 1000
            if i:
                runs["dom"].append(timing[0])
                runs["load"].append(timing[1])
                runs["ready"].append(ready)
                runs["healthz"].append(healthz)
                weights.append(sum(fetched))
            context.close()
        browser.close()
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "machine": f"{os.cpu_count()} vCPU {platform.machine()} ({cpu_model()})", "loads": args.loads,
           **{f"{k}_ms_median": statistics.median(v) for k, v in runs.items()},
           **{f"{k}_ms_max": max(v) for k, v in runs.items()},
           "bytes_median": statistics.median(weights), "remote_requests": sorted(set(remote))}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"Measured {out['date']} on {out['machine']}; {args.loads} loads, fresh context each (no cache), "
          f"other hosts blocked.")
    print(f"DOMContentLoaded median {out['dom_ms_median']:.0f} ms, load {out['load_ms_median']:.0f} ms, settled "
          f"{out['ready_ms_median']:.0f} ms (max {out['ready_ms_max']:.0f}); the /healthz floor "
          f"{out['healthz_ms_median']:.0f} ms; settled / floor {out['ready_ms_median'] / out['healthz_ms_median']:.1f}x")
    print(f"bytes fetched per load (median): {out['bytes_median'] / 1024:.1f} KiB; requests to other hosts: "
          f"{len(out['remote_requests'])}")


if __name__ == "__main__":
    main()
