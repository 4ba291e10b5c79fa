"""File readers: each turns one file into items (an email, an event, a note, a record).

Readers never raise on bad content they can work around: non-UTF-8 bytes are
decoded with replacement and flagged. A file that cannot be parsed at all
raises ``ExtractError`` and the indexer skips it and reports why.
"""

from __future__ import annotations

import codecs
import email
import email.policy
import functools
import html
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import Message
from pathlib import Path

SUFFIXES = {".eml": "mail", ".mbox": "mail", ".ics": "calendar", ".md": "note", ".markdown": "note",
            ".txt": "note", ".json": "record", ".yaml": "record", ".yml": "record", ".pdf": "document"}


class ExtractError(Exception):
    """The file cannot be read as its type; the message says why."""


@dataclass
class Item:
    key: str  # stable within the file: message id, event uid, record index
    title: str
    text: str


@dataclass
class Extracted:
    kind: str
    items: list[Item]
    flags: list[str] = field(default_factory=list)


def kind_of(path: Path) -> str | None:
    if _apple_mailbox(path):
        return "mail"
    return SUFFIXES.get(path.suffix.lower())


def _apple_mailbox(path: Path) -> bool:
    """Apple Mail exports a mailbox as a folder ``Name.mbox/`` holding the messages in a file ``mbox``."""
    return path.name == "mbox" and path.parent.suffix.lower() == ".mbox"


# Bytes no text file holds (tab, line breaks, form feed and ESC, for ANSI-coloured logs, aside)
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 27), *range(28, 32), 127])


def _binary(raw: bytes, *, nul_is_binary: bool = True) -> bool:
    """A NUL, or one control byte in twenty, in the first 8 KB, as git and ``file`` tell binary files:
    an image or archive named ``.txt`` filled results with garbage. UTF-16 (with its byte-order
    mark) is text full of NULs; mail takes the share alone, since a broken client's stray NUL
    must not lose a message."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    head = raw[:8192]
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return (nul_is_binary and b"\0" in head) or controls > max(len(head) // 20, 2)  # a stray one in a short note is not


def decode(raw: bytes, flags: list[str]) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # a UTF-16 byte-order mark (Windows Notepad's "Unicode")
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            flags.append("non-utf8")
            return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        flags.append("non-utf8")
        return raw.decode("utf-8", errors="replace")


def extract(path: Path, raw: bytes) -> Extracted:
    kind = kind_of(path)
    if kind is None:
        raise ExtractError(f"unsupported file type {path.suffix!r}")
    flags: list[str] = []
    suffix = path.suffix.lower()
    if kind != "document" and _binary(raw, nul_is_binary=kind != "mail"):
        raise ExtractError("binary content, not text (NUL or control bytes in its first 8 KB)")
    if suffix == ".eml":
        items = [_mail_item(email.message_from_bytes(raw, policy=email.policy.default), path.name, flags)]
    elif suffix == ".mbox" or _apple_mailbox(path):
        items = _mbox(raw, path.name, flags)
    elif kind == "calendar":
        items = _ics(decode(raw, flags), path.name, flags)
    elif kind == "record":
        items = _records(decode(raw, flags), suffix, path.name)
    elif kind == "document":
        items = _pdf(raw, path, flags)
    else:
        text = decode(raw, flags)
        title = _markdown_title(text, path) if suffix in (".md", ".markdown") else _note_title(text, path)
        items = [Item(key=path.name, title=title, text=text)]
    items = [i for i in items if i.text.strip() or i.title.strip()]
    return Extracted(kind=kind, items=items, flags=list(dict.fromkeys(flags)))


# ---------------------------------------------------------------- mail

def _mail_item(msg: Message, fallback_key: str, flags: list[str]) -> Item:
    if not msg.keys():
        raise ExtractError("no mail headers")
    headers = [f"{h}: {value}" for h in ("From", "To", "Cc", "Date") if (value := _header(msg, h, flags))]
    body = _mail_body(msg, flags)
    subject = _header(msg, "Subject", flags)
    key = _header(msg, "Message-ID", flags).strip() or fallback_key
    return Item(key=key, title=subject, text="\n".join(headers) + "\n\n" + body)


def _header(msg: Message, name: str, flags: list[str]) -> str:
    """A header as text; a malformed one (``Message-ID: <``) is read raw instead of failing the message.

    8-bit bytes in a header (not allowed, yet common: a Subject in windows-1252) reach us as
    surrogate escapes; UTF-8 ones the email package decodes, any others are decoded with the
    message's declared charset, the best guess there is, and flagged ``non-utf8``."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "") if hasattr(msg, "raw_items") else ""
    try:
        value = str(msg.get(name, "") or "")
    except Exception:
        value = " ".join(str(raw).split())
    if not isinstance(raw, str) or not _SURROGATE.search(raw):
        return value
    data = raw.encode("ascii", "surrogateescape")
    try:
        data.decode("utf-8")
        return value
    except UnicodeDecodeError:
        pass
    flags.append("non-utf8")
    text = _decode_text(data, _declared_charset(msg), [])
    return " ".join(_ENCODED_WORD.sub(_encoded_word, _ENCODED_GAP.sub("", text)).split())


_SURROGATE = re.compile("[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_ENCODED_GAP = re.compile(r"(?<=\?=)\s+(?==\?)")  # RFC 2047: space between two encoded words is not text


def _encoded_word(m: re.Match[str]) -> str:
    from email.header import decode_header, make_header

    try:
        return str(make_header(decode_header(m.group())))
    except Exception:  # a bad charset or base64 in it: keep it as written
        return m.group()


def _declared_charset(msg: Message) -> str | None:
    """The charset the message declares (its own, else its first text part's)."""
    for part in msg.walk():
        try:
            charset = part.get_content_charset()
        except Exception:
            charset = None
        if charset:
            return charset
    return None


# Labels mail clients write for a wider codepage than the one named; decoding with the narrow
# one loses every character outside it. As browsers do (WHATWG Encoding Standard).
_WIDER_CHARSET = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
                  "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "utf-8", "ascii": "utf-8",
                  "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "sjis": "cp932",
                  "tis-620": "cp874"}


def _decode_text(payload: bytes, charset: str | None, flags: list[str]) -> str:
    """``payload`` in its declared charset; a byte that is not valid there becomes U+FFFD and
    the rest is kept (flagged ``non-utf8``). An unknown or missing charset is read as UTF-8."""
    name = (charset or "utf-8").strip().lower()
    name = _WIDER_CHARSET.get(name, name)
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a charset name with a NUL in it
        flags.append("non-utf8")
        name = "utf-8"
    try:
        return payload.decode(name)
    except UnicodeDecodeError:
        flags.append("non-utf8")
        return payload.decode(name, errors="replace")


def _mail_body(msg: Message, flags: list[str]) -> str:
    parts = list(msg.walk()) if msg.is_multipart() else [msg]
    # In multipart/alternative the HTML repeats the plain text: index one of them, not both, also
    # when the HTML sits deeper (alternative{plain, related{html, image}}, as Apple Mail sends).
    html_twins: set[int] = set()
    for part in parts:
        if part.get_content_type() == "multipart/alternative":
            inside = list(part.walk())[1:]
            if any(p.get_content_type() == "text/plain" for p in inside):
                html_twins |= {id(p) for p in inside if p.get_content_type() == "text/html"}
    texts = []
    for part in parts:
        malformed = not part.is_multipart() and part.get_content_maintype() == "multipart"
        if malformed:  # "multipart" without a boundary or its lines: the body is plain text
            flags.append("malformed-mime")
        elif part.is_multipart() or part.get_content_maintype() != "text" or id(part) in html_twins:
            continue
        if part.get_content_disposition() == "attachment":
            continue
        payload = part.get_payload(decode=True) or b""
        try:
            charset = part.get_content_charset()
        except Exception:
            charset = None
        text = _decode_text(payload, charset, flags)
        if part.get_content_subtype() == "html" and not malformed:
            text = _html_text(text)
        elif part.get_content_subtype() == "calendar" and not malformed:
            text = _invitation(text, flags)
        texts.append(text)
    return "\n\n".join(texts)


def _invitation(text: str, flags: list[str]) -> str:
    """A text/calendar part (an invitation) in words, as an .ics file is read; as it is if it is none."""
    try:
        found = _calendar(text, "invitation", flags)
    except ExtractError:
        return text
    return "\n\n".join(f"{'Task' if kind == 'VTODO' else 'Event'}: {item.title}\n{item.text}".strip()
                       for kind, item in found)


# <head> is not among them: HTML lets its end tag out, and then nothing of the body was read;
# what it holds that is not shown (style, script, title) is hidden one by one.
_HIDDEN_OPEN = re.compile(r"<(style|script|title|template|noscript)\b")


def _html_text(html_source: str) -> str:
    """Visible text of an HTML mail, in one forward pass with str.find.

    Every search starts where the last ended, so hostile mail (thousands of unclosed
    ``<style>``, ``<!--`` or ``<a href="``) costs linear time; both backtracking regexes and
    html.parser go quadratic on it. Like a browser, an unclosed comment, script or style
    hides the rest; a ``<`` with no ``>`` after it is text, and so is one not followed by a
    letter, ``/``, ``!`` or ``?`` (``5 < 6 and 7 > 3``), as the HTML tokenizer has it.
    """
    src, low = html_source, html_source.lower()
    out: list[str] = []
    i, n = 0, len(src)
    while i < n:
        lt = src.find("<", i)
        if lt < 0:
            out.append(src[i:])
            break
        out.append(src[i:lt])
        after = src[lt + 1:lt + 2]
        if not after or not (after.isascii() and after.isalpha() or after in "/!?"):
            out.append("<")
            i = lt + 1
            continue
        if src.startswith("<!--", lt):
            end = src.find("-->", lt + 4)
            if end < 0:
                break
            i = end + 3
            continue
        gt = src.find(">", lt + 1)
        if gt < 0:
            out.append(src[lt:])
            break
        hidden = _HIDDEN_OPEN.match(low, lt)
        if hidden:
            close = low.find("</" + hidden.group(1), gt + 1)
            if close < 0:
                break
            gt = low.find(">", close)
            if gt < 0:
                break
        out.append(" ")
        i = gt + 1
    return " ".join(html.unescape("".join(out)).split())


_MBOX_FROM = re.compile(rb"^From ", re.M)  # where a message starts, as mailbox.mbox splits them


def _mbox(raw: bytes, name: str, flags: list[str]) -> list[Item]:
    """The messages of the bytes read (not the file opened again: it may have changed since, or be a pipe now)."""
    starts = [m.start() for m in _MBOX_FROM.finditer(raw)]
    items = []
    for n, (start, end) in enumerate(zip(starts, [*starts[1:], len(raw)])):
        try:
            msg = email.message_from_bytes(raw[start:end], policy=email.policy.default)
            items.append(_mail_item(msg, f"{name}#{n}", flags))
        except Exception:  # one malformed message must not lose the rest of the mailbox
            flags.append(f"message {n} skipped")
    if not items:
        raise ExtractError("no messages in mbox")
    return items


# ---------------------------------------------------------------- calendar

def _ics(text: str, name: str, flags: list[str]) -> list[Item]:
    return [item for _, item in _calendar(text, name, flags)]


def _calendar(text: str, name: str, flags: list[str]) -> list[tuple[str, Item]]:
    """Each VEVENT and VTODO as (component name, item), read by ``icalendar``: RFC 5545's
    escapes, time zones, durations and exclusive all-day ends are its job, not ours."""
    import icalendar

    lines = text.splitlines()
    if not any(line.strip().upper() == "BEGIN:VCALENDAR" for line in lines[:5]):
        raise ExtractError("not an iCalendar file (no BEGIN:VCALENDAR)")
    try:
        calendars = icalendar.Calendar.from_ical(_balanced(lines, flags), multiple=True)
    except Exception as exc:  # ValueError mostly; a parser bug on hostile input must not pass as a crash
        raise ExtractError(f"not a readable iCalendar file ({' '.join(str(exc).split())[:160]})") from None
    found: list[tuple[str, Item]] = []
    n = 0
    for cal in calendars:
        for comp in cal.walk():
            if comp.name in ("VEVENT", "VTODO"):
                try:
                    found.append((comp.name, _event_item(comp, name, n)))
                except Exception:  # one event icalendar cannot read must not lose the rest of the calendar
                    flags.append(f"event {n} skipped")
                n += 1
    return found


_BEGIN_END = re.compile(r"(BEGIN|END):([A-Za-z0-9-]+)[ \t]*$", re.I)
_CONTENT_LINE = re.compile(r"[A-Za-z0-9-]+[;:]")


def _balanced(lines: list[str], flags: list[str]) -> str:
    """The calendar with every component closed. ``icalendar`` drops or refuses what a real file
    holds: a file cut off by a sync (no END), an END out of place (``END:VEVENT`` inside a VALARM),
    a description's raw line break (a line that is no property). Such a line joins the line before
    it; what was still open is closed at the end, flagged ``unterminated-event``."""
    out: list[str] = []
    opened: list[str] = []
    malformed = False
    for line in lines:
        if not line.strip():
            continue
        if line[0] in " \t":  # a folded line's continuation
            out.append(line)
            continue
        if m := _BEGIN_END.match(line):
            comp = m.group(2).upper()
            if m.group(1).upper() == "BEGIN":
                opened.append(comp)
            elif comp in opened:
                while opened[-1] != comp:  # END:VEVENT with a VALARM open closes the alarm too
                    malformed = True
                    out.append(f"END:{opened.pop()}")
                opened.pop()
            else:  # an END that closes nothing
                malformed = True
                continue
            out.append(f"{m.group(1).upper()}:{comp}")
        elif _CONTENT_LINE.match(line):
            out.append(line)
        else:
            malformed = True
            if out and not _BEGIN_END.match(out[-1]):
                out[-1] += "\\n" + line.replace("\\", "\\\\")
    if malformed:
        flags.append("malformed-lines")
    if any(c in ("VEVENT", "VTODO") for c in opened):
        flags.append("unterminated-event")
    elif opened:
        flags.append("unterminated-calendar")
    out.extend(f"END:{c}" for c in reversed(opened))
    return "\r\n".join(out) + "\r\n"


def _props(comp: object, name: str) -> list:
    """Every value of a property: icalendar gives one, or a list when it is repeated."""
    value = comp.get(name)  # type: ignore[attr-defined]
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def _text(comp: object, name: str, sep: str = "\n") -> str:
    return sep.join(str(v) for v in _props(comp, name) if str(v).strip())


def _event_item(comp, name: str, n: int) -> Item:
    title = _text(comp, "SUMMARY", " ")
    status = _text(comp, "STATUS", " ").lower()
    if status == "cancelled":
        title = f"{title} (cancelled)" if title else "(cancelled)"
    body = [f"Status: {status}"] if status else []
    start = next(iter(_props(comp, "DTSTART")), None)
    if start is not None:
        body.append(f"Start: {_when(start)}")
    end_name, label = ("DUE", "Due") if comp.name == "VTODO" else ("DTEND", "End")
    if _props(comp, end_name) or (_props(comp, "DURATION") and start is not None):
        try:
            end = comp.end  # DTEND or DUE, else DTSTART + DURATION
        except Exception:  # a broken value: shown as written
            end = None
        named = next(iter(_props(comp, end_name)), None)
        if end is None and named is not None:
            body.append(f"{label}: {_when(named)}")
        elif end is not None:
            zone = (named if named is not None else start).params.get("TZID")
            try:
                first = start.dt
            except Exception:
                first = None
            if label == "End" and type(end) is date:  # an all-day end is exclusive: the day after the last
                end -= timedelta(days=1)
                if type(first) is date and end <= first:
                    end = None
            if end is not None:
                body.append(f"{label}: {_time(end, zone)}")
    for rid in _props(comp, "RECURRENCE-ID"):
        body.append(f"Replaces the occurrence on: {_when(rid)}")
    repeats = _repeats(comp)
    if repeats:
        body.append(repeats)
    if location := _text(comp, "LOCATION", "; "):
        body.append(f"Location: {location}")
    if organizer := "; ".join(_person(p) for p in _props(comp, "ORGANIZER")):
        body.append(f"Organizer: {organizer}")
    if attendees := "; ".join(_person(p) for p in _props(comp, "ATTENDEE")):
        body.append(f"Attendee: {attendees}")
    categories = [str(c) for v in _props(comp, "CATEGORIES") for c in _attr(v, "cats", [v])]
    if categories:
        body.append(f"Categories: {', '.join(categories)}")
    if description := _text(comp, "DESCRIPTION"):
        body.append(f"Description: {description}")
    uid = _text(comp, "UID", " ") or f"{name}#{n}"
    return Item(key=uid, title=title, text="\n".join(body))


def _attr(prop: object, name: str, default):
    """``getattr`` that also takes a value icalendar could not read: a vBroken raises
    ``BrokenCalendarProperty`` (a ValueError), not AttributeError, for any typed attribute."""
    try:
        return getattr(prop, name, default)
    except Exception:
        return default


def _when(prop: object) -> str:
    """A date or time property as words; a value icalendar could not read, as ``_lenient`` reads
    it, else as written."""
    try:
        value = prop.dt  # type: ignore[attr-defined]
    except Exception:  # icalendar's vBroken raises here
        return _lenient(str(prop), _attr(prop, "params", {}).get("TZID"))
    return _time(value, prop.params.get("TZID"))  # type: ignore[attr-defined]


# Stamps RFC 5545 does not allow but exports and hand-made files hold: no seconds
# (``20240515T1000``), ISO dashes and colons (``2024-05-15T10:00``, ``2026-01-10``).
_LOOSE_STAMP = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2}))?(Z)?)?")


def _lenient(text: str, tzid: str | None = None) -> str:
    """A date or time icalendar could not read, in words when it is one of the loose stamps above
    (read as raw, "20240515T1000", a small model gave the time as it stood); anything else
    (``20260113T19000``: a digit short, which?) as written."""
    text = " ".join(text.split())
    m = _LOOSE_STAMP.fullmatch(text)
    if m is None:
        return text
    try:
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        if m[4] is None:
            return _time(date(year, month, day))
        value = datetime(year, month, day, int(m[4]), int(m[5]), int(m[6] or 0))
    except ValueError:  # 2024-02-30, 25:00
        return text
    return _time(value, "UTC" if m[7] else tzid)


def _day(value) -> str:
    """Day and month spelt out, as people ask ("on Saturday", "in December"): BM25 matches whole
    words, and "Sat" or "Dec" matched neither. Not ``%A``: that follows the process's locale."""
    return f"{DAY_NAMES[value.weekday()]} {value.day} {MONTH_NAMES[value.month - 1]} {value.year}"


def _time(value, tzid: str | None = None) -> str:
    """``20261205T193000Z`` as "Saturday 5 December 2026 19:30 UTC": a model reading the raw form gets the
    time wrong. The zone is named (an unknown TZID as written); a floating time has none."""
    if isinstance(value, datetime):
        tz = value.tzinfo
        key = getattr(tz, "key", None)
        if tz is None:
            zone = tzid or ""
        elif key in ("UTC", "Etc/UTC") or (not key and value.utcoffset() is not None
                                            and not value.utcoffset() and value.tzname() in ("UTC", None)):
            zone = "UTC"
        else:
            zone = key or tzid or value.tzname() or ""
        return f"{_day(value)} {value:%H:%M}" + (f" {zone}" if zone else "")
    if isinstance(value, date):
        return f"{_day(value)} (all day)"
    return str(value)


_FREQ = {"SECONDLY": "second", "MINUTELY": "minute", "HOURLY": "hour", "DAILY": "day", "WEEKLY": "week",
         "MONTHLY": "month", "YEARLY": "year"}
_WEEKDAY = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday",
            "SA": "Saturday", "SU": "Sunday"}
DAY_NAMES = tuple(_WEEKDAY.values())  # Monday first, as date.weekday() counts
_NTH = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", -1: "last", -2: "second-to-last"}
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")


def _repeats(comp) -> str:
    """RRULE, RDATE and EXDATE in words ("Repeats: weekly on Monday until …, except …"):
    a model or a person reading the raw rule gets it wrong."""
    rules = [_rule(r) for r in _props(comp, "RRULE")]
    extra = _dates(comp, "RDATE")
    if not rules and not extra:
        return ""
    text = "Repeats: " + "; ".join(rules) if rules else "Also on: " + ", ".join(extra)
    if rules and extra:
        text += "; also on " + ", ".join(extra)
    skipped = _dates(comp, "EXDATE")
    if skipped:
        text += ", except " + ", ".join(skipped)
    return text


def _dates(comp, name: str) -> list[str]:
    """The dates of every RDATE or EXDATE line in words (not an RDATE's periods); a value icalendar
    could not read (``RDATE:2026-01-10``, ``EXDATE:20260113T19000``) as ``_when`` reads one."""
    out = []
    for prop in _props(comp, name):
        try:
            values = [d.dt for d in prop.dts]
        except Exception:  # a vBroken raises BrokenCalendarProperty here, not AttributeError
            out.extend(_lenient(v, _attr(prop, "params", {}).get("TZID")) for v in str(prop).split(",") if v.strip())
            continue
        out.extend(_time(v, prop.params.get("TZID")) for v in values if not isinstance(v, tuple))
    return out


def _rule(rule) -> str:
    if not isinstance(rule, dict):  # a rule icalendar could not read: as written
        return " ".join(str(rule).split())
    try:
        return _rule_words(rule)
    except (ValueError, TypeError, IndexError):  # a value past what the words know: as written
        return rule.to_ical().decode()


def _rule_words(rule) -> str:
    """The rule in words; a BY* part it has no words for is added as written ("with BYWEEKNO=20"),
    never dropped: "monthly on Tuesday" for the second Tuesday of the month was wrong."""
    def get(key: str) -> list:
        return list(rule.get(key, []))

    freq = str((get("FREQ") or [""])[0]).upper()
    unit = _FREQ.get(freq)
    if unit is None:
        return rule.to_ical().decode()
    interval = int((get("INTERVAL") or [1])[0])
    words = [f"every {interval} {unit}s" if interval > 1 else "daily" if unit == "day" else f"{unit}ly"]
    done = set()
    days = [str(d).strip() for d in get("BYDAY")]
    positions = [int(p) for p in get("BYSETPOS")]
    # BYSETPOS picks from the set the other BY* parts make; in words only when BYDAY alone makes it
    plain_set = not (set(rule) & {"BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYHOUR", "BYMINUTE", "BYSECOND"})
    if days and positions and plain_set and all(re.fullmatch(r"[A-Za-z]{2}", d) for d in days):
        nths, names = _and([_nth(p) for p in positions]), [_weekday(d) for d in days]
        words.append(f"on the {nths} {names[0]}" if len(names) == 1 else f"on the {nths} of {_and(names)}")
        done |= {"BYDAY", "BYSETPOS"}
    elif days:
        words.append("on " + _and([_weekday(d) for d in days]))
        done.add("BYDAY")
    if monthdays := get("BYMONTHDAY"):
        words.append("on " + _and([_monthday(int(d)) for d in monthdays]))
        done.add("BYMONTHDAY")
    if months := [int(str(m).rstrip("L")) for m in get("BYMONTH")]:  # "5L": a leap month
        words.append("in " + _and([MONTH_NAMES[m - 1] if 1 <= m <= 12 else str(m) for m in months]))
        done.add("BYMONTH")
    hours, minutes = [int(h) for h in get("BYHOUR")], [int(m) for m in get("BYMINUTE")]
    if hours and minutes and "BYSECOND" not in rule and all(0 <= h <= 23 for h in hours) and all(
            0 <= m <= 59 for m in minutes):  # without BYMINUTE the minute is DTSTART's, not :00
        words.append("at " + _and([f"{h:02d}:{m:02d}" for h in hours for m in minutes]))
        done |= {"BYHOUR", "BYMINUTE"}
    if rest := {k: v for k, v in rule.items() if k.upper().startswith("BY") and k.upper() not in done}:
        words.append("with " + type(rule)(rest).to_ical().decode())
    if count := get("COUNT"):
        words.append(f"({int(count[0])} times)")
    if until := get("UNTIL"):
        value = until[0]
        words.append("until " + (_time(value) if isinstance(value, datetime) else _day(value)))
    return " ".join(words)


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _weekday(code: str) -> str:
    m = re.fullmatch(r"([+-]?\d*)([A-Za-z]{2})", code.strip())
    if not m or m.group(2).upper() not in _WEEKDAY:
        return code
    day = _WEEKDAY[m.group(2).upper()]
    if not m.group(1):
        return day
    return f"the {_nth(int(m.group(1)))} {day}"


def _nth(n: int) -> str:
    return _NTH.get(n, _ordinal(n) if n > 0 else f"{_ordinal(-n)}-to-last")


def _monthday(n: int) -> str:
    return f"the {_ordinal(n)}" if n > 0 else "the last day" if n == -1 else f"the {_ordinal(-n)}-to-last day"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _person(addr) -> str:
    """``Doe, John <jd@example.com>`` (the CN name was dropped, and it is what people search for)."""
    email = _attr(addr, "email", None) or re.sub(r"^mailto:", "", str(addr), flags=re.I)
    params = getattr(addr, "params", {})
    name = str(params.get("CN", "") or "").strip()
    text = f"{name} <{email}>" if name and name != email else email
    status = str(params.get("PARTSTAT", "") or "").lower()
    return f"{text} ({status})" if status in ("declined", "tentative") else text


# ---------------------------------------------------------------- pdf

def _pdf(raw: bytes, path: Path, flags: list[str]) -> list[Item]:
    """Text of every page (pypdf, pure Python); a scanned PDF without a text layer yields nothing."""
    import io
    import logging

    from pypdf import PasswordType, PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ExtractError("encrypted PDF (needs a password)")
        pages = []
        for n, page in enumerate(reader.pages):
            try:
                pages.append(page.extract_text() or "")
            except Exception:  # one bad page must not lose the others
                flags.append(f"page {n + 1} unreadable")
        title = str((reader.metadata or {}).get("/Title") or "") if reader.metadata else ""
    except PyPdfError as exc:
        raise ExtractError(f"not a readable PDF ({' '.join(str(exc).split())[:160]})") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise ExtractError("PDF has no text layer")
    return [Item(key=path.name, title=title or _note_title(text, path), text=text)]


# ---------------------------------------------------------------- records and notes

def _scalar(value: object) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _records_of(data: object) -> list:
    """One document's records: a list's entries, or one per entry of a dict's only list of
    dicts (plus one for the rest of the dict), else the document itself."""
    if isinstance(data, dict):
        lists = [k for k, v in data.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1:  # {"trip": …, "flights": [{…}, …]}: one item per flight, one for the rest
            rest = {k: v for k, v in data.items() if k != lists[0]}
            return ([rest] if rest else []) + data[lists[0]]
        return [data]
    if isinstance(data, list):
        return data
    return [data]


def _records(text: str, suffix: str, name: str) -> list[Item]:
    try:
        if suffix == ".json":
            documents = [json.loads(text, parse_int=_integer)]
        else:
            documents = _yaml(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError, RecursionError (thousands of "[")
        raise ExtractError(f"cannot parse: {' '.join(str(exc).split())[:200]}") from None
    records = [rec for data in documents for rec in _records_of(data)]
    limit = max(MAX_RECORD_CHARS, EXPANSION * len(text))
    budget = [limit, limit]  # what is left, and the limit (for the message)
    items = []
    for n, rec in enumerate(records):
        if isinstance(rec, dict):
            # Only scalars name a record: a YAML alias bomb in "id" must not be expanded by str()
            key = next((str(rec[k]) for k in ("id", "id_", "uid") if _scalar(rec.get(k))), f"{name}#{n}")
            title = next((str(rec[k]) for k in ("title", "subject", "name", "filename")
                          if _scalar(rec.get(k)) and rec.get(k)), "")
            body = _flatten(rec, budget=budget)
        elif isinstance(rec, list):
            key, title, body = f"{name}#{n}", "", _flatten(rec, budget=budget)
        elif rec is None:  # an empty YAML file, a JSON null: nothing to index
            continue
        else:
            body = _word(rec)
            _spend(len(body), budget)
            key, title = f"{name}#{n}", ""
        items.append(Item(key=key, title=title, text=body))
    return items


# Per file, the records' text may reach this many characters, or EXPANSION times the file's own,
# if more: YAML aliases can make a few hundred bytes expand to gigabytes, while a plain JSON or
# YAML file (a 2 MB journal) expands only by its keys repeated as prefixes.
MAX_RECORD_CHARS = 1_000_000
EXPANSION = 8


def _flatten(value: object, prefix: str = "", *, budget: list[int]) -> str:
    """Every string is paid for from ``budget`` before it is built: YAML aliases let a small file
    name one long string thousands of times (as list values, or as keys of a self-nesting mapping)."""
    if isinstance(value, dict):
        _spend(1, budget)  # a mapping of empty values costs nothing else, and aliases can repeat it 10^8 times
        parts = []
        for k, v in value.items():
            if v in (None, "", [], {}):
                continue
            key = str(k)
            _spend(len(prefix) + len(key) + 1, budget)
            parts.append(_flatten(v, f"{prefix}{key}.", budget=budget))
        return "\n".join(parts)
    head = prefix.rstrip(".")
    if isinstance(value, list):
        if any(isinstance(v, (dict, list)) for v in value):
            return "\n".join(_flatten(v, prefix, budget=budget) for v in value)
        _spend(len(head) + 2, budget)
        texts = []
        for v in value:
            text = _word(v)
            _spend(len(text) + 2, budget)
            texts.append(text)
        return f"{head}: {', '.join(texts)}"
    text = _word(value)
    _spend(len(head) + 2 + len(text), budget)
    return f"{head}: {text}"


def _word(value: object) -> str:
    """A scalar as JSON and YAML write it: ``null``, ``true``, ``false`` (not Python's None, True, False)."""
    return "null" if value is None else ("true" if value else "false") if isinstance(value, bool) else str(value)


def _spend(n: int, budget: list[int]) -> None:
    if n > budget[0]:
        raise ExtractError(f"its records expand past {budget[1]:,} characters (YAML aliases?)")
    budget[0] -= n


def _integer(text: str) -> int | str:
    """A JSON integer; one over Python's 4300 digits (``int()`` refuses it) as its text."""
    try:
        return int(text)
    except ValueError:
        return text


def _yaml(text: str) -> list[object]:
    """Every document of the stream (a log written as ``---``-separated entries is many), read by
    ``yaml.safe_load_all`` with every value it can read: dates stay as written (``2024-02-30`` and
    ``2024-13-01`` raised ValueError from the timestamp constructor and lost the whole file), and
    an integer too long for ``int()`` (over 4300 digits) is kept as its text."""
    import yaml

    return list(yaml.load_all(text, Loader=_yaml_loader()))  # a SafeLoader subclass


@functools.cache
def _yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
        try:
            return loader.construct_yaml_int(node)
        except ValueError:  # over Python's 4300 digits
            return loader.construct_scalar(node)

    Loader.add_constructor("tag:yaml.org,2002:int", integer)
    # an explicit !!timestamp too: as written
    Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))
    return Loader


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S | re.M)


def _markdown_title(text: str, path: Path) -> str:
    """The front matter's ``title:`` (Jekyll, Hugo, Obsidian), else the first line after it:
    a note that opens with front matter was titled "---"."""
    m = _FRONT_MATTER.match(text)
    if not m:
        return _note_title(text, path)
    try:
        documents = _yaml(m.group(1))
        meta = documents[0] if len(documents) == 1 else None
    except Exception:  # yaml.YAMLError, RecursionError: a title is not worth losing the note for
        meta = None
    if not isinstance(meta, dict):  # "---" as a rule over text, not front matter
        return _note_title(text, path)
    title = meta.get("title")
    if _scalar(title) and str(title).strip():
        return " ".join(str(title).split())[:200]
    return _note_title(text[m.end():], path)


def _note_title(text: str, path: Path) -> str:
    for line in text.splitlines()[:5]:
        line = line.strip().lstrip("#").strip()
        if line.strip("-=*_ \t"):  # a rule ("---") or a heading's underline names nothing
            return line[:200]
    return path.stem
