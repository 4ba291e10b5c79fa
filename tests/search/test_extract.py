"""What the readers make of real-world files: each built here byte for byte, read by ``extract``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tether.search.extract import ExtractError, extract


def mail(headers: bytes, body: bytes) -> bytes:
    return headers.replace(b"\n", b"\r\n") + b"\r\n\r\n" + body


def test_a_body_in_its_declared_charset_loses_only_its_bad_bytes() -> None:
    """A byte that is not valid in the declared charset turned the whole body into U+FFFD."""
    cp1252 = mail(b"From: a@b.c\nSubject: Rechnung\nContent-Type: text/plain; charset=windows-1252",
                  "Schöne Grüße, die Rechnung über 80 € ist fällig.".encode("cp1252") + b"\x81")
    doc = extract(Path("r.eml"), cp1252)
    assert "Schöne Grüße, die Rechnung über 80 € ist fällig.\ufffd" in doc.items[0].text and doc.flags == ["non-utf8"]
    # 镕 is GBK, not GB2312, yet mail labelled gb2312 holds it; the whole body was lost before
    gb = mail(b"From: li@x.cn\nSubject: =?gb2312?B?u+HS6Q==?=\nContent-Type: text/plain; charset=gb2312",
              "会议明天在北京举行，朱镕基".encode("gbk"))
    doc = extract(Path("g.eml"), gb)
    assert doc.items[0].title == "会议" and "会议明天在北京举行，朱镕基" in doc.items[0].text and doc.flags == []
    jp = mail(b"From: t@x.jp\nSubject: test\nContent-Type: text/plain; charset=iso-2022-jp",
              "明日の会議は東京です".encode("iso2022_jp") + b"\x80")
    doc = extract(Path("j.eml"), jp)
    assert "明日の会議は東京です\ufffd" in doc.items[0].text and doc.flags == ["non-utf8"]
    unknown = mail(b"From: a@b.c\nSubject: x\nContent-Type: text/plain; charset=x-no-such-charset", "Café".encode())
    doc = extract(Path("u.eml"), unknown)
    assert "Café" in doc.items[0].text and doc.flags == ["non-utf8"]


def test_raw_8bit_headers_are_read_in_the_declared_charset_and_flagged() -> None:
    raw = mail(b"From: Jos\xe9 <jose@example.com>\nSubject: R\xe9union \xe0 Gen\xe8ve =?utf-8?q?=E2=9C=93?=\n"
               b"Content-Type: text/plain; charset=windows-1252", "Café".encode("cp1252"))
    doc = extract(Path("h.eml"), raw)
    assert doc.items[0].title == "Réunion à Genève ✓"
    assert doc.items[0].text.startswith("From: José <jose@example.com>\n") and doc.flags == ["non-utf8"]
    utf8 = mail("Subject: Réunion\nContent-Type: text/plain; charset=utf-8".encode(), b"x")
    doc = extract(Path("u.eml"), utf8)  # raw UTF-8 (RFC 6532) is read as it is, with no flag
    assert doc.items[0].title == "Réunion" and doc.flags == []


CALENDAR = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0",
    "BEGIN:VEVENT", "UID:standup-1", "SUMMARY:Team standup",
    "DTSTART;TZID=Europe/Berlin:20260105T093000", "DTEND;TZID=Europe/Berlin:20260105T094500",
    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260227T083000Z", "EXDATE;TZID=Europe/Berlin:20260107T093000",
    'ATTENDEE;CN="Doe, John";ROLE=REQ-PARTICIPANT:mailto:jd@example.com',
    "ORGANIZER;CN=Maria Gonzalez:mailto:mg@example.com", "END:VEVENT",
    "BEGIN:VEVENT", "UID:vac-1", "SUMMARY:Vacation", "DTSTART;VALUE=DATE:20260710", "DTEND;VALUE=DATE:20260711",
    "END:VEVENT",
    "BEGIN:VEVENT", "UID:trip-1", "SUMMARY:Trip", "DTSTART;VALUE=DATE:20260801", "DTEND;VALUE=DATE:20260804",
    "END:VEVENT",
    "BEGIN:VEVENT", "UID:dent-1", "SUMMARY:Dentist", "STATUS:CANCELLED", "DTSTART:20260301T080000Z",
    "DURATION:PT1H30M", r"DESCRIPTION:Line one\NLine two\\nstill two\, with a comma", "END:VEVENT",
    "BEGIN:VTODO", "UID:todo-1", "SUMMARY:File taxes", "DUE;VALUE=DATE:20260415", "END:VTODO",
    "BEGIN:VEVENT", "UID:m-1", "SUMMARY:Book club", "DTSTART:20260105T180000",
    "RRULE:FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR;COUNT=6", "END:VEVENT",
    "END:VCALENDAR", ""])


def test_calendars_are_read_as_rfc_5545_says() -> None:
    """All-day ends are exclusive, repeats, cancellations, to-dos' due dates, durations, CN names
    and escapes were lost or wrong with the hand-written reader."""
    items = {i.key: i for i in extract(Path("c.ics"), CALENDAR.encode()).items}
    assert items["standup-1"].text == (
        "Start: Monday 5 January 2026 09:30 Europe/Berlin\nEnd: Monday 5 January 2026 09:45 Europe/Berlin\n"
        "Repeats: weekly on Monday and Wednesday until Friday 27 February 2026 08:30 UTC, "
        "except Wednesday 7 January 2026 09:30 Europe/Berlin\n"
        "Organizer: Maria Gonzalez <mg@example.com>\nAttendee: Doe, John <jd@example.com>")
    assert items["vac-1"].text == "Start: Friday 10 July 2026 (all day)"  # one day, not two
    assert items["trip-1"].text == "Start: Saturday 1 August 2026 (all day)\nEnd: Monday 3 August 2026 (all day)"
    assert items["dent-1"].title == "Dentist (cancelled)"
    assert items["dent-1"].text == ("Status: cancelled\nStart: Sunday 1 March 2026 08:00 UTC\nEnd: Sunday 1 March 2026 09:30 UTC\n"
                                    "Description: Line one\nLine two\\nstill two, with a comma")
    assert items["todo-1"].text == "Due: Wednesday 15 April 2026 (all day)"
    assert "Repeats: every 2 months on the last Friday (6 times)" in items["m-1"].text


def test_a_broken_calendar_keeps_what_it_can_and_says_so() -> None:
    """An END out of place, a raw line break in a description, a cut-off file: the events stay."""
    ics = ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSUMMARY:Choir\nBEGIN:VALARM\nACTION:DISPLAY\nEND:VEVENT\n"
           "BEGIN:VEVENT\nUID:b\nSUMMARY:Piano\nDESCRIPTION:Bring the scores\nand the metronome\nEND:VEVENT\n"
           "BEGIN:VEVENT\nUID:c\nSUMMARY:Cut off\nDTSTART:20260105T180000")
    doc = extract(Path("c.ics"), ics.encode())
    assert [i.title for i in doc.items] == ["Choir", "Piano", "Cut off"]
    assert "Description: Bring the scores\nand the metronome" in doc.items[1].text
    assert doc.flags == ["malformed-lines", "unterminated-event"]
    with pytest.raises(ExtractError, match="not an iCalendar file"):
        extract(Path("c.ics"), b"hello")


def test_a_calendar_invitation_in_a_mail_is_read_as_a_calendar() -> None:
    invite = ("BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:dent-1\r\nSUMMARY:Dentist\r\n"
              "STATUS:CANCELLED\r\nDTSTART:20260301T080000Z\r\nDURATION:PT1H30M\r\nEND:VEVENT\r\nEND:VCALENDAR")
    raw = mail(b'From: a@b.c\nSubject: Invitation\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"',
               b"--b\r\nContent-Type: text/plain\r\n\r\nSee the invitation.\r\n--b\r\n"
               b'Content-Type: text/calendar; charset="utf-8"; method=REQUEST\r\n\r\n' + invite.encode() + b"\r\n--b--\r\n")
    text = extract(Path("i.eml"), raw).items[0].text
    assert text.endswith("See the invitation.\n\nEvent: Dentist (cancelled)\nStatus: cancelled\n"
                         "Start: Sunday 1 March 2026 08:00 UTC\nEnd: Sunday 1 March 2026 09:30 UTC")
    assert "BEGIN:" not in text


def test_html_without_a_head_end_tag_and_with_a_bare_less_than_keeps_its_text() -> None:
    from tether.search.extract import _html_text

    # HTML lets </head> out: the whole body was lost; "<" before a space or digit is no tag
    assert _html_text("<html><head><meta charset=utf-8><title>Receipt</title><style>p{color:red}</style>"
                      "<body><p>Total due: 5 < 6 and 7 > 3, <3 thanks</p>") == "Total due: 5 < 6 and 7 > 3, <3 thanks"
    started = time.perf_counter()
    assert len(_html_text("5 < 6 " * 100_000 + "<head>" * 50_000)) == 600_000 - 1
    assert time.perf_counter() - started < 2  # still one linear pass
    raw = mail(b"From: a@b.c\nSubject: News\nContent-Type: text/html",
               b"<!DOCTYPE html><html><head><title>x</title><body><p>The garden party is on Sunday</p>")
    assert extract(Path("n.eml"), raw).items[0].text.endswith("The garden party is on Sunday")


def test_the_html_twin_of_a_plain_text_is_skipped_inside_a_nested_related_part() -> None:
    raw = mail(b'From: Anna <anna@example.com>\nSubject: Trip plans\nMIME-Version: 1.0\n'
               b'Content-Type: multipart/alternative; boundary="outer"',
               b"--outer\r\nContent-Type: text/plain\r\n\r\nWe fly to Lisbon on Friday.\r\n"
               b'--outer\r\nContent-Type: multipart/related; boundary="inner"\r\n\r\n'
               b"--inner\r\nContent-Type: text/html\r\n\r\n<p>We fly to Lisbon on Friday.</p><img src=cid:x>\r\n"
               b"--inner\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAADs=\r\n"
               b"--inner--\r\n--outer--\r\n")
    assert extract(Path("t.eml"), raw).items[0].text.count("Lisbon") == 1


@pytest.mark.parametrize(("note", "title"), [
    ("---\ntags: [shopping]\ntitle: Grocery list\n---\n\n# Groceries\n\nmilk, eggs\n", "Grocery list"),
    ("---\r\ntags: [shopping]\r\n---\r\n\r\n# Groceries\r\n\r\nmilk, eggs\r\n", "Groceries"),
    ("---\ntitle: [not, a, name]\n...\nWeekly plan\n", "Weekly plan"),
    ("---\nA rule over text, not front matter\n---\nmore\n", "A rule over text, not front matter"),
    ("---\ntitle: unclosed: front: matter\n", "title: unclosed: front: matter"),
])
def test_markdown_front_matter_gives_the_title(note: str, title: str) -> None:
    doc = extract(Path("n.md"), note.encode())
    assert doc.items[0].title == title and doc.items[0].text == note  # the front matter stays searchable


def test_binary_content_with_a_text_extension_is_refused_with_the_reason() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    for name in ("image.txt", "archive.md", "dump.json", "blob.eml", "cal.ics"):
        with pytest.raises(ExtractError, match="^binary content"):
            extract(Path(name), png)
    controls = bytes(range(1, 9)) * 200 + b"some words"  # no NUL, but more than one control byte in twenty
    with pytest.raises(ExtractError, match="^binary content"):
        extract(Path("c.txt"), controls)
    # text keeps its tabs, line breaks, form feeds and the ESC of a coloured log; UTF-16 its NULs
    log = b"\x1b[31mERROR\x1b[0m\tdisk full\r\n\x0cpage two\n" * 50
    assert extract(Path("build.txt"), log).items[0].text.startswith("\x1b[31mERROR")
    assert extract(Path("u16.txt"), "\ufeffpapaya".encode("utf-16-le")).items[0].text == "papaya"
    assert extract(Path("short.md"), b"copy\x7f").items[0].text == "copy\x7f"  # one stray DEL in a short note


@pytest.mark.parametrize(("rule", "words"), [
    ("FREQ=MONTHLY;COUNT=10;BYDAY=TU;BYSETPOS=2", "monthly on the second Tuesday (10 times)"),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
     "monthly on the last of Monday, Tuesday, Wednesday, Thursday and Friday"),
    ("FREQ=DAILY;BYHOUR=9,17;BYMINUTE=30", "daily at 09:30 and 17:30"),
    ("FREQ=DAILY;BYHOUR=9", "daily with BYHOUR=9"),  # the minute is DTSTART's: as written
    ("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "yearly on Monday with BYWEEKNO=20"),
    ("FREQ=MONTHLY;BYMONTHDAY=1,15;BYSETPOS=-1", "monthly on the 1st and the 15th with BYSETPOS=-1"),
])
def test_a_repeat_rule_loses_none_of_its_parts(rule: str, words: str) -> None:
    """BYSETPOS, BYHOUR and BYMINUTE were dropped: the second Tuesday read "monthly on Tuesday"."""
    ics = f"BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:r\nSUMMARY:Board meeting\nDTSTART:20260113T093000\nRRULE:{rule}\nEND:VEVENT\nEND:VCALENDAR\n"
    assert extract(Path("r.ics"), ics.encode()).items[0].text == f"Start: Tuesday 13 January 2026 09:30\nRepeats: {words}"


def test_a_mailbox_is_read_from_the_bytes_given_not_opened_again(tmp_path: Path) -> None:
    """An mbox was opened a second time by its path, after the indexer had read and hashed its
    bytes: a mailbox compacted or deleted in between gave other messages than those hashed (or a
    NoSuchMailboxError), and a file swapped for a pipe there blocked the indexer."""
    box = tmp_path / "inbox.mbox"
    box.write_bytes(b"junk before the first message\n"
                    b"From a@b.c Mon Jan  1 00:00:00 2024\nFrom: a@b.c\nSubject: Kayak trip\n\nPaddles at nine.\n\n"
                    b"From x@y.z Mon Jan  1 00:00:00 2024\n\nno headers at all\n\n"
                    b"From c@d.e Mon Jan  1 00:00:00 2024\r\nFrom: c@d.e\r\nSubject: Lunch\r\n\r\nAt noon.\r\n")
    raw = box.read_bytes()
    box.write_bytes(b"From z@z.z Mon Jan  1 00:00:00 2024\nFrom: z@z.z\nSubject: Compacted\n\nOther.\n")
    doc = extract(box, raw)
    assert [(i.key, i.title, i.text.strip()) for i in doc.items] == [
        ("inbox.mbox#0", "Kayak trip", "From: a@b.c\n\nPaddles at nine."),
        ("inbox.mbox#2", "Lunch", "From: c@d.e\n\nAt noon.")]
    assert doc.flags == ["message 1 skipped"]
    box.unlink()
    assert [i.title for i in extract(box, raw).items] == ["Kayak trip", "Lunch"]
