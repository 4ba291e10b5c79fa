"""What the readers make of real-world files: each built here byte for byte, read by ``extract``."""

from __future__ import annotations

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
