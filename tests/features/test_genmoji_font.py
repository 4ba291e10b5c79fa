"""Emoji creation against the installed colour emoji font: Unicode names emoji the font may not draw,
and a PNG must never come out as an empty disc. Also the CLI's --out handling."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw, ImageFont

from tether.errors import EmojiFontUnavailableError
from tether.features import genmoji
from tether.features.genmoji import Glyph, find_emoji

TINY = "smollm2-135m"
HAS_FONT = any(os.path.isfile(p) for p in genmoji.FONT_PATHS)
needs_font = pytest.mark.skipif(not HAS_FONT, reason="install Debian's fonts-noto-color-emoji (make test does)")


def _font_draws(char: str) -> bool:
    """Straight from Pillow: does the installed font draw ``char`` as one picture?"""
    size = 109
    font = ImageFont.truetype(str(genmoji.font_path()), size)
    tile = Image.new("RGBA", (size * 4, size * 2), (0, 0, 0, 0))
    ImageDraw.Draw(tile).text((size * 2, size), char, font=font, embedded_color=True, anchor="mm")
    box = tile.getbbox()
    return box is not None and box[2] - box[0] < size * 1.6


def _colours(png: bytes) -> int:
    """Distinct colours in the middle of the picture: 1 for an empty disc, hundreds for a drawn emoji."""
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    w, h = img.size
    return len(set(img.crop((w // 4, h // 4, 3 * w // 4, 3 * h // 4)).get_flattened_data()))


# Emoji 16.0, newer than the Noto Color Emoji in Debian 12/13; the last one is a ZWJ sequence the
# font draws as a person beside a pair of shoes.
NEWER = [("lighthouse", "\U0001f6d9"), ("orca", "\U0001facd"), ("pickle", "\U0001fadd"),
         ("treasure chest", "\U0001fa8e"), ("ballet dancer", "\U0001f9d1\u200d\U0001fa70")]


@needs_font
@pytest.mark.parametrize("phrase, char", NEWER)
def test_a_picture_never_uses_an_emoji_the_font_cannot_draw(phrase, char):
    if _font_draws(char):
        pytest.skip(f"this font draws {phrase}")
    assert find_emoji(phrase) == (char, phrase)  # text and SVG: the right Unicode, the viewer's font draws it
    hit = find_emoji(phrase, drawable=True)
    assert hit is None or (hit[0] != char and _font_draws(hit[0])), hit
    assert find_emoji(char, drawable=True) is None  # typed, it is no match either
    assert find_emoji("cat", prefer_face=True, drawable=True) == ("🐱", "cat face")  # what it draws is unchanged


@needs_font
def test_the_words_fallback_leads_with_what_the_font_draws():
    if _font_draws("\U0001f6d9"):
        pytest.skip("this font draws the lighthouse")
    plan = genmoji._words_plan("a lighthouse with a cat", drawable=True)
    assert plan.base == "cat" and [e.thing for e in plan.extras] == ["lighthouse"]  # to be reported unmatched
    assert genmoji._words_plan("a lighthouse with a cat").base == "lighthouse"  # text: the words' own order


@needs_font
def test_png_of_a_glyph_the_font_lacks_is_an_error_not_an_empty_disc():
    if _font_draws("\U0001f6d9"):
        pytest.skip("this font draws the lighthouse")
    with pytest.raises(EmojiFontUnavailableError, match="no picture for .* \\(lighthouse\\)"):
        genmoji.render_png([Glyph(char="\U0001f6d9", name="lighthouse", phrase="lighthouse", place="base")], "yellow")
    smile = genmoji.render_png([Glyph(char="🙂", name="slightly smiling face", phrase="x", place="base")], "yellow")
    assert _colours(smile) > 100


def _tether(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@needs_font
def test_cli_lighthouse_png_is_drawn_and_the_phrase_reported_unmatched(tmp_path):
    """The audit's case: it saved an empty yellow disc, said "saved" and exited 0."""
    if _font_draws("\U0001f6d9"):
        pytest.skip("this font draws the lighthouse")
    out = tmp_path / "lighthouse.png"
    proc = _tether("emoji", "a", "lighthouse", "-m", TINY, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "\nno emoji the font draws for: lighthouse\n" in proc.stdout, proc.stdout
    drawn = proc.stdout.split()[0]
    assert "\U0001f6d9" not in drawn and _font_draws(drawn), proc.stdout
    assert _colours(out.read_bytes()) > 100  # the base is drawn, not a bare disc


# ----------------------------------------------------------------- --out and --force

def test_cli_keeps_an_existing_out_file_and_says_so_before_the_model_runs(tmp_path):
    from tests.test_cli import assert_one_line_error

    out = tmp_path / "cat.svg"
    out.write_text("mine")
    # An unknown model would fail at loading: the error being about the file shows it came first.
    proc = _tether("emoji", "a cat", "-o", str(out), "--model", "no-such-model")
    assert proc.returncode == 1
    assert_one_line_error(proc, f"{out} already exists; pass --force to replace it")
    assert out.read_text() == "mine" and os.listdir(tmp_path) == ["cat.svg"]


def test_cli_force_replaces_the_file_whole(tmp_path):
    import xml.etree.ElementTree as ET

    out = tmp_path / "cat.svg"
    out.write_text("mine")
    proc = _tether("emoji", "a cat", "-o", str(out), "--force", "--model", TINY)
    assert proc.returncode == 0 and "saved" in proc.stdout, proc.stderr
    ET.fromstring(out.read_text())  # the new emoji, whole
    assert os.listdir(tmp_path) == ["cat.svg"]  # no temporary file left beside it
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain write makes it, not private
