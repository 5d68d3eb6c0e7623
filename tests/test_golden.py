"""Golden files: the generated source of swin_t and gpt2 (pass pipeline `none`) and bert_base
(`default`: fused attention, token types), byte for byte.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/test_golden.py` or
`python -m graphspec.codegen.regen_golden`, and review the diff.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from graphspec.codegen.regen_golden import GOLDEN, render

HERE = Path(__file__).resolve().parent / "golden"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name):
    spec, passes = GOLDEN[name]
    got = render(spec, passes)
    path = HERE / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(got)
    want = path.read_text()
    if got != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), f"golden/{name}",
                                            "generated", n=2))
        pytest.fail(f"generated source of {spec} differs from golden/{name} "
                    f"(UPDATE_GOLDEN=1 pytest tests/test_golden.py to accept):\n{diff[:4000]}")
