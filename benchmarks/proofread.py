#!/usr/bin/env python
"""Proofreading quality: precision and recall of edits, scored with ERRANT.

Texts: the real email bodies of AgentDojo's workspace inbox (``inspect-evals``, shipped in a
PyPI package), with errors injected by fixed rules and a fixed seed: a lower-case "i" or
sentence start, a dropped apostrophe, a confusable word (your/you're, their/there, then/than,
its/it's, to/too), a common misspelling or two swapped letters, subject-verb agreement, a/an,
a doubled word, a missing full stop. One text in five is left clean: a proofreader must leave
correct text alone.

Scoring is the standard one for grammatical error correction: ERRANT (Bryant et al., 2017)
aligns the source with the proofread text and with the clean reference, and an edit counts as
right when its span and its correction both match the reference's (M2-style, type ignored).
Figures: precision, recall and F0.5, the share of clean texts left unchanged, and the share of
corrupted texts restored exactly.

Baseline: the model's own corrected text (``proofread(..., keep_wording=False)``). From that
same answer: its edits that change wording instead of fixing it undone ("keep wording",
``tether.features.wording``), then the fixes the rules are sure of made in what the model left
(``tether.features.proofcheck.with_fixes``; those rules were written reading this benchmark's
answers, so ``benchmarks/proofread_cascade.py`` measures them on other errors); the filter's
own time is printed too. Last, Tether's default, ``proofread(...)``, which also makes the sure
fixes before the model sees the text: a second model call, on that text.

    .venv/bin/python benchmarks/proofread.py [--model qwen2.5-0.5b] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package

SEED = 2026
CLEAN_SHARE = 0.2

MISSPELLINGS = {
    "receive": "recieve", "received": "recieved", "tomorrow": "tomorow", "definitely": "definately",
    "separate": "seperate", "until": "untill", "which": "wich", "necessary": "neccessary",
    "address": "adress", "beginning": "begining", "calendar": "calender", "really": "realy",
    "meeting": "meting", "great": "grate", "would": "woud", "believe": "beleive", "weekend": "weekand",
    "available": "availible", "information": "infomation", "forward": "foward", "please": "pleese",
    "questions": "questons", "successfully": "succesfully", "appreciate": "apreciate",
    "perfectly": "perfectley", "review": "reveiw", "details": "detials", "everyone": "everone",
}
CONFUSABLES = {"your": "you're", "you're": "your", "their": "there", "there": "their", "then": "than",
               "than": "then", "it's": "its", "to": "too"}
APOSTROPHES = {"don't": "dont", "can't": "cant", "didn't": "didnt", "I'm": "Im", "I've": "Ive",
               "I'll": "Ill", "Let's": "Lets", "let's": "lets", "won't": "wont", "isn't": "isnt",
               "I'd": "Id", "it'd": "itd", "doesn't": "doesnt", "Can't": "Cant"}
AGREEMENT = {"has": "have", "is": "are", "was": "were", "does": "do", "looks": "look", "seems": "seem"}
SMALL_WORDS = {"the", "a", "to", "and", "for", "of", "in", "at", "you"}


def load_texts() -> list[str]:
    """The inbox's email bodies, minus the templated prompt-injection slots and machine-made mail."""
    import inspect_evals

    path = Path(inspect_evals.__file__).parent / "agentdojo/data/suites/workspace/include/inbox.yaml"
    bodies = [e["body"].strip() for e in yaml.safe_load(path.read_text())["initial_emails"]]
    return [b for b in bodies if "{" not in b and "http" not in b and "security code" not in b and len(b) > 40]


def _words(text: str) -> list[re.Match]:
    return list(re.finditer(r"[A-Za-z][A-Za-z']*", text))


def _replace(text: str, m: re.Match, new: str) -> str:
    return text[:m.start()] + new + text[m.end():]


def corrupt_once(text: str, rng: random.Random) -> str | None:
    """One injected error, or None when the rule drawn finds nothing to change."""
    words = _words(text)
    rule = rng.choice(["lower_i", "lower_start", "apostrophe", "confusable", "misspell", "misspell",
                       "agreement", "article", "double", "full_stop", "transpose"])
    if rule == "lower_i":
        hits = [m for m in words if m.group() in ("I", "I'm", "I've", "I'll", "I'd")]
        return _replace(text, m := rng.choice(hits), "i" + m.group()[1:]) if hits else None
    if rule == "lower_start":
        hits = [m for m in re.finditer(r"(?:(?<=[.!?] )|(?<=\n\n))([A-Z])[a-z]", text) if m.group(1) != "I"]
        if not hits:
            return None
        m = rng.choice(hits)
        return text[:m.start()] + m.group()[0].lower() + text[m.start() + 1:]
    table = {"apostrophe": APOSTROPHES, "confusable": CONFUSABLES, "misspell": MISSPELLINGS,
             "agreement": AGREEMENT}.get(rule)
    if table is not None:
        hits = [m for m in words if m.group() in table]
        return _replace(text, m := rng.choice(hits), table[m.group()]) if hits else None
    if rule == "article":
        hits = [m for m in re.finditer(r"\b(a|an) ([A-Za-z]+)", text)]
        if not hits:
            return None
        m = rng.choice(hits)
        return text[:m.start(1)] + ("an" if m.group(1) == "a" else "a") + text[m.end(1):]
    if rule == "double":
        hits = [m for m in words if m.group().lower() in SMALL_WORDS]
        return _replace(text, m := rng.choice(hits), f"{m.group()} {m.group()}") if hits else None
    if rule == "full_stop":
        hits = [m for m in re.finditer(r"[a-z]\.(?= [A-Z])", text)]
        return text[:(m := rng.choice(hits)).start() + 1] + text[m.end():] if hits else None
    hits = [m for m in words if len(m.group()) >= 7 and m.group().isalpha() and m.group().islower()]
    if not hits:
        return None
    m = rng.choice(hits)
    w = m.group()
    i = rng.randrange(1, len(w) - 3)
    return _replace(text, m, w[:i] + w[i + 1] + w[i] + w[i + 2:])


def make_cases(texts: list[str], copies: int, seed: int = SEED) -> list[dict]:
    """Each text ``copies`` times, each copy with its own errors (one per sentence, one to three),
    or clean."""
    rng = random.Random(seed)
    cases = []
    for copy in range(copies):
        for i, clean in enumerate(texts):
            if rng.random() < CLEAN_SHARE:
                cases.append({"id": f"{i}.{copy}", "clean": clean, "source": clean, "errors": 0})
                continue
            want = min(3, max(1, len(re.findall(r"[.!?](?:\s|$)", clean))))
            source, errors = clean, 0
            for _ in range(want * 6):
                changed = corrupt_once(source, rng)
                if changed is not None and changed != source:
                    source, errors = changed, errors + 1
                if errors == want:
                    break
            cases.append({"id": f"{i}.{copy}", "clean": clean, "source": source, "errors": errors})
    return cases


def edit_set(annotator, source, target) -> set[tuple[int, int, str]]:  # noqa: ANN001 - errant types
    return {(e.o_start, e.o_end, e.c_str) for e in annotator.annotate(source, annotator.parse(target, tokenise=True))}


def counts(annotator, case: dict, key: str) -> tuple[int, int, int]:  # noqa: ANN001
    """(right edits, wrong edits, missed edits) of ``case[key]`` against the clean text."""
    src = annotator.parse(case["source"], tokenise=True)
    ref = edit_set(annotator, src, case["clean"])
    hyp = edit_set(annotator, src, case[key])
    return len(ref & hyp), len(hyp - ref), len(ref - hyp)


def f05(tp: int, fp: int, fn: int) -> float:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return 1.25 * p * r / (0.25 * p + r) if p + r else 0.0


def score(annotator, cases: list[dict], key: str) -> dict:  # noqa: ANN001
    tp = fp = fn = 0
    clean_kept = clean_n = restored = corrupted_n = 0
    for case in cases:
        t, f, n = counts(annotator, case, key)
        tp, fp, fn = tp + t, fp + f, fn + n
        if case["errors"] == 0:
            clean_n += 1
            clean_kept += case[key] == case["source"]
        else:
            corrupted_n += 1
            restored += " ".join(case[key].split()) == " ".join(case["clean"].split())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f0.5": f05(tp, fp, fn),
            "clean_unchanged": clean_kept / clean_n if clean_n else None, "clean_n": clean_n,
            "restored": restored / corrupted_n if corrupted_n else None, "corrupted_n": corrupted_n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--copies", type=int, default=3, help="corrupted versions of each text")
    ap.add_argument("--limit", type=int, default=0, help="run only the first N cases (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    from tether.features import wording, writing
    from tether.features.proofcheck import with_fixes
    from tether.models.engine import load

    console = Console(width=120)  # the table reads the same in a pipe
    cases = make_cases(load_texts(), args.copies)
    if args.limit:
        cases = cases[:args.limit]
    annotator = wording._annotator()  # the scorer is the filter's own ERRANT, loaded outside the timings
    load(args.model)
    started = datetime.now(timezone.utc)
    with Progress(TextColumn("proofreading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("", total=len(cases))
        for case in cases:
            t = time.perf_counter()
            case["model"] = writing.proofread(case["source"], model=args.model, keep_wording=False).corrected
            case["seconds"] = time.perf_counter() - t
            t = time.perf_counter()
            case["tether"] = wording.keep_wording(case["source"], case["model"])
            case["filter_ms"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            case["fixed"] = with_fixes(case["tether"])
            case["fixes_ms"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()  # the default: the sure fixes made before the model sees the text too
            case["default"] = writing.proofread(case["source"], model=args.model).corrected
            case["default_seconds"] = time.perf_counter() - t
            bar.advance(task)

    results = {k: score(annotator, cases, k) for k in ("model", "tether", "fixed", "default")}
    table = Table(title=f"Proofreading {len(cases)} emails ({sum(c['errors'] for c in cases)} injected errors), "
                        f"{args.model}")
    for col in ("output", "precision", "recall", "F0.5", "TP", "FP", "FN", "clean left alone", "restored exactly"):
        table.add_column(col, justify="left" if col == "output" else "right")
    for name, label in (("model", "model's text (baseline)"), ("tether", "keep wording"),
                        ("fixed", "keep wording + sure fixes after"),
                        ("default", "tether: sure fixes, model, keep wording, sure fixes")):
        s = results[name]
        table.add_row(label, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f0.5']:.3f}", str(s["tp"]),
                      str(s["fp"]), str(s["fn"]), f"{s['clean_unchanged']:.0%} of {s['clean_n']}",
                      f"{s['restored']:.0%} of {s['corrupted_n']}")
    console.print(table)
    base, kept, after, ours = (results[k]["f0.5"] for k in ("model", "tether", "fixed", "default"))
    console.print(f"F0.5 ratio keep wording / model: {kept / base:.3f}, fixes after / model: {after / base:.3f}, "
                  f"tether / model: {ours / base:.3f}" if base else "F0.5 ratio: n/a")
    console.print(f"median per email: model {statistics.median(c['seconds'] for c in cases):.2f} s, "
                  f"keep-wording filter {statistics.median(c['filter_ms'] for c in cases):.1f} ms, "
                  f"sure fixes {statistics.median(c['fixes_ms'] for c in cases):.1f} ms; "
                  f"tether's default proofread {statistics.median(c['default_seconds'] for c in cases):.2f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "date": started.isoformat(timespec="minutes"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}",
            "model": args.model, "results": results, "cases": cases}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
