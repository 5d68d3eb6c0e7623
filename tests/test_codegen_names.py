"""Constants in generated code are named by what they are, not by a value they happen to share.

codegen writes a value over a constructor argument when the value equals it (`nn.Linear(dim,
4 * dim)`); before issue 14 any argument of the same value would do, so GPT-2 medium's 1024
positions (width 1024) came out as `nn.Embedding(dim, dim)` and BERT-large's 512 positions
(width 1024) as `nn.Embedding(dim // 2, dim)`. Now a value is written over an argument of
another name only when both are widths, or both spatial sizes (NOTE: [Roles of sizes] in
codegen/exprs.py); table lengths are named or literal.
"""

from __future__ import annotations

import re

import pytest
from graphspec.codegen.exprs import Params, role

import graphspec


def _embeddings(source: str) -> dict[str, str]:
    return dict(re.findall(r"self\.(\w+) = nn\.Embedding\((.+)\)", source))


@pytest.mark.parametrize(("name", "overrides", "pos"), [
    ("gpt2", ["d=1024", "h=16", "L=1", "n_ctx=1024"], "1024"),  # GPT-2 medium: 1024 positions, width 1024
    ("gpt2", ["d=64", "h=4", "L=1", "n_ctx=128", "vocab=64"], "128"),  # 2 × width; vocab = width
    ("bert_base", ["H=64", "A=4", "L=1", "max_len=64", "seq_len=16"], "64"),  # a small BERT
    ("bert_large", ["L=1"], "512"),  # 1024 // 2
    ("bert_base", ["H=64", "A=4", "L=1", "max_len=256"], "256"),  # 4 × width
])
def test_position_table_length_is_not_written_over_the_width(name, overrides, pos):
    tables = _embeddings(graphspec.load(name, overrides).codegen())
    assert tables["pos"] == f"{pos}, dim"
    assert tables["tokens"] == "vocab, dim"
    if "types" in tables:
        assert tables["types"] == "types, dim"


def test_widths_still_follow_the_width():
    """The rule keeps what is meant: d_ff = 4 · dim, qkv = 3 · dim, attention scale over dim."""
    src = graphspec.load("gpt2", ["L=1"]).codegen()
    assert "self.fc1 = nn.Linear(dim, 4 * dim)" in src
    assert "self.scale = (dim // num_heads) ** -0.5" in src
    swin = graphspec.load("swin_t", ["encoder.depths=[2, 2, 2, 2]"]).codegen()
    assert "nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)" in swin


def test_match_refuses_arguments_of_another_kind():
    """One instance, value 1024: a width matches `dim`; a table length, heads or an unknown
    size do not (a literal then), but each matches an argument of its own name."""
    P = Params(["m"])
    P.add("dim", {"m": 1024}, source="dim")
    P.add("heads", {"m": 16}, source="heads")
    assert P.match({"m": 1024}, "in_features") == "dim"
    assert P.match({"m": 4096}, "out_features") == "4 * dim"
    assert P.match({"m": 1024}, "max_len") is None
    assert P.match({"m": 512}, "num") is None  # not dim // 2
    assert P.match({"m": 1024}, "kv_heads") is None  # a name the table does not know
    assert P.match({"m": 16}, "heads") == "num_heads"
    assert P.match({"m": 16}, "kv_heads") is None
    assert (role("out_features_1"), role("patch_size"), role("max_len")) == ("width", "spatial", None)



def test_tapped_block_outputs_are_named_by_their_depth():
    """SETR-MLA reads the outputs of blocks 6, 12, 18 and 24: the stream stays `x` through the
    slices and each tap is kept as `x6`, `x12`, `x18` (they were `shortcut`, `shortcut_1`, ...,
    with the stream itself renamed in every loop)."""
    src = graphspec.load("setr_mla").codegen()
    body = src[src.index("class SetrMla"):]
    for a, b in ((0, 6), (6, 12), (12, 18), (18, 24)):
        assert f"for blk in self.blocks[{a or ''}:{b}]:\n            x = blk(x)\n" in body
    assert "x6 = x" in body and "x12 = x" in body and "x18 = x" in body
    assert "return self.decode_head(x, x18, x12, x6)" in body
    assert "shortcut" not in body


def test_two_outputs_read_x_and_y():
    """A call with two results is `x, y = ...`, never `x_1, x1` side by side; a run of layer
    outputs keeps its numbers (DETR's decoder: x, x1, ..., x5)."""
    setr = graphspec.load("setr_mla").codegen()
    assert "x_1, y = self.streams[0](map_1)" in setr
    assert not re.search(r"\bx1\b", setr)
    detr = graphspec.load("detr_r50").codegen()
    assert "x, x1, x2, x3, x4, x5 = self.decoder(self.query_embed.weight, memory)" in detr


def test_pooling_arguments_are_named():
    """`F.max_pool2d(x, 3, 2, 1)` made the reader recall the signature; torchvision writes
    nn.MaxPool2d(kernel_size=3, stride=2, padding=1)."""
    assert "F.max_pool2d(x, kernel_size=3, stride=2, padding=1)" in graphspec.load("resnet50").codegen()


def test_setr_conv_input_width_is_an_argument():
    """SETR-Naive's head conv reads ViT-L's 1024 channels and writes 256: with no in_channels
    argument it came out as nn.Conv2d(4 * out, out), a coincidence of 1024 = 4 · 256."""
    src = graphspec.load("setr_naive").codegen()
    assert "self.conv = nn.Conv2d(in_channels, out, kernel_size=kernel, bias=False)" in src
    assert "ConvBNReLU(in_channels=1024, out=256, kernel=1)" in src


@pytest.mark.parametrize("name", ["resnet50", "detr_r50", "setr_mla", "setr_naive", "setr_pup"])
def test_every_class_has_a_docstring_of_its_own(name):
    """No placeholder `Bottleneck of resnet50.`: each class says what it is and cites its source."""
    src = graphspec.load(name).codegen()
    placeholders = re.findall(r'^class (\w+)\(nn\.Module\):\n    """\w+ of \w+\."""', src, re.M)
    assert not placeholders
