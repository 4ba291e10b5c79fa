"""A proofread leaves code, links, addresses and paths as written, on the default model."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tether.features import writing
from tether.features._common import clean_output

SMALL = "qwen2.5-0.5b"

DOC = """Teh server runs on port 8080 at https://exmaple.com/api/v2?key=abc_123 .
Run this comand:

```python
def add(a, b):
    retrun a + b
```

Our budjet is $1,250.40."""


@pytest.mark.quality
def test_proofread_fixes_the_prose_but_not_a_link_or_code(small):
    """The 0.5B model "corrected" exmaple.com to example.com (another site) and retrun in the
    code block; the prose's typos are still fixed. It also opened with "The text has several
    spelling, grammar, and punctuation issues. Here's the corrected version:", which with
    rewording allowed went into the user's text."""
    for keep_wording in (True, False):
        result = writing.proofread(DOC, model=SMALL, keep_wording=keep_wording)
        assert "https://exmaple.com/api/v2?key=abc_123" in result.corrected
        assert "    retrun a + b\n```" in result.corrected
        assert "budget" in result.corrected and "command" in result.corrected
        assert result.corrected.startswith("Teh server runs")
        assert writing.apply_edits(DOC, result.edits) == result.corrected
        spans = writing.verbatim_spans(DOC)
        assert not any(writing._inside(e, spans) for e in result.edits + result.undone)


def test_a_remark_before_heres_the_corrected_version_is_no_part_of_the_answer():
    source = "Teh plan.\n\nOur budjet."
    answer = 'The text has two spelling issues. Here\'s the corrected version:\n\n"The plan.\n\nOur budget.'
    assert clean_output(answer, source) == "The plan.\n\nOur budget."
    # the user's own words stay: a sentence that goes on after its colon, a leading apostrophe
    assert clean_output("Three groups met. Here is what they decided: X", "x") == \
        "Three groups met. Here is what they decided: X"
    assert clean_output("'Tis the season.", "'tis the season") == "'Tis the season."


def test_verbatim_spans_are_code_links_addresses_and_paths():
    text = ("Mail jon.doe@exmaple.com or see www.exmaple.org/teh. Config at ~/.acme/config.toml and "
            "/usr/lcoal/bin, C:\\Users\\teh\\file.txt, ping @maria.k, run `pip instal x`, and/or 24/7.\n"
            "```\nunclosed code")
    found = [text[a:b] for a, b in writing.verbatim_spans(text)]
    assert found == ["jon.doe@exmaple.com", "www.exmaple.org/teh", "~/.acme/config.toml", "/usr/lcoal/bin",
                     "C:\\Users\\teh\\file.txt", "@maria.k", "`pip instal x`", "```\nunclosed code"]


NOTE = """hey, to fix the build just run this:

```bash
pip install -e ".[dev]" && pytest -x tests/unit
```

then push to the `release/2.4` branch and ping me. docs are at https://docs.acme.io/build#ci
"""


@pytest.mark.quality
def test_a_rewrite_that_drops_a_link_says_so(small):
    """The 0.5B model's professional rewrite of this note left its docs link out, unsaid."""
    run = subprocess.run([sys.executable, "-m", "tether", "rewrite", "--tone", "professional", "-m", SMALL, "-t", NOTE],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    if "https://docs.acme.io/build#ci" not in run.stdout.split("(warning")[0]:
        assert "(warning: the rewrite dropped or changed https://docs.acme.io/build#ci)" in run.stdout
    result = writing.rewrite(NOTE, "professional", model=SMALL)
    assert result.missing_links == ([] if "https://docs.acme.io/build#ci" in result.text
                                    else ["https://docs.acme.io/build#ci"])
