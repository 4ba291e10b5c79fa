#!/usr/bin/env python
"""Take ``docs/playground.png``: the playground on the default device model, as a user sees it.

Starts a real ``tether serve`` on a free loopback port (``qwen2.5-0.5b``, no cloud configured, a
throwaway ledger), runs a rewrite and a chat in Debian's Chromium through Playwright (as the
browser tests do), and saves the page after the chat.

    .venv/bin/python scripts/playground_screenshot.py [--out docs/playground.png] [--model qwen2.5-0.5b]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from playground_load import CHROMIUM_ARGS, local_gateway  # noqa: E402 - benchmarks/ is not a package


def wait_done(page, timeout: float = 300_000) -> None:
    page.wait_for_function("() => document.getElementById('spinner').hidden && "
                           "!document.getElementById('run').disabled", timeout=timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "playground.png")
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--chromium", default=os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium"))
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with local_gateway(args.model, "tether-screenshot-") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url + "/")
        page.wait_for_selector("#run")
        page.select_option("#feature", "rewrite")
        page.fill("#input", "hey, cant make it tmrw, can we move the review with Priya to friday?")
        page.click("#run")
        wait_done(page)
        page.select_option("#feature", "chat")
        page.select_option("#target", "auto")
        page.fill("#input", "Write a one-line thank-you note to Alice Johnson for hosting us in Lisbon.")
        page.click("#run")
        wait_done(page)
        page.wait_for_function("() => document.querySelectorAll('#recent li').length >= 2", timeout=30_000)
        page.screenshot(path=str(args.out), full_page=True)
        print(f"result: {page.locator('#result').text_content().strip()}")
        print(f"wrote {args.out}")
        browser.close()


if __name__ == "__main__":
    main()
