"""Bad specs: every mistake is a SpecError that names file:line:column and a fix, and the CLI
exits 2 with that message and no traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.spec import SpecError

TEXT = """\
name: tiny
vars: d_model=64, h=4, seq_len=16
input: tokens(seq_len)
embed: tokens(100, dim=d_model, pos=sinusoidal)
encoder×2: {dim: d_model, heads: h, d_ff: 4*d_model}
head: lm(tied=true)
"""

VISION = """\
name: tiny_swin
vars: img_size=224, patch=4, C=32, M=7
input: image(img_size)
embed: patches(patch, dim=C, norm=true)
encoder:
  dim: C
  depths: [2, 2]
  heads: [1, 2]
  attention: shifted_windows(M)
  downsample: patch_merging
head: classifier(10, pool=mean)
"""

# (case id, files {name: text}, spec to load, (line, token): the error points at `token`'s
# first occurrence on that line, message, fix)
CASES = [
    ("unknown_key", {"s.yaml": TEXT.replace("d_ff:", "d_fff:")}, "s.yaml", (5, "d_fff"),
     "unknown key 'd_fff' in `encoder`", "did you mean 'd_ff'?"),
    ("unknown_top_key", {"s.yaml": TEXT.replace("head:", "haed:")}, "s.yaml", (6, "haed"),
     "unknown key 'haed' in the spec", "did you mean 'head'?"),
    ("unknown_attention", {"s.yaml": TEXT.replace("heads: h,", "heads: h, attention: windowd(7),")},
     "s.yaml", (5, "windowd"), "unknown attention 'windowd'", "did you mean 'windowed'?"),
    ("wrong_type", {"s.yaml": TEXT.replace("heads: h", "heads: 2.5")}, "s.yaml", (5, "2.5"),
     "heads must be int, got 2.5", "write an int value"),
    ("wrong_type_bool", {"s.yaml": TEXT.replace("d_ff: 4*d_model", "d_ff: 4*d_model, dropout: yes")},
     "s.yaml", (5, "yes"), "dropout must be float, got true", None),
    ("heads_divisibility", {"s.yaml": TEXT.replace("h=4", "h=5")}, "s.yaml", (5, "h,"),
     "encoder width 64 is not divisible by 5 heads", "use heads in [1, 2, 4, 8]"),
    ("patch_divisibility", {"s.yaml": VISION.replace("img_size=224", "img_size=226")}, "s.yaml",
     (2, "226"), "image size 226 is not divisible by the patch size 4", "use img_size 224 or 228"),
    ("window_divisibility", {"s.yaml": VISION.replace("M=7", "M=12")}, "s.yaml", (9, "shifted_windows"),
     "window 12 does not divide the 56×56 map of stage 1", "use a window in [2, 4, 7, 8, 14, 28"),
    ("extends_cycle", {"a.yaml": "extends: b.yaml\nname: a\n", "b.yaml": "name: b\nextends: a.yaml\n"},
     "a.yaml", (2, "a.yaml"), "cycle in `extends`: a.yaml -> b.yaml -> a.yaml", "remove the `extends`"),
    ("extends_missing", {"a.yaml": "name: a\nextends: nowhere.yaml\n"}, "a.yaml", (2, "nowhere"),
     "`extends: nowhere.yaml`: no such file", "name a spec in the same folder"),
    ("undefined_variable", {"s.yaml": TEXT.replace("4*d_model", "4*d_modle")}, "s.yaml", (5, "d_modle"),
     "undefined variable 'd_modle'", "did you mean 'd_model'?"),
    ("undefined_in_vars", {"s.yaml": TEXT.replace("seq_len=16", "seq_len=4*ctx")}, "s.yaml", (2, "ctx"),
     "undefined variable 'ctx'", "declare it under `vars:`"),
    ("duplicate_key", {"s.yaml": TEXT + "input: tokens(32)\n"}, "s.yaml", (7, "input"),
     "duplicate key 'input'", "remove one of the two entries"),
    ("duplicate_nested_key", {"s.yaml": TEXT.replace("d_ff: 4*d_model", "d_ff: 4*d_model, dim: 8")},
     "s.yaml", (5, "dim: 8"), "duplicate key 'dim'", None),
    ("invalid_yaml", {"s.yaml": TEXT.replace("encoder×2: {dim: d_model,", "encoder×2: {dim: d_model")},
     "s.yaml", (5, ": h"), "invalid YAML", "check indentation"),
    ("bad_expression", {"s.yaml": TEXT.replace("4*d_model", "4*/d_model")}, "s.yaml", (5, "/d_model"),
     "cannot parse", None),
    ("tied_head_with_bias", {"s.yaml": TEXT.replace("lm(tied=true)", "lm(tied=true, bias=true)")}, "s.yaml",
     (6, "lm("), "a tied LM head has no bias of its own", "write lm(tied=false, bias=true)"),
    ("expect_not_int", {"s.yaml": TEXT + "expect: {params: lots}\n"}, "s.yaml", (7, "lots"),
     "expected figure `params` must be an integer", None),
    # issue 14, section 4: tracebacks and messages without a location or with internal text
    ("sqrt_of_negative", {"s.yaml": TEXT.replace("seq_len=16", "seq_len=16, z=sqrt(-1)")}, "s.yaml",
     (2, "sqrt"), "cannot compute sqrt(-1): math domain error", "check the arguments"),
    ("int_of_infinity", {"s.yaml": TEXT.replace("seq_len=16", "seq_len=16, z=int(1e400)")}, "s.yaml",
     (2, "1e400"), "1e400 is not a finite number", "use smaller numbers"),
    ("round_of_overflow", {"s.yaml": TEXT.replace("seq_len=16", "seq_len=16, z=round(1e308*10)")}, "s.yaml",
     (2, "1e308"), "1e308*10 is not a finite number", "use smaller numbers"),
    ("huge_power", {"s.yaml": TEXT.replace("seq_len=16", "seq_len=16, z=((((9**64)**64)**64)**64)**64")},
     "s.yaml", (2, "(9**64)**64"), "(9**64)**64 is too large (graphspec allows integers below 2**256)", None),
    ("bool_maybe", {"s.yaml": TEXT.replace("heads: h", "heads: !!bool maybe")}, "s.yaml", (5, "!!bool"),
     "cannot read this value: not a bool", "write a plain number"),
    ("unsafe_tag", {"s.yaml": TEXT.replace("heads: h", "heads: !!binary aGVsbG8=")}, "s.yaml", (5, "!!binary"),
     "YAML tag !!binary is not allowed in a spec", "remove the tag"),
    ("integer_of_5000_digits", {"s.yaml": TEXT.replace("heads: h", "heads: " + "9" * 5000)}, "s.yaml",
     (5, "9999"), "integer of 5,000 digits is too large", "write a smaller number"),
    ("integer_of_5000_digits_in_expression", {"s.yaml": TEXT.replace("4*d_model", "4*" + "9" * 5000)},
     "s.yaml", (5, "4*9"), "the expression is 5,002 characters long (at most 4,096)", "write a shorter expression"),
    ("lone_surrogate_in_name", {"s.yaml": TEXT.replace("name: tiny", 'name: "\\udc80tiny"')}, "s.yaml",
     (1, '"'), "this text holds a lone surrogate (\\udc80)", "remove it"),
    ("lone_surrogate_in_expression", {"s.yaml": TEXT.replace("d_ff: 4*d_model", 'd_ff: "4*d_model\\udc80"')},
     "s.yaml", (5, '"4*'), "lone surrogate", "remove it"),
    ("no_embed", {"s.yaml": TEXT.replace("embed: tokens(100, dim=d_model, pos=sinusoidal)\n", "")}, "s.yaml",
     (1, "name"), "the spec has no `embed:`", "add e.g. `embed: tokens(vocab, dim=d_model)`"),
    ("no_input", {"s.yaml": TEXT.replace("input: tokens(seq_len)\n", "")}, "s.yaml", (1, "name"),
     "the spec has no `input:`", "add e.g. `input: tokens(seq_len)` or `input: image(img_size)`"),
    ("head_list", {"s.yaml": TEXT.replace("lm(tied=true)", "[lm, pooler]")}, "s.yaml",
     (6, "[lm"), "head must name one construct, got [lm, pooler]", "use one of lm, classifier"),
    ("activation_list", {"s.yaml": TEXT.replace("heads: h,", "heads: h, act: [relu, gelu],")}, "s.yaml",
     (5, "[relu"), "[relu, gelu]", "use one of relu, gelu"),
    ("causal_with_argument", {"s.yaml": TEXT.replace("heads: h,", "heads: h, attention: causal(M=7),")},
     "s.yaml", (5, "causal("), "causal() has no argument 'M'", "write causal"),
    ("segmentation_on_tokens", {"s.yaml": TEXT.replace("lm(tied=true)", "segmentation(10)")}, "s.yaml",
     (6, "segmentation"), "a segmentation head decodes the patch grid of an image, but this spec embeds tokens",
     "use `input: image(img_size)` with `embed: patches"),
    # issue 14, rough edges
    ("flow_mapping_split_at_comma", {"s.yaml": TEXT.replace("heads: h,", "heads: h, attention: windowed(7, shift=true),")},
     "s.yaml", (5, "windowed"), "YAML split `attention: windowed(7, shift=true)` at the comma",
     'quote the value: `attention: "windowed(7, shift=true)"`, or write this mapping in block style'),
    ("class_token_with_windows", {"s.yaml": VISION.replace("norm=true", "norm=true, cls_token=true")}, "s.yaml",
     (4, "patches"), "a class token does not fit windowed attention", "write cls_token=false"),
    # issue 14, section 3: `extends` reads only regular files inside the spec's folder
    ("extends_outside_folder", {"a.yaml": "name: a\nextends: /etc/passwd\n"}, "a.yaml", (2, "/etc"),
     "`extends: /etc/passwd` is outside the spec's folder", "name a spec in the same folder as a.yaml"),
    ("extends_parent_folder", {"a.yaml": "name: a\nextends: ../a.yaml\n"}, "a.yaml", (2, "../"),
     "`extends: ../a.yaml` is outside the spec's folder", "copy the base spec there"),
    ("extends_nul", {"a.yaml": 'name: a\nextends: "b\\0.yaml"\n'}, "a.yaml", (2, '"b'), "NUL character", "remove"),
    ("extends_long_name", {"a.yaml": "name: a\nextends: " + "b" * 5000 + "\n"}, "a.yaml", (2, "bbb"),
     "`extends` names a file of 5,000 characters (at most 255)", "name a spec in the same folder"),
    ("extends_typo", {"a.yaml": "name: a\nextends: bse.yaml\n", "base.yaml": TEXT}, "a.yaml", (2, "bse"),
     "`extends: bse.yaml`: no such file", "did you mean 'base.yaml'?"),
    ("qk_norm_scope", {"s.yaml": TEXT.replace("heads: h,", "heads: h, qk_norm: heads,")}, "s.yaml", (5, "heads,"),
     "qk_norm 'heads' is not one of true, false, head, all", "`qk_norm: all` (all heads' dims: OLMo-2)"),
]


def where(files: dict, target: str, line: int, token: str) -> str:
    """`line:col` of `token` on `line` of the file (1-based), as the error must print it."""
    text = files[target].splitlines()[line - 1]
    return f"{line}:{text.index(token) + 1}"


def write(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_spec_error_has_location_and_fix(tmp_path, monkeypatch, case):
    _, files, target, (line, token), message, fix = case
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)  # file names print relative to the working directory
    with pytest.raises(SpecError) as ei:
        graphspec.load(target)
    text = str(ei.value)
    culprit = target if "extends" not in case[0] else next(f for f, t in files.items() if token in t)
    assert f"{culprit}:{where(files, culprit, line, token)}: error: " in text, text
    assert message in text
    if fix:
        assert "fix: " in text and fix in text


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_exits_2_without_traceback(tmp_path, monkeypatch, case):
    _, files, target, _, message, _ = case
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", target])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_every_problem_is_reported_at_once(tmp_path):
    bad = TEXT.replace("h=4", "h=5").replace("d_ff:", "d_fff:").replace("head: lm", "haed: lm")
    (tmp_path / "s.yaml").write_text(bad)
    with pytest.raises(SpecError) as ei:
        graphspec.load(tmp_path / "s.yaml")
    assert len(ei.value.diagnostics) >= 2
    assert "d_fff" in str(ei.value) and "haed" in str(ei.value)


def test_override_errors_name_the_override():
    with pytest.raises(SpecError, match=r"--set M=12:1:1: error: override 'M' names no variable"):
        graphspec.load("gpt2", ["M=12"])
    with pytest.raises(SpecError, match=r"window 12 does not divide the 56×56 map"):
        graphspec.load("swin_t", ["M=12"])


def test_subprocess_bad_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(textwrap.dedent(TEXT.replace("4*d_model", "4*d_modle")))
    exe = shutil.which("graphspec")
    cmd = [exe] if exe else [sys.executable, "-m", "graphspec.cli.main"]
    r = subprocess.run([*cmd, "inspect", str(spec)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert re.search(r"bad\.yaml:5:45: error: undefined variable 'd_modle'", r.stderr), r.stderr
    assert "fix: did you mean 'd_model'?" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
