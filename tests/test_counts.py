"""The IR's parameter and MAC counts equal the exact reference figures for every bundled spec."""

from __future__ import annotations

import pytest
import reference as ref  # tests/reference.py

import graphspec
from graphspec import analysis

BUNDLED = sorted(p.stem for p in graphspec.SPECS_DIR.glob("*.yaml"))
SWIN = sorted(ref.OFFICIAL_FLOPS)


@pytest.fixture(scope="module")
def models():
    return {name: graphspec.load(name) for name in BUNDLED}


def test_reference_covers_every_bundled_spec():
    assert set(ref.PARAMS) == set(BUNDLED)
    assert set(ref.MACS) == set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED)
def test_params(models, name):
    assert models[name].params() == ref.PARAMS[name]


@pytest.mark.parametrize("name", BUNDLED)
def test_macs_default_convention(models, name):
    assert models[name].macs() == ref.MACS[name]


@pytest.mark.parametrize("name", BUNDLED)
def test_spec_expect_blocks_agree_with_reference(models, name):
    """The `expect:` blocks (used by `graphspec flops --check`) hold the same integers."""
    e = models[name].spec.expect
    assert e.get("params", ref.PARAMS[name]) == ref.PARAMS[name]
    assert e.get("macs", ref.MACS[name]) == ref.MACS[name]
    if "official_flops" in e:
        assert e["official_flops"] == ref.OFFICIAL_FLOPS[name]
    if "macs_swin_paper" in e:
        assert e["macs_swin_paper"] == ref.MACS_SWIN_PAPER[name]


def test_nlp_mac_formulas():
    """The NLP literals in reference.py are their formulas (guards against typos)."""
    N = 128

    def block(d, f):  # self-attention 4Nd² + 2N²d, FFN 2Ndf
        return 4 * N * d * d + 2 * N * N * d + 2 * N * d * f

    def dec_block(d, f):  # + cross attention over N memory tokens
        return block(d, f) + 4 * N * d * d + 2 * N * N * d

    assert ref.MACS["gpt2"] == 12 * block(768, 3072) + N * 768 * 50257
    assert ref.MACS["gpt"] == 12 * block(768, 3072) + N * 768 * 40478
    assert ref.MACS["bert_base"] == 12 * block(768, 3072) + 768 * 768
    assert ref.MACS["bert_large"] == 24 * block(1024, 4096) + 1024 * 1024
    assert ref.MACS["transformer_base"] == 6 * block(512, 2048) + 6 * dec_block(512, 2048) + N * 512 * 37000
    assert ref.MACS["transformer_big"] == 6 * block(1024, 4096) + 6 * dec_block(1024, 4096) + N * 1024 * 37000


# -- Swin: official flops() = "swin" convention + the final-norm quirk --------------------------
@pytest.mark.parametrize("name", SWIN)
def test_swin_official_flops_minus_quirk(models, name):
    m = models[name]
    quirk = analysis.swin_flops_quirk(m.spec, m.graph)
    assert quirk == ref.SWIN_QUIRK[name]
    assert m.macs("swin") == ref.OFFICIAL_FLOPS[name] - ref.SWIN_QUIRK[name]


def test_swin_t_official_flops_arithmetic(models):
    m = models["swin_t"]
    # 4,494,405,120 − 768·(56·56//2⁴ − 56·56//4³) = 4,494,405,120 − 112,896 = 4,494,292,224
    assert m.macs("swin") == 4_494_292_224
    assert m.macs("swin") + 112_896 == 4_494_405_120
    # 47,105,253,376 − 1024·(96·96//2⁴ − 96·96//4³) = 47,105,253,376 − 442,368 = 47,104,811,008
    assert models["swin_b_384"].macs("swin") + 442_368 == 47_105_253_376


def test_swin_t_per_stage_breakdown(models):
    g = models["swin_t"].graph
    rows = analysis.by_module(g, analysis.Convention.named("swin"), depth=1)
    for stage in ("patch_embed", "layers.0", "layers.1", "layers.2", "layers.3"):
        assert rows[stage]["macs"] == ref.SWIN_T_STAGES[stage], stage
    # final norm: true 49·768 = 37,632 + quirk 112,896 = 150,528; head 768·1000 = 768,000
    tail = rows["norm"]["macs"] + ref.SWIN_QUIRK["swin_t"] + rows["head"]["macs"]
    assert tail == 37_632 + 112_896 + 768_000 == ref.SWIN_T_STAGES["final_norm_quirk+head"]


def test_swin_t_without_layernorm_is_torchvision(models):
    # torchvision swin_t _ops 4.491 = official flops() − LayerNorm terms
    assert round(models["swin_t"].macs() / 1e9, 3) == 4.491
    assert round(models["swin_b"].macs() / 1e9, 3) == 15.431


def test_swin_relative_position_tables(models):
    # (2M−1)²·heads per block: Swin-T 169·(2·3 + 2·6 + 6·12 + 2·24) = 169·138 = 23,322
    g = models["swin_t"].graph
    tables = {k: v for k, v in analysis.parameters(g).items() if k.endswith("relative_position_bias_table")}
    assert sum(a * b for a, b in tables.values()) == 23_322
    assert ref.PARAMS["swin_b_384"] - ref.PARAMS["swin_b"] == (529 - 169) * 376 == 135_360


# -- ViT: Swin Table 1 convention --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ref.MACS_SWIN_PAPER))
def test_vit_swin_paper_convention(models, name):
    assert models[name].macs("swin-paper") == ref.MACS_SWIN_PAPER[name]


def test_vit_b16_swin_paper_arithmetic():
    # 12 blocks × (12·N·D² + 2·N²·D) with N = 196 patches, D = 768, + patch conv 196·768·768
    N, D = 196, 768
    assert 12 * (12 * N * D * D + 2 * N * N * D) + N * D * 3 * 16 * 16 == ref.MACS_SWIN_PAPER["vit_b16"]


def test_swin_paper_convention_needs_the_relowered_graph(models):
    with pytest.raises(ValueError, match="counted_graph"):
        analysis.macs(models["vit_b16"].graph, analysis.Convention.named("swin-paper"))


@pytest.mark.parametrize("published, name, key", [
    (4.5, "swin_t", "official"), (8.7, "swin_s", "official"), (15.4, "swin_b", "official"),
    (47.1, "swin_b_384", "official"),  # README; the paper's 47.0 does not reproduce
    (17.5, "vit_b16", "swin-paper"), (55.4, "vit_b16_384", "swin-paper"), (4.6, "deit_s", "swin-paper"),
])
def test_published_g_values_round(models, published, name, key):
    m = models[name]
    v = m.macs("swin") + analysis.swin_flops_quirk(m.spec, m.graph) if key == "official" else m.macs(key)
    assert abs(v / 1e9 - published) <= 0.05


def test_swin_l_384_published_is_a_truncation(models):
    # 103,952,265,216 → 103.95; printed 103.9 (needs a 0.053G tolerance)
    m = models["swin_l"]
    v = m.macs("swin") + analysis.swin_flops_quirk(m.spec, m.graph)
    assert int(v / 1e8) / 10 == 103.9
    assert abs(v / 1e9 - 103.9) <= 0.053


# -- NLP: published totals and their pieces -----------------------------------------------------
@pytest.mark.parametrize("name", ["transformer_base", "transformer_big"])
def test_transformer_embedding_split(models, name):
    g = models[name].graph
    emb = analysis.by_module(g, depth=1)["embed"]["params"]
    assert emb == ref.TRANSFORMER_EMBEDDING[name]
    assert ref.PARAMS[name] - emb == ref.TRANSFORMER_NON_EMBEDDING[name]


def test_transformer_published_within_5_percent(models):
    # 65M / 213M cannot both come from one vocabulary: test with ~5% tolerance (docs/conventions.md)
    assert abs(models["transformer_base"].params() / 65e6 - 1) < 0.05
    assert abs(models["transformer_big"].params() / 213e6 - 1) < 0.05


@pytest.mark.parametrize("name", ["bert_base", "bert_large"])
def test_bert_embeddings(models, name):
    assert analysis.by_module(models[name].graph, depth=1)["embed"]["params"] == ref.BERT_EMBEDDINGS[name]


def test_gpt2_minus_gpt():
    assert ref.PARAMS["gpt2"] - ref.PARAMS["gpt"] == ref.GPT2_MINUS_GPT
    assert ref.GPT2_MINUS_GPT == (50257 - 40478) * 768 + (1024 - 512) * 768 + 2 * 768


def test_gpt2_117m_reconstruction():
    m = graphspec.load("gpt2", ["vocab=40478"])
    assert round(m.params() / 1e6, 2) == ref.GPT2_SMALL_WITH_GPT_VOCAB_M  # 116.93 → "117M"


# -- figures reached with --set -----------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(ref.OVERRIDES))
def test_override_figures(key):
    name, overrides = key
    m = graphspec.load(name, list(overrides))
    want = ref.OVERRIDES[key]
    assert m.params() == want["params"]
    assert m.macs() == want["macs"]
    if "official_flops" in want:
        assert m.macs("swin") + analysis.swin_flops_quirk(m.spec, m.graph) == want["official_flops"]
    if "macs_swin_paper" in want:
        assert m.macs("swin-paper") == want["macs_swin_paper"]
