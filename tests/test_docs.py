"""The examples in docs/ are real: every complete spec in docs/spec_dsl.md loads and counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import graphspec

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCKS = re.findall(r"```yaml\n(.*?)```", (DOCS / "spec_dsl.md").read_text(encoding="utf-8"), re.S)
COMPLETE = [b for b in BLOCKS if re.search(r"^name: ", b, re.M) and "extends:" not in b]


def test_there_are_examples():
    assert len(COMPLETE) >= 10


@pytest.mark.parametrize("text", COMPLETE, ids=[re.search(r"^name: (\w+)", b, re.M)[1] for b in COMPLETE])
def test_dsl_example_loads(tmp_path, text):
    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    m = graphspec.load(path)
    assert m.params() > 0 and m.macs() > 0


CHECKED = [b for b in COMPLETE if re.search(r"^expect:", b, re.M)]


def test_there_are_checked_examples():
    assert len(CHECKED) >= 5


@pytest.mark.parametrize("text", CHECKED, ids=[re.search(r"^name: (\w+)", b, re.M)[1] for b in CHECKED])
def test_dsl_example_figures_are_what_the_code_gives(tmp_path, text):
    """An example's `expect:` figures (worked out by hand in its comments) are checked as
    `graphspec flops --check` checks a bundled spec's: a wrong figure in the docs fails here."""
    from click.testing import CliRunner
    from graphspec.cli.main import main

    path = tmp_path / "example.yaml"
    path.write_text(text, encoding="utf-8")
    r = CliRunner().invoke(main, ["flops", str(path), "--check"])
    assert r.exit_code == 0, r.output
    assert "all figures match" in r.output


def test_extends_example_is_the_bundled_spec():
    block = next(b for b in BLOCKS if "extends: bert_base.yaml" in b)
    bundled = (graphspec.SPECS_DIR / "bert_large.yaml").read_text(encoding="utf-8")
    for line in block.splitlines()[1:]:
        assert line.strip() in bundled


def test_windows_example_uses_shift():
    text = next(b for b in COMPLETE if "name: windows" in b)
    assert "shifted_windows(M)" in text


def _n(text: str) -> int:
    return int(text.replace(",", ""))


def test_conventions_swin_table_is_what_the_code_gives():
    from graphspec import analysis

    doc = (DOCS / "conventions.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (swin_\w+)(?: \(384\))? \| [^|]* = ([\d,]+) \| ([\d,]+) \| ([\d,]+) \(", doc, re.M)
    assert len(rows) == 5
    for name, quirk, swin, official in rows:
        m = graphspec.load(name)
        assert analysis.swin_flops_quirk(m.spec, m.graph) == _n(quirk)
        assert m.macs("swin") == _n(swin)
        assert m.macs("swin") + _n(quirk) == _n(official)


def test_conventions_vit_table_is_what_the_code_gives():
    doc = (DOCS / "conventions.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (vit_\w+|deit_\w+)( @384)?(?: = deit_b)? \| ([\d,]+) \| ([\d,]+) \|", doc, re.M)
    assert len(rows) == 5
    for name, at384, macs, paper in rows:
        m = graphspec.load(name, ["img_size=384"] if at384 else [])
        assert (m.macs(), m.macs("swin-paper")) == (_n(macs), _n(paper))


def test_readme_spec_table_is_what_the_code_gives():
    """Every row of README.md's table of bundled specs: the exact parameter count (and active
    parameters, MACs where given) of the spec it names (setr_naive / pup / mla: one row, three)."""
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| spec | params (exact) |"):].split("\n\n")[0]
    rows = re.findall(r"^\| ([a-z][\w /()]*?) \| ([\d,]+[^|]*)\| ([^|]+) \|", table, re.M)
    assert len(rows) >= 30
    for names, params, macs in rows:
        first, *more = names.split(" / ")
        specs = [first.split(" (")[0]] + [first.split("_")[0] + "_" + m for m in more]
        counts = re.findall(r"[\d,]{5,}", params)
        mac_counts = re.findall(r"[\d,]{5,}", macs) if not macs.strip().startswith(("–", "-")) else []
        for i, name in enumerate(specs):
            m = graphspec.load(name)
            assert _n(counts[i if len(specs) > 1 else 0]) == m.params(), name
            if "active" in params:
                assert _n(counts[1]) == m.active_params(), name
            if mac_counts and len(specs) == 1:
                assert _n(mac_counts[0]) == m.macs(), name
