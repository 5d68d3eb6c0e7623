"""Regenerate the golden files of tests/test_golden.py: `python -m graphspec.codegen.regen_golden`
(or `UPDATE_GOLDEN=1 pytest tests/test_golden.py`).

Each golden file is the generated source of a bundled spec with an explicit pass pipeline; the
test compares byte for byte, so any change to the emitter, the templates, the lowering or the
passes that alters generated code shows up as a diff to review.
"""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN = {  # file -> (bundled spec, pass pipeline)
    "swin_t.py": ("swin_t", "none"),
    "gpt2.py": ("gpt2", "none"),
    "bert_base.py": ("bert_base", "default"),
}


def render(spec: str, passes: str) -> str:
    from graphspec.codegen import generate

    import graphspec

    m = graphspec.load(spec)
    graph = m.graph
    if passes != "none":
        from graphspec.passes import run_pipeline

        graph, _ = run_pipeline(graph, passes)
    return generate(graph, m.spec)


def main(directory: str | None = None) -> int:
    from graphspec.io import atomic_write

    root = Path(directory) if directory else Path(__file__).resolve().parent.parent / "tests" / "golden"
    for name, (spec, passes) in GOLDEN.items():
        atomic_write(root / name, render(spec, passes))
        print(f"wrote {root / name}  ({spec}, passes: {passes})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
