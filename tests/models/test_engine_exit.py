"""A process that used a model exits quietly. llama-cpp-python frees a model in ``Llama.__del__``;
left to interpreter teardown, its C bindings are already gone and each model printed a
``TypeError: 'NoneType' object is not callable`` traceback (four at the end of every CI run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_test_process_that_streamed_exits_without_llama_cpp_teardown_tracebacks():
    # The smallest process known to show it: pytest itself, on one streaming test of this suite.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_session.py::test_stream_yields_deltas_and_final_response"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "1 passed" in proc.stdout
    assert "Exception ignored" not in proc.stderr + proc.stdout, (proc.stderr + proc.stdout)[-3000:]
