"""One bad value in a file loses only itself: a malformed date, a NUL, a huge record file."""

from __future__ import annotations

from pathlib import Path

import pytest

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
    assert dentist.item == "dentist-1" and "Also on: Saturday 10 January 2026 (all day)" in dentist.text  # read leniently
    # a typed attribute of an ATTENDEE or CATEGORIES icalendar could not read raises the same way
    cal.write_text(CALENDAR.format(exdate="", rdate="ATTENDEE;VALUE=DATE;CN=Dr Hoover:mailto:hoover@clinic.example\n"
                                                     "CATEGORIES;VALUE=PERIOD:health\n"))
    report = index.add([cal])
    assert report.skipped == [] and report.updated == 1
    assert [h.item for h in index.search("piano lesson", 1, "bm25")] == ["piano-1"]
    dentist = index.search("dentist checkup", 1, "bm25")[0]
    assert "Attendee: Dr Hoover <hoover@clinic.example>\nCategories: health" in dentist.text


def test_a_nul_in_a_record_does_not_cut_its_vector(index: Index, tmp_path: Path) -> None:
    """The embedder's C tokenizer stops at a NUL: the record below was embedded as "x: " alone,
    and found by meaning by nothing."""
    from tether.search import embed, quant

    assert (embed.passages(["body: \x00 passport drawer"]) == embed.passages(["body:   passport drawer"])).all()
    (tmp_path / "nul.json").write_text('{"x": "\\u0000", "body": "passport drawer"}')
    (tmp_path / "garden.md").write_text("The tomatoes in the garden need water every morning.")
    (tmp_path / "car.json").write_text('{"body": "The car insurance renews in June"}')
    (tmp_path / "recipe.md").write_text("Bake the sourdough at 240 degrees for 40 minutes.")
    index.add([tmp_path])
    text, vec = index.con.execute("SELECT c.text, c.vec FROM chunks c JOIN documents d ON d.id = c.doc_id "
                                  "WHERE d.path LIKE '%nul.json'").fetchone()
    assert text == "x:  \nbody: passport drawer"  # nor do FTS and `ask` get the NUL
    assert vec == quant.to_stored(embed.passages(["x:  \nbody: passport drawer"]))[0].tobytes()
    assert Path(index.search("where did I put my passport", 1, "dense")[0].path).name == "nul.json"


def test_an_impossible_date_or_a_huge_integer_loses_neither_the_note_nor_the_records(index: Index,
                                                                                     tmp_path: Path) -> None:
    """PyYAML's timestamp and int constructors raise ValueError (not YAMLError): a note with
    ``date: 2024-02-30`` in its front matter was not indexed, and one bad date lost every record."""
    huge = "9" * 5000  # past int()'s 4300 digits
    (tmp_path / "dentist.md").write_text("---\ndate: 2024-02-30\n---\n# Dentist\n\nCall Dr Hoover about the crown.\n")
    (tmp_path / "month.md").write_text(f"---\ndate: 2024-13-01\nn: {huge}\n---\nThirteenth month plans\n")
    (tmp_path / "trips.yaml").write_text("- id: t1\n  title: Lisbon trip\n  when: 2024-02-30\n"
                                         "- id: t2\n  title: Oslo trip\n  when: 2024-06-01\n"
                                         f"- id: t3\n  title: Rome trip\n  seats: {huge}\n  booked: !!timestamp 2024-13-01\n")
    (tmp_path / "flights.json").write_text(f'[{{"id": "f1", "title": "Madrid flight", "n": {huge}}}, '
                                           '{"id": "f2", "title": "Berlin flight"}]')
    report = index.add([tmp_path])
    assert report.skipped == [] and report.added == 4
    assert index.search("crown", 1, "bm25")[0].title == "Dentist"
    assert index.search("thirteenth month", 1, "bm25")[0].title == "Thirteenth month plans"
    trips = {h.item: h.text for h in (index.search(city, 1, "bm25")[0] for city in ("Lisbon", "Oslo", "booked"))}
    assert set(trips) == {"t1", "t2", "t3"} and "when: 2024-02-30" in trips["t1"]  # dates stay as written
    assert "when: 2024-06-01" in trips["t2"] and "booked: 2024-13-01" in trips["t3"]
    assert [index.search(city, 1, "bm25")[0].item for city in ("Madrid", "Berlin")] == ["f1", "f2"]


def test_a_record_file_over_a_million_characters_is_read_when_it_does_not_expand(index: Index,
                                                                                 tmp_path: Path) -> None:
    """The budget against YAML alias bombs was a fixed 1,000,000 characters: a 1.35 MB JSON journal
    was refused as if it were one. It is now 8 times the file's own size, if that is more."""
    import json

    from tether.search.extract import ExtractError, extract

    # 1,000 entries of 2,000 characters; all but one alike, so that indexing embeds only a few chunks
    entry = "Walked along the river and wrote down the birds we saw. " * 36
    records = [{"entry": entry} for _ in range(1000)]
    records[500]["entry"] += " A kingfisher by the old mill."
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(records))
    assert journal.stat().st_size > 2_000_000
    keys = [f"journal.json#{n}" for n in range(1000)]
    assert [i.key for i in extract(journal, journal.read_bytes()).items] == keys
    report = index.add([journal])
    assert report.skipped == [] and report.added == 1 and report.embedded < 10
    assert index.search("kingfisher", 1, "bm25")[0].item == "journal.json#500"
    assert [k for (k,) in index.con.execute("SELECT DISTINCT item FROM chunks ORDER BY id")] == keys
    # a bomb in a big file is still a bomb: refused at 8 times the file's size
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefg", "bcdefgh")]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("# " + "padding " * 40_000 + "\n" + "\n".join(levels) + "\n")
    with pytest.raises(ExtractError, match=f"expand past {8 * len(bomb.read_text()):,} characters"):
        extract(bomb, bomb.read_bytes())


def test_an_empty_or_null_record_is_not_indexed_as_the_word_none(index: Index, tmp_path: Path) -> None:
    """An empty YAML file or a JSON ``null`` was indexed as a chunk reading "None" (Python's word),
    which a search for "none" then returned; true and false read "True" and "False"."""
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "null.json").write_text("null")
    (tmp_path / "list.json").write_text('[null, {"name": "Ada", "active": true, "left": false, "tags": [1, null]}]')
    report = index.add([tmp_path])
    assert report.skipped == [] and report.added == 3
    texts = [t for (t,) in index.con.execute("SELECT text FROM chunks")]
    assert texts == ["name: Ada\nactive: true\nleft: false\ntags: 1, null"]
    assert index.search("none", 5, "bm25") == []


def test_a_yaml_file_of_many_documents_indexes_each(index: Index, tmp_path: Path) -> None:
    """A ``---``-separated stream (a log, Kubernetes-style records) was refused whole: PyYAML's
    single-document loader raised "expected a single document in the stream"."""
    (tmp_path / "log.yaml").write_text("id: m1\ntitle: Dentist\nnote: crown fitting\n---\n"
                                       "id: m2\ntitle: Plumber\nnote: kitchen tap\n---\n"
                                       "- id: m3\n  title: Vet\n  note: rabies shot\n---\n"
                                       "just a line about the gutters\n---\n")
    report = index.add([tmp_path])
    assert report.skipped == [] and report.added == 1
    found = {q: index.search(q, 1, "bm25")[0] for q in ("crown", "tap", "rabies", "gutters")}
    assert {q: h.item for q, h in found.items()} == {"crown": "m1", "tap": "m2", "rabies": "m3", "gutters": "log.yaml#3"}
    assert found["tap"].title == "Plumber"
    assert index.con.execute("SELECT count(DISTINCT item) FROM chunks").fetchone()[0] == 4


def test_loose_stamps_icalendar_rejects_are_read_as_words_and_impossible_ones_kept_as_written(index: Index,
                                                                                                tmp_path: Path) -> None:
    """Exports and hand-made files write ``20240515T1000`` (no seconds) or ISO ``2024-05-16T09:30``;
    icalendar rejects both. Shown raw, qwen2.5-0.5b answered "the weekly team sync is on
    20240515T1000" (benchmarks/ask.py)."""
    cal = tmp_path / "loose.ics"
    cal.write_text("BEGIN:VCALENDAR\nVERSION:2.0\n"
                   "BEGIN:VEVENT\nUID:sync\nDTSTART:20240515T1000\nDTEND:20240515T1030\nSUMMARY:Team sync\n"
                   "END:VEVENT\n"
                   "BEGIN:VEVENT\nUID:review\nDTSTART;TZID=Europe/Paris:2024-05-16T09:30:00\nDTEND:2024-05-16T10:00Z\n"
                   "SUMMARY:Design review\nEND:VEVENT\n"
                   "BEGIN:VEVENT\nUID:leap\nDTSTART:2024-02-30T10:00\nSUMMARY:Leap day party\nEND:VEVENT\n"
                   "END:VCALENDAR\n")
    assert index.add([cal]).added == 1
    sync = index.search("team sync", 1, "bm25")[0]
    assert "Start: Wednesday 15 May 2024 10:00\nEnd: Wednesday 15 May 2024 10:30" in sync.text
    review = index.search("design review", 1, "bm25")[0]
    assert "Start: Thursday 16 May 2024 09:30 Europe/Paris\nEnd: Thursday 16 May 2024 10:00 UTC" in review.text
    assert [h.item for h in index.search("wednesday", 5, "bm25")] == ["sync"]  # the day is a word to search by
    leap = index.search("leap day party", 1, "bm25")[0]
    assert "Start: 2024-02-30T10:00" in leap.text  # no such day: as written, not guessed
