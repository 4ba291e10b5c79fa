"""One bad value in a file loses only itself: a malformed date, a NUL, a huge record file."""

from __future__ import annotations

from pathlib import Path

from tether.search import Index

CALENDAR = """BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:piano-1
DTSTART:20260105T090000Z
SUMMARY:Piano lesson
END:VEVENT
BEGIN:VEVENT
UID:choir-1
DTSTART;TZID=Europe/Paris:20260106T190000
RRULE:FREQ=WEEKLY;COUNT=5
{exdate}SUMMARY:Choir rehearsal
END:VEVENT
BEGIN:VEVENT
UID:dentist-1
DTSTART:20260107T100000Z
{rdate}SUMMARY:Dentist checkup
END:VEVENT
END:VCALENDAR
"""


def test_a_malformed_rdate_or_exdate_loses_neither_the_calendar_nor_what_was_indexed(index: Index,
                                                                                      tmp_path: Path) -> None:
    """icalendar raises BrokenCalendarProperty (not AttributeError) for a value it could not read:
    the whole file was skipped, and the events indexed from it before were deleted."""
    cal = tmp_path / "cal.ics"
    cal.write_text(CALENDAR.format(exdate="", rdate=""))
    assert index.add([cal]).added == 1
    cal.write_text(CALENDAR.format(exdate="EXDATE;TZID=Europe/Paris:20260113T19000\n", rdate="RDATE:2026-01-10\n"))
    report = index.add([cal])
    assert report.skipped == [] and report.updated == 1
    assert [h.item for h in index.search("piano lesson", 1, "bm25")] == ["piano-1"]
    choir = index.search("choir rehearsal", 1, "bm25")[0]
    assert choir.item == "choir-1" and "Repeats: weekly (5 times), except 20260113T19000" in choir.text
    dentist = index.search("dentist checkup", 1)[0]  # the dense side has it too
    assert dentist.item == "dentist-1" and "Also on: 2026-01-10" in dentist.text
    # a typed attribute of an ATTENDEE or CATEGORIES icalendar could not read raises the same way
    cal.write_text(CALENDAR.format(exdate="", rdate="ATTENDEE;VALUE=DATE;CN=Dr Hoover:mailto:hoover@clinic.example\n"
                                                     "CATEGORIES;VALUE=PERIOD:health\n"))
    report = index.add([cal])
    assert report.skipped == [] and report.updated == 1
    assert [h.item for h in index.search("piano lesson", 1, "bm25")] == ["piano-1"]
    dentist = index.search("dentist checkup", 1, "bm25")[0]
    assert "Attendee: Dr Hoover <hoover@clinic.example>\nCategories: health" in dentist.text
