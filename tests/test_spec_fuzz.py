"""Property: any mutation of a bundled spec either loads (and counts) or raises SpecError.

Mutations: delete or duplicate lines, change numbers, insert junk characters, swap the keys of
two lines, delete characters. Bugs this found (now fixed in graphspec/spec): a non-mapping
`expect:` crashed validation; `mlp_ratio: .inf` overflowed; a depth of 99,999,999 blocks (or a
window/heads suggestion over a huge dim) never finished; DETR's `project` embedding without a
`backbone:`, or DETR's encoder and decoder swapped, reached the lowering; unknown YAML tags
and impossible dates escaped as yaml/ValueErrors.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphspec
from graphspec.spec import SpecError

SPECS = {p.name: p.read_text(encoding="utf-8") for p in sorted(graphspec.SPECS_DIR.glob("*.yaml"))}
JUNK = list(":{}[],#&*!|>'\"%@`-?=()×x\t \\") + ["\n", "0", "-1", "1e9", "null", "true", ".inf", ".nan",
                                                 "é", "~", "99999999", "1/0", "**", "&a", "*a", "!!python/object"]
NUMBERS = st.sampled_from(["0", "1", "2", "3", "7", "12", "-5", "2.5", "1e20", "99999999", "65536", "4096"]) | \
    st.integers(min_value=-3, max_value=5000).map(str)


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="graphspec-fuzz-"))
    for p in graphspec.SPECS_DIR.glob("*.yaml"):  # so that `extends:` finds its bases
        shutil.copy(p, d / p.name)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@st.composite
def mutated(draw) -> tuple[str, str]:
    name = draw(st.sampled_from(sorted(SPECS)))
    lines = SPECS[name].split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "number", "junk", "swap_keys", "drop_char"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), line)
        elif kind == "number":
            nums = list(re.finditer(r"\d+(\.\d+)?", line))
            if nums:
                m = nums[draw(st.integers(0, len(nums) - 1))]
                lines[i] = line[:m.start()] + draw(NUMBERS) + line[m.end():]
        elif kind == "junk":
            pos = draw(st.integers(0, len(line)))
            lines[i] = line[:pos] + draw(st.sampled_from(JUNK)) + line[pos:]
        elif kind == "swap_keys":
            j = draw(st.integers(0, len(lines) - 1))
            a, b = line.partition(":"), lines[j].partition(":")
            if a[1] and b[1]:
                lines[i], lines[j] = b[0] + ":" + a[2], a[0] + ":" + b[2]
        elif kind == "drop_char" and line:
            pos = draw(st.integers(0, len(line) - 1))
            lines[i] = line[:pos] + line[pos + 1:]
    return name, "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_load_or_raise_spec_error(workdir, case):
    name, text = case
    path = workdir / f"mutated_{name}"
    path.write_text(text, encoding="utf-8")
    try:
        m = graphspec.load(path)
        m.params()
        m.macs()
    except SpecError as e:
        assert str(e).strip(), "a SpecError must say something"
        assert "error:" in str(e)


@pytest.mark.parametrize("text, message", [
    ("name: x\nexpect: params=1\n", "`expect` must be a mapping"),
    ("name: x\nvars: C=32\ninput: image(224)\nembed: patches(4, dim=C)\nencoder: {dim: C, heads: 1, mlp_ratio: .inf}\n",
     "mlp_ratio must be finite"),
    ("name: x\ninput: tokens(8)\nembed: tokens(10, dim=8)\nencoder×99999999: {dim: 8, heads: 2}\n",
     "allows at most"),
    ("name: x\ninput: tokens(8)\nembed: tokens(10, dim=99999999999999999999)\n"
     "encoder×1: {dim: 99999999999999999999, heads: 99999999999999999998}\n", "not divisible"),
    ("name: x\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "expands to more than"),
    ("name: x\nvars: " + "{a: " * 80 + "1" + "}" * 80 + "\n", "nests deeper than"),
    ("!!python/object:os.system ls\n", "error"),
    ("name: x\ninput: image(height=64, width=64)\nembed: project(dim=8)\nencoder×1: {dim: 8, heads: 2}\n",
     "has no `backbone:`"),  # detr_r50.yaml with its backbone line deleted
    ("name: x\ninput: image(224)\nbackbone: resnet(layers=[9999999, 4, 6, 3])\nhead: classifier(10, pool=mean)\n",
     "graphspec allows at most 1024"),
    ("name: !!python/objectx\n", "YAML tag !!python/objectx is not allowed"),  # an unknown tag on a scalar
    ("name: x\nvars: {a: 2001-02-30}\n", "day is out of range"),  # YAML timestamps are constructed
    ("name: x\nvars: {[1]: 2}\n", "expected a plain value here"),
    ("name: x\ninput: image(64)\nembed: patches(8, dim=8)\nencoder×1: {dim: 8, heads: 2, queries: 4}\n"
     "decoder×1: {dim: 8, heads: 2}\n", "belong to a decoder"),  # detr_r50 with encoder/decoder swapped
])
def test_found_by_fuzzing(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=re.escape(message)):
        graphspec.load(path)
