"""Resource limits on every way a spec's text gets in (issue 14, section 3): a spec file,
`extends:`, `backbone.spec` and `--set`. Each case must end within seconds in a located
SpecError (file:line:column, a fix) and exit code 2 from the CLI, never hang or traceback.
"""

from __future__ import annotations

import os
import re
import signal
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.spec import SpecError
from graphspec.spec.source import MAX_BYTES

TEXT = """\
name: tiny
vars: d_model=64, h=4, seq_len=16
input: tokens(seq_len)
embed: tokens(100, dim=d_model, pos=sinusoidal)
encoder×2: {dim: d_model, heads: h, d_ff: 4*d_model}
head: lm(tied=true)
"""
LAUGHS = ("[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], "
          "&d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], "
          "&f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e], [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]]")  # 10^7 values


@contextmanager
def within(seconds: int):
    """Fail (instead of hanging the suite) when the block takes longer than `seconds`."""
    def on_alarm(*_):
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def load_error(target, overrides=()) -> str:
    with within(10), pytest.raises(SpecError) as ei:
        graphspec.load(target, overrides)
    return str(ei.value)


def cli(args) -> str:
    with within(20):
        r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    return r.output


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- expressions: every intermediate result bounded, not only exponents -----------------------
@pytest.mark.parametrize("expr, message", [
    ("((((9**64)**64)**64)**64)**64", "(9**64)**64 is too large"),  # hung: 9**(64**5) digits
    ("2**64*2**64*2**64*2**64*2**64", "is too large"),  # each factor is allowed, the product is not
    ("1e200**2", "cannot compute 1e200**2"),
    ("1e308*10", "1e308*10 is not a finite number"),
    ("(-8)**0.5", "is not a real number"),
    ("-" * 3000 + "1", "cannot parse"),  # RecursionError in the parser
    ("1" + "+1" * 500, "nests deeper than 100 levels"),
])
def test_expression_results_are_bounded(here, expr, message):
    (here / "s.yaml").write_text(TEXT.replace("seq_len=16", f"seq_len=16, z={expr}"))
    text = load_error("s.yaml")
    assert re.search(r"s\.yaml:2:\d+: error: ", text), text
    assert message in text
    assert "fix: " in text or "not a real number" in text
    assert message in cli(["flops", "s.yaml"])


# -- --set: the same alias, nesting, size and text limits as a spec file -----------------------
@pytest.mark.parametrize("value, message", [
    (LAUGHS, "expands to more than 100000 values"),  # 1.3 GB and a hang before
    ("[" * 3000 + "]" * 3000, "nests deeper than 64 levels"),  # RecursionError before
    ("{a: " * 100 + "1" + "}" * 100, "nests deeper than 64 levels"),
    ("!!python/object:os.system ls", "YAML tag !!python/object:os.system is not allowed"),
    ("!!binary aGVsbG8=", "YAML tag !!binary is not allowed"),
    ("x" * (MAX_BYTES + 1), "characters long"),
    ("12\udc80", "lone surrogate"),  # an undecodable byte in argv (surrogateescape)
])
def test_set_values_meet_the_file_limits(value, message):
    text = load_error("swin_t", [f"M={value}"])
    assert re.search(r"--set M=.{0,64}:1:\d+: error: ", text), text[:300]
    assert message in text
    assert "fix: " in text
    assert len(text) < 1000  # the message quotes a short piece of the value, not all of it
    assert message in cli(["flops", "swin_t", "--set", f"M={value}"])


def test_plain_set_values_still_work():
    m = graphspec.load("swin_t", ["M=7", "img_size=224"])
    assert m.params() == 28_288_354  # Swin-T, timm's swin_tiny_patch4_window7_224
    assert graphspec.load("gpt2", ["decoder.attention=causal"]).params() == graphspec.load("gpt2").params()


# -- spec files, `extends:` and `backbone.spec`: regular files, a size cap, inside the folder ---
def test_spec_file_must_be_utf8(here):
    (here / "s.yaml").write_bytes(TEXT.encode().replace(b"name: tiny", b"name: ti\xffny"))
    text = load_error("s.yaml")
    assert text.startswith("s.yaml:1:9: error: the file is not valid UTF-8 (byte 0xff)"), text
    assert "fix: save the spec as UTF-8" in text
    cli(["inspect", "s.yaml"])


def test_spec_file_with_a_control_character(here):
    (here / "s.yaml").write_text(TEXT.replace("name: tiny", "name: ti\x01ny"))
    text = load_error("s.yaml")
    assert text.startswith("s.yaml:1:9: error: invalid YAML: the character #x0001 is not allowed"), text


def test_spec_file_size_is_capped(here):
    (here / "big.yaml").write_text(TEXT + "#" * MAX_BYTES + "\n")
    assert "a spec may have at most 1,048,576" in load_error("big.yaml")
    (here / "s.yaml").write_text("extends: big.yaml\nname: s\n")
    text = load_error("s.yaml")
    assert text.startswith("s.yaml:1:10: error: big.yaml is 1,048,") and "fix: " in text


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_extends_reads_only_regular_files(here, kind):
    if kind == "fifo":
        os.mkfifo(here / "base.yaml")  # reading it blocked forever before
    else:
        (here / "base.yaml").mkdir()
    (here / "s.yaml").write_text("name: s\nextends: base.yaml\n")
    text = load_error("s.yaml")
    assert text.startswith("s.yaml:2:10: error: base.yaml is not a regular file"), text
    assert "fix: name a spec file" in text
    cli(["flops", "s.yaml"])


def test_extends_is_confined_to_the_spec_folder(here):
    (here / "sub").mkdir()
    (here / "outside.yaml").write_text(TEXT)
    (here / "sub" / "s.yaml").write_text("name: s\nextends: ../outside.yaml\n")
    text = load_error("sub/s.yaml")
    assert text.startswith("sub/s.yaml:2:10: error: `extends: ../outside.yaml` is outside the spec's folder")
    (here / "sub" / "link.yaml").symlink_to(here / "outside.yaml")  # a symlink out of the folder
    (here / "sub" / "s.yaml").write_text("name: s\nextends: link.yaml\n")
    assert "`extends: link.yaml` is outside the spec's folder" in load_error("sub/s.yaml")
    (here / "sub" / "dev.yaml").symlink_to("/dev/zero")  # read 3.4 GB before
    (here / "sub" / "s.yaml").write_text("name: s\nextends: dev.yaml\n")
    assert "`extends: dev.yaml` is outside the spec's folder" in load_error("sub/s.yaml")
    (here / "sub" / "s.yaml").write_text("name: s\nextends: /etc/passwd\n")
    assert "fix: name a spec in the same folder as sub/s.yaml" in cli(["flops", "sub/s.yaml"])


def test_extends_inside_the_folder_still_works(here):
    (here / "base.yaml").write_text(TEXT)
    (here / "s.yaml").write_text("extends: base.yaml\nname: s\nvars: h=8\n")
    assert graphspec.load("s.yaml").spec.stacks[0].heads == (8,)
    assert graphspec.load("bert_large").params() == 335_141_888  # bundled: extends bert_base.yaml


def test_backbone_spec_is_confined_and_regular(here):
    detr = (graphspec.SPECS_DIR / "detr_r50.yaml").read_text()
    assert "spec: resnet50.yaml" in detr
    line = next(i for i, t in enumerate(detr.splitlines(), 1) if "spec: resnet50.yaml" in t)
    for ref, message in [("/etc/passwd", "`backbone.spec: /etc/passwd` is outside the spec's folder"),
                         ("../resnet50.yaml", "is outside the spec's folder"),
                         ("fifo.yaml", "fifo.yaml is not a regular file")]:
        (here / "d.yaml").write_text(detr.replace("resnet50.yaml", ref))
        if ref == "fifo.yaml" and not (here / ref).exists():
            os.mkfifo(here / ref)
        text = load_error("d.yaml")
        assert re.match(rf"d\.yaml:{line}:\d+: error: ", text), text
        assert message in text and "fix: " in text


@pytest.mark.parametrize("name, message", [
    ("a" * 5000, "cannot read spec aaaa"),  # OSError: File name too long, before
    ("sw\udcffin_t", "cannot read spec sw\\udcffin_t"),  # an undecodable byte in argv, printed escaped
    ("/dev/zero", "/dev/zero is not a regular file"),
    ("/tmp", "/tmp is not a regular file"),
])
def test_spec_argument_that_is_no_spec_file(name, message):
    out = cli(["flops", name])
    assert out.startswith("error: ") and message in out and "fix: " in out
    assert len(out) < 400


def test_missing_bundled_name_suggests_the_closest():
    out = cli(["flops", "swin_tt"])
    assert "error: cannot read spec swin_tt" in out
    assert "fix: did you mean 'swin_t'?" in out


# -- the rest of a spec's values -------------------------------------------------------------
def test_yaml_integers_are_bounded(here):
    (here / "s.yaml").write_text(TEXT.replace("heads: h", f"heads: {2**300}"))
    text = load_error("s.yaml")
    assert text.startswith("s.yaml:5:") and "is too large (graphspec allows integers below 2**256)" in text


def test_bias_false_turns_off_the_qkv_biases_too(here):
    """`bias: false` as Hugging Face's `bias` / `attention_bias`: no bias in any attention or MLP
    linear, unless `qkv_bias: true` keeps them on q, k and v."""
    def params(extra: str) -> int:
        (here / "s.yaml").write_text(TEXT.replace("d_ff: 4*d_model", "d_ff: 4*d_model" + extra))
        return graphspec.load("s.yaml").params()

    full = params("")
    # per block: q, k, v, proj biases 4*64, fc1 256, fc2 64 -> 576; two blocks: 1,152
    assert full - params(", bias: false") == 2 * (4 * 64 + 256 + 64)
    assert full - params(", bias: false, qkv_bias: true") == 2 * (64 + 256 + 64)
    assert full - params(", qkv_bias: false") == 2 * 3 * 64


def test_a_huge_head_count_gets_its_fix_at_once():
    """The long fuzz profile found `--set h=9**64` on gemma2_2b looping in the k/v-groups fix
    (it listed the divisors of h by trying every number up to h): now a located exit 2 within
    seconds, the fix naming true divisors of h."""
    out = cli(["flops", "gemma2_2b", "--set", "h=9**64"])
    assert re.search(r"gemma2_2b\.yaml:\d+:\d+: error: \d+ query heads do not split into 4 k/v head groups", out)
    named = [int(x) for x in re.search(r"use kv_heads in \[([\d, ]+)\]", out).group(1).split(", ")]
    assert named and all(9**64 % d == 0 for d in named)


def test_a_set_value_with_a_line_break_keeps_its_location_on_the_error_line():
    """The long fuzz profile: `--set 'vocab=:\\n'` printed `--set vocab=:` and `:1:1: error: ...` on two
    lines (the value's newline in the location), so the error line had no file:line:col."""
    out = cli(["flops", "bert_base", "--set", "vocab=:\n"])
    assert re.search(r"^--set vocab=:\\n:1:1: error: cannot parse ':'", out, re.M), out
