"""Import presidio without the Hugging Face pipeline it probes for.

Presidio's NLP-engine package tries ``import transformers`` for optional recognizers Tether
never uses; where transformers is installed (presidio-evaluator brings it into the test
environment) that import alone costs 1–2 s of every scanning command's start. For the length of
presidio's own import, ``transformers`` reads as missing, which presidio handles (its optional
parts become unavailable); afterwards it imports normally. A process that imported transformers
before Tether keeps presidio's full behaviour.
"""

from __future__ import annotations

import sys

if "presidio_analyzer" not in sys.modules and "transformers" not in sys.modules:
    sys.modules["transformers"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import presidio_analyzer  # noqa: F401
    finally:
        del sys.modules["transformers"]
