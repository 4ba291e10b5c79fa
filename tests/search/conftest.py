"""Search fixtures: a small real corpus on disk and real index files (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

MAIL = """From: lily.white@gmail.com
To: emma.johnson@bluesparrowtech.com
Subject: Birthday Party
Message-ID: <party-1@example.com>

Hi Emma, I'm planning a birthday party for John next weekend at our place, starting at 6 PM.
"""

ICS = """BEGIN:VCALENDAR
VERSION:2.0
BEGIN:VEVENT
UID:dentist-42
SUMMARY:Dentist check-up
DTSTART:20240518T090000
LOCATION:Smile Dental Clinic
DESCRIPTION:Annual teeth cleaning with Dr. Hoover
END:VEVENT
END:VCALENDAR
"""

NOTE = """# Sourdough recipe

Mix 500 g flour with 350 g water and 100 g starter. Bake at 240 degrees for 40 minutes.
"""

RECORDS = """- id: 7
  title: Car insurance renewal
  body: The policy for the blue Volvo renews on June 3 with Lakeside Insurance.
- id: 8
  title: Gym membership
  body: Membership at Iron Temple costs 45 dollars a month.
"""


def write_corpus(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "mail": root / "party.eml",
        "calendar": root / "dentist.ics",
        "note": root / "notes" / "sourdough.md",
        "records": root / "records.yaml",
    }
    files["note"].parent.mkdir(exist_ok=True)
    files["mail"].write_text(MAIL)
    files["calendar"].write_text(ICS)
    files["note"].write_text(NOTE)
    files["records"].write_text(RECORDS)
    return files


def index_files(root: Path, files: dict[str, str]) -> Path:
    """``files`` (name → text) written to ``root/data`` and indexed into ``root/index.sqlite``; its path."""
    from tether.search import Index

    data = root / "data"
    data.mkdir(parents=True)
    for name, text in files.items():
        (data / name).write_text(text)
    db = root / "index.sqlite"
    idx = Index.open(db)
    idx.add([data])
    idx.close()
    return db


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    return write_corpus(tmp_path / "data")


@pytest.fixture
def index(tmp_path: Path):
    from tether.search import Index

    idx = Index.open(tmp_path / "index.sqlite")
    yield idx
    idx.close()
