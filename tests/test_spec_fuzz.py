"""Property: any mutation of a bundled spec either loads (and counts) or raises a located
SpecError: every diagnostic names file:line:column, the message is printable, and no other
exception, hang or memory blow-up ever escapes `graphspec.spec.load` or the CLI.

Mutations, as text: delete, duplicate or swap lines, change numbers (huge ones too), insert
junk, YAML tags, anchors and aliases, deep nesting, invalid bytes, other encodings, and paths
for `extends:` / `backbone.spec` (/etc/passwd, /dev/zero, a FIFO, a directory, a 2 MiB file, a
NUL); as trees: replace, delete or add values (huge integers, infinities, lone surrogates,
expressions, lists, mappings); and `--set` overrides with the same kinds of values.

Bounds per case: loading the spec within LOAD_SECONDS and LOAD_MEMORY (tracemalloc peak);
lowering and counting a spec that loads within CASE_SECONDS (a stack may legitimately have
4,096 blocks). The number of cases comes from the Hypothesis profile (tests/conftest.py):
`ci` by default, `--hypothesis-profile=long` for 10^4+.

Bugs this found (fixed in graphspec/spec): a non-mapping `expect:` crashed validation;
`mlp_ratio: .inf` overflowed; a depth of 99,999,999 blocks (or a window/heads suggestion over
a huge dim) never finished; DETR's `project` embedding without a `backbone:`, or DETR's encoder
and decoder swapped, reached the lowering; unknown YAML tags and impossible dates escaped as
yaml/ValueErrors; an undefined name printed as `Call(name=...)`; and, with the long profile
(12,000 cases, about 10 min here), an empty `!!int` (IndexError), a backbone in front of
`embed: patches` (ValueError in the lowering), `--set` of a call argument nested past Python's
parser (RecursionError), lists holding an invalid entry printed as `[<invalid>]`, and `--set`
of a list located at the spec file's old marks: see `test_found_by_fuzzing*` below.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import tracemalloc
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from graphspec.cli.main import main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphspec
from graphspec.spec import SpecError
from graphspec.spec import load as load_spec

LOAD_SECONDS = 2.0
CASE_SECONDS = 30.0
LOAD_MEMORY = 64 << 20  # bytes of Python allocations while reading and validating one spec

SPECS = {p.name: p.read_text(encoding="utf-8") for p in sorted(graphspec.SPECS_DIR.glob("*.yaml"))}
TREES = {n: yaml.safe_load(t) for n, t in SPECS.items()}
LAUGHS = ("[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], "
          "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e]]")
JUNK = list(":{}[],#&*!|>'\"%@`-?=()×x\t \\") + ["\n", "0", "-1", "1e9", "null", "true", ".inf", ".nan",
                                                 "é", "~", "99999999", "1/0", "**", "&a", "*a", "!!python/object"]
TAGS = ["!!binary ", "!!python/name:os.system ", "!!bool ", "!!int ", "!!float ", "!!str ", "!!null ", "!foo ",
        "!!timestamp ", "!!set ", "!!omap ", "! ", "!<tag:yaml.org,2002:int> ", "!!map ", "!!seq "]
HUGE = ["9" * 5000, "9" * 400, str(2**256), "1e400", "-1e400", "1e-400", "((((9**64)**64)**64)**64)**64", "9**64",
        "2**256", "sqrt(-1)", "int(1e400)", "round(1e308*10)", "10**64*10**64", "(-8)**0.5", "1/0", "0**-1",
        "min()", "max(1, none)", "int('9'*5000)", "-" * 2000 + "1", "1" + "+1" * 300, "0x" + "f" * 200]
NESTS = ["[" * 70 + "]" * 70, "[" * 3000 + "]" * 3000, "{a: " * 70 + "1" + "}" * 70, "(" * 300 + "1" + ")" * 300]
PATHS = ["/etc/passwd", "/dev/zero", "../swin_t.yaml", "fifo.yaml", "dir.yaml", "big.yaml", "zero_link.yaml",
         '"a\\0b.yaml"', "a" * 300, "swin_t.yaml", "swin_t", "bert_base.yaml", "resnet50.yaml", "", '"\\udc80.yaml"',
         "mutated.yaml", "~/x.yaml", "dir.yaml/../swin_t.yaml"]
TEXTS = ["\udc80", "\ud800x", "a\0b", "é", "\u202e", "\x85", "\ufeff", "×", "\U0001f600"]
NUMBERS = st.sampled_from(["0", "1", "2", "3", "7", "12", "-5", "2.5", "1e20", "99999999", "65536", "4096", *HUGE]) | \
    st.integers(min_value=-3, max_value=5000).map(str)
# NB: allow_subnormal=False: onnxruntime sessions (and TVM) made earlier in the same pytest process
# set flush-to-zero, and Hypothesis then refuses to draw subnormal floats (FloatingPointError).
VALUES = st.recursive(
    st.integers(-10**6, 10**6) | st.integers(-2**300, 2**300) | st.floats(allow_subnormal=False) | st.booleans()
    | st.none()
    | st.sampled_from(HUGE + NESTS + TEXTS + ["causal", "windowed(7)", "windowed(7, shift=true)", "global",
                                              "causal(window=4096)", "tokens(10, dim=8)", "segmentation(10)"])
    | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=8)
SET_VALUES = st.sampled_from(["7", "12", "0", "-1", "true", "none", "global", "windowed(7)", "[causal, global]",
                              LAUGHS, "!!binary aGVsbG8=", "!!python/object:os.system ls", "", "x" * 2000,
                              *HUGE, *NESTS, *TEXTS]) | st.text(max_size=16)


@pytest.fixture(scope="module")
def workdir():
    d = Path(tempfile.mkdtemp(prefix="graphspec-fuzz-"))
    for p in graphspec.SPECS_DIR.glob("*.yaml"):  # so that `extends:` finds its bases
        shutil.copy(p, d / p.name)
    os.mkfifo(d / "fifo.yaml")  # reading it would block
    (d / "dir.yaml").mkdir()
    (d / "big.yaml").write_text("name: big\n" + "#" * (2 << 20) + "\n")
    (d / "zero_link.yaml").symlink_to("/dev/zero")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def traced():
    tracemalloc.start()
    for p in sorted(graphspec.SPECS_DIR.glob("*.yaml")):  # one-time allocations (caches, imports) first
        load_spec(str(p))
    yield
    tracemalloc.stop()


@contextmanager
def within(seconds: float, what: str):
    def on_alarm(*_):
        raise TimeoutError(f"{what} took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def untraced():
    """tracemalloc off: the memory bound is on loading; tracing every allocation of lowering 4,096
    layers (a legitimate override) triples its time, to near CASE_SECONDS."""
    was = tracemalloc.is_tracing()
    tracemalloc.stop()
    try:
        yield
    finally:
        if was:
            tracemalloc.start()


LOCATED = re.compile(r"^\S.*:\d+:\d+: error: ", re.M)


def assert_located(e: SpecError, written: str = "") -> None:
    """`written`: the input's own text, which a message may quote (`--set vocab=<invalid>`)."""
    text = str(e)
    text.encode("utf-8")  # printable: no lone surrogates reach the terminal
    assert e.diagnostics and text.strip()
    for d in e.diagnostics:
        assert d.loc is not None and d.loc.line >= 1 and d.loc.col >= 1, f"unlocated: {d}"
        assert "malformed spec" not in d.message, f"an internal error was masked: {d}"
        for internal in ("Call(", "<invalid>"):
            assert internal in written or internal not in str(d), f"internal text: {d}"


def check(path: Path | str, overrides: list[str] = ()) -> None:
    """Load (bounded), then lower and count; only located SpecErrors may escape."""
    spec, written = None, "\n".join(overrides) + (Path(path).read_text(errors="replace") if Path(path).is_file() else "")
    for _ in range(2):  # a second try tells a blow-up from a one-time allocation (a cache filled)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]  # what Hypothesis and earlier cases keep alive
        try:
            with within(LOAD_SECONDS, "loading the spec"):
                spec = load_spec(str(path), overrides)
        except SpecError as e:
            assert_located(e, written)
        peak = tracemalloc.get_traced_memory()[1] - before
        if peak < LOAD_MEMORY:
            break
    assert peak < LOAD_MEMORY, f"loading the spec allocated {peak:,} bytes"
    if spec is None:
        return
    try:
        with untraced(), within(CASE_SECONDS, "lowering and counting"):
            m = graphspec.Model(spec, graphspec.lower(spec))
            m.params()
            m.macs()
    except SpecError as e:
        assert_located(e, written)


# -- mutations as text -------------------------------------------------------------------------
@st.composite
def mutated(draw) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(SPECS)))
    lines = SPECS[name].split("\n")
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "number", "junk", "swap_keys", "drop_char", "tag",
                                     "alias", "nest", "path", "text"]))
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        key, colon, value = line.partition(":")
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
        elif kind == "tag" and colon:
            lines[i] = key + ": " + draw(st.sampled_from(TAGS)) + value.strip()
        elif kind == "alias":
            lines.append(draw(st.sampled_from([f"x: {LAUGHS}", "x: &a [*a]", "x: &a {b: *a}", "x: *nowhere",
                                               "vars: &v {a: 1}", "y: *v", "<<: {name: merged}"])))
        elif kind == "nest" and colon:
            lines[i] = key + ": " + draw(st.sampled_from(NESTS))
        elif kind == "path":
            target = draw(st.sampled_from(PATHS))
            if "resnet50.yaml" in SPECS[name] and draw(st.booleans()):
                lines = [t.replace("resnet50.yaml", target) for t in lines]
            else:
                lines.insert(draw(st.integers(0, len(lines))), f"extends: {target}")
        elif kind == "text" and colon:
            lines[i] = key + ': "' + value.strip().replace('"', "") + draw(st.sampled_from(TEXTS))
            lines[i] = lines[i].encode("ascii", "backslashreplace").decode() + '"'  # as YAML escapes
    text = "\n".join(lines)
    encoding = draw(st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "utf-16", "latin-1", "bytes"]))
    if encoding == "bytes":
        data = bytearray(text.encode("utf-8"))
        for _ in range(draw(st.integers(1, 3))):
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        return name, bytes(data)
    return name, text.encode(encoding, "replace")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated())
def test_mutated_specs_load_or_raise_located_errors(workdir, traced, case):
    name, data = case
    path = workdir / "mutated.yaml"
    path.write_bytes(data)
    check(path)


# -- mutations as trees ------------------------------------------------------------------------
def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated_tree(draw) -> tuple[str, str]:
    import copy

    name = draw(st.sampled_from(sorted(TREES)))
    tree = copy.deepcopy(TREES[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in _paths(tree) if p]))
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        kind = draw(st.sampled_from(["replace", "delete", "add", "wrap"]))
        if kind == "replace":
            parent[path[-1]] = draw(VALUES)
        elif kind == "delete":
            del parent[path[-1]]
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "bias", "qkv_bias", "attention", "cls_token", "extends",
                                         "depths", "heads", "vars", "head"]) | st.text(max_size=8))] = draw(VALUES)
        elif kind == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
    return name, yaml.safe_dump(tree, allow_unicode=False, sort_keys=False)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated_tree())
def test_mutated_trees_load_or_raise_located_errors(workdir, traced, case):
    name, text = case
    path = workdir / "mutated.yaml"
    path.write_text(text, encoding="utf-8")
    check(path)


# -- --set overrides ---------------------------------------------------------------------------
@st.composite
def overridden(draw) -> tuple[str, list[str]]:
    name = draw(st.sampled_from(sorted(SPECS)))
    known = re.findall(r"(\w+)=", SPECS[name].partition("vars:")[2].partition("\n")[0])
    keys = st.sampled_from(known + ["encoder.attention", "decoder.attention", "embed.cls_token", "head", "name",
                                    "input", "embed", "encoder.depths", "head.classes", "backbone.spec",
                                    "extends", "vars", "encoder.layer_scale", "embed.registers",
                                    ""]) | st.text(max_size=8)
    items = draw(st.lists(st.tuples(keys, SET_VALUES), min_size=1, max_size=3))
    return name, [f"{k}={v}" for k, v in items]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(overridden())
def test_set_overrides_load_or_raise_located_errors(traced, case):
    name, overrides = case
    check(graphspec.SPECS_DIR / name, overrides)


# -- the CLI: exit 0 or 2, a located message, never a traceback --------------------------------
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mutated(), overridden(), st.sampled_from(["flops", "inspect"]))
def test_cli_exits_0_or_2_with_a_located_message(workdir, case, sets, command):
    (workdir / "mutated.yaml").write_bytes(case[1])
    args = [command, str(workdir / "mutated.yaml")] + [a for s in sets[1][:1] for a in ("--set", s)]
    with untraced(), within(CASE_SECONDS, f"graphspec {command}"):
        r = CliRunner().invoke(main, args)
    assert r.exit_code in (0, 2), (r.output, r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 2:
        assert LOCATED.search(r.output), r.output
        r.output.encode("utf-8")


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
    ("name: x\ninput: image(28)\nembed: patches(14, dim=32, pos=learned)\nencoder: {dim: 32, heads: [], depths: []}\n"
     "head: map\n", "`depths` must be a non-empty list"),  # no blocks: map() read the last stage's heads (long profile)
    ("name: x\nvars: {[1]: 2}\n", "expected a plain value here"),
    ("name: x\nexpect: !!int \n", "cannot read this value: not a int"),  # IndexError in PyYAML (long profile)
    ("name: x\ninput: image(224)\nbackbone: resnet(layers=[1, 1, 1, 1])\nembed: patches(16, dim=64)\n"
     "encoder×1: {dim: 64, heads: 2}\n",
     "a backbone's feature map reaches the transformer through `embed: project(...)`, not patches()"),  # ValueError
    ("name: x\ninput: image(224)\nbackbone: resnet(layers=[1, 1, 1, 1])\nencoder×1: {dim: 64, heads: 2}\n",
     "through `embed: project(...)`"),  # vit_b16 extending resnet50.yaml
    ("name: x\ninput: image(64)\nembed: patches(8, dim=8)\nencoder×1: {dim: 8, heads: 2, queries: 4}\n"
     "decoder×1: {dim: 8, heads: 2}\n", "belong to a decoder"),  # detr_r50 with encoder/decoder swapped
])
def test_found_by_fuzzing(tmp_path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=re.escape(message)) as ei:
        graphspec.load(path)
    assert_located(ei.value)


@pytest.mark.parametrize("spec, overrides, message", [
    ("setr_pup", ["embed.cls_token=" + "-" * 3000 + "1"], "the value of embed.cls_token is not an expression"),
    ("vit_b16", ["embed.cls_token=f("], "the value of embed.cls_token is not an expression"),  # RecursionError
    ("vit_b16", ["D=[1/0]"], "division by zero"),  # and not also `dim must be int, got [<invalid>]`
    ("pvt_small", ["encoder.dim=[64, 1/0, 320, 512]"], "division by zero"),  # not also `got <invalid>` per stage
    # the user's own text quoted back (the long profile drew it; the oracle now allows what was written)
    ("bert_base", ["vocab=<invalid>"], "cannot parse '<invalid>'"),
])
def test_found_by_fuzzing_set(spec, overrides, message):
    with pytest.raises(SpecError, match=re.escape(message)) as ei:
        graphspec.load(spec, overrides)
    assert_located(ei.value, "\n".join(overrides))
    assert all(d.loc.file.startswith("--set ") for d in ei.value.diagnostics), str(ei.value)  # not the file
