"""PVT (Wang et al. 2021, "Pyramid Vision Transformer", arXiv:2102.12122): parameters and MACs of
Hugging Face's PvtForImageClassification (configs, no hub) against the bundled specs and a
formula, a small PVT's generated module with HF weights against HF, spatial-reduction attention
as a sympy identity, the depthwise conv of CPVT's PEG against torch, and located errors."""

from __future__ import annotations

import math

import pytest
import torch

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402
from graphspec.codegen import emit, load  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import graphspec  # noqa: E402
from graphspec import analysis  # noqa: E402
from graphspec.ops import get  # noqa: E402
from graphspec.weights import from_graphspec, to_graphspec  # noqa: E402


def pvt_macs(depths, dims=(64, 128, 320, 512), R=(8, 4, 2, 1), mlp=(8, 8, 4, 4), img=224, patches=(4, 2, 2, 2),
             classes=1000, channels=3) -> int:
    """PVT's MACs by formula, batch 1: per stage, the patch embedding conv h²·C·C_in·p² and per
    block q N·C², the reduction conv (h/R)²·C·C·R² = h²C² (R > 1), k and v 2·S·C², QKᵀ and ·V
    2·N·S·C, proj N·C², MLP 2·N·C·(ratio·C), with h the stage's map, N = h² tokens (+1 class
    token in the last stage) and S = (h/R)² reduced tokens (N when R = 1); then the head.
    NB: LayerNorm, softmax, GELU, bias and position adds are not counted."""
    total, h, c_in = 0, img, channels
    for i, (d, C, r, m, p) in enumerate(zip(depths, dims, R, mlp, patches, strict=True)):
        h //= p
        total += h * h * C * c_in * p * p
        N = h * h + (i == len(depths) - 1)
        S = (h // r) ** 2 if r > 1 else N
        total += d * (N * C * C + (h * h * C * C if r > 1 else 0) + 2 * S * C * C + 2 * N * S * C + N * C * C
                      + 2 * N * C * m * C)
        c_in = C
    return total + dims[-1] * classes


def counted_flops(model: torch.nn.Module, *args) -> int:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(*args)
    return fc.get_total_flops()


@pytest.mark.parametrize("depths, params", [((3, 4, 6, 3), 24_485_864), ((2, 2, 2, 2), 13_229_288)])
def test_hf_pvt_parameters_on_meta(depths, params):
    hf = hf_ref.meta(transformers.PvtForImageClassification, hf_ref.pvt_config(depths))
    assert hf_ref.n_params(hf) == params


def pvt_block_params(C: int, R: int, ratio: int) -> int:
    """q, k, v, proj 4C² + 4C; MLP 2·ratio·C² + ratio·C + C; two LayerNorms 4C; where R > 1 the
    reduction conv C·C·R² + C and its LayerNorm 2C."""
    return 4 * C * C + 4 * C + 2 * ratio * C * C + ratio * C + C + 4 * C + (C * C * R * R + 3 * C if R > 1 else 0)


def test_pvt_small_minus_tiny_is_eight_blocks():
    # Small − Tiny = 1, 2, 4 and 1 more blocks of stages 1-4: 345,344 + 2·657,024 + 4·1,642,560 + 3,155,456
    assert pvt_block_params(64, 8, 8) == 345_344
    extra = pvt_block_params(64, 8, 8) + 2 * pvt_block_params(128, 4, 8) + 4 * pvt_block_params(320, 2, 4) \
        + pvt_block_params(512, 1, 4)
    assert extra == 24_485_864 - 13_229_288 == 11_256_576


def test_pvt_small_macs_formula_against_flop_counter():
    """FlopCounterMode/2 on Hugging Face's PVT-Small with eager attention at 224²: convolutions
    (patch embeddings and reduction convs), linears (addmm) and attention's bmm, and nothing
    else (its position-embedding interpolation is not counted)."""
    torch.manual_seed(0)
    cfg = hf_ref.pvt_config((3, 4, 6, 3), attn_implementation="eager")
    flops = counted_flops(transformers.PvtForImageClassification(cfg), torch.zeros(1, 3, 224, 224))
    assert flops == 2 * pvt_macs((3, 4, 6, 3)) == 2 * 3_815_701_504


def test_pvt_tiny_macs_formula():
    # one more stage-1 block (56², C = 64, R = 8, 49 reduced tokens): q 3136·64² + SR conv 3136·64²
    # + k, v 2·49·64² + QKᵀ, ·V 2·3136·49·64 + proj 3136·64² + MLP 2·3136·64·512
    # = 3·12,845,056 + 401,408 + 19,668,992 + 205,520,896 = 264,126,464
    assert pvt_macs((3, 2, 2, 2)) - pvt_macs((2, 2, 2, 2)) == 264_126_464
    assert pvt_macs((2, 2, 2, 2)) == 1_932_911_616


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (1, 0)])
def test_depthwise_conv_matches_torch(stride, padding):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(12, 12, 3, stride=stride, padding=padding, groups=12)
    x = torch.randn(2, 12, 9, 7)
    d = get("depthwise_conv2d")
    attrs = dict(channels=12, kernel=3, stride=stride, padding=padding)
    want = conv(x)
    assert d.shape(tuple(x.shape), **attrs) == tuple(want.shape)
    assert d.params(tuple(x.shape), **attrs) == {"weight": tuple(conv.weight.shape), "bias": (12,)}
    with torch.no_grad():
        got = d.eval({"weight": conv.weight, "bias": conv.bias}, x, **attrs)
        assert torch.allclose(got, want, atol=1e-6)
        # MACs: numel(out)·k², what FlopCounterMode counts for a grouped conv (÷ 2)
        assert 2 * d.macs(tuple(want.shape), tuple(x.shape), **attrs) == counted_flops(conv, x)


# -- the bundled specs against Hugging Face's PvtForImageClassification ---------------------------


@pytest.mark.parametrize("name, depths", [("pvt_small", (3, 4, 6, 3)), ("pvt_tiny", (2, 2, 2, 2))])
def test_parameters_to_the_unit_per_stage(name, depths):
    hf = hf_ref.meta(transformers.PvtForImageClassification, hf_ref.pvt_config(depths))
    m = graphspec.load(name)
    assert m.params() == hf_ref.n_params(hf)
    params = analysis.parameters(m.graph)

    def rows(prefix: str) -> int:  # the IR's parameters under a module path
        return sum(math.prod(shape) for name, shape in params.items() if name == prefix or name.startswith(prefix + "."))

    enc = hf.pvt.encoder
    for i, stage in enumerate(enc.block):
        for j, blk in enumerate(stage):
            assert rows(f"layers.{i}.blocks.{j}") == hf_ref.n_params(blk)
    # stage 0's patch embedding is the spec's `embed`; those of stages 1-3 end the stage before
    assert rows("patch_embed") + rows("pos_embed") == hf_ref.n_params(enc.patch_embeddings[0])
    for i in (1, 2, 3):
        assert rows(f"layers.{i - 1}.downsample") == hf_ref.n_params(enc.patch_embeddings[i])
    assert rows("norm") + rows("head") == hf_ref.n_params(enc.layer_norm, hf.classifier) == 2 * 512 + 512 * 1000 + 1000


def test_pvt_small_macs_against_the_formula():
    # = FlopCounterMode/2 on HF's PVT-Small (test_pvt_small_macs_formula_against_flop_counter)
    assert graphspec.load("pvt_small").macs() == pvt_macs((3, 4, 6, 3)) == 3_815_701_504
    assert graphspec.load("pvt_tiny").macs() == pvt_macs((2, 2, 2, 2)) == 1_932_911_616


SMALL_SETS = ["img_size=64", "classes=10", "encoder.dim=[8, 16, 24, 32]", "encoder.depths=[2, 1, 2, 1]",
              "encoder.heads=[1, 2, 3, 4]", "encoder.mlp_ratio=[4, 4, 2, 2]",
              "encoder.attention=spatial_reduction(R=[4, 2, 2, 1])", "embed.dim=8"]


@pytest.mark.parametrize("passes", ["none", "default"])
def test_small_pvt_matches_hf(passes):
    """Four stages at 64²: reductions 4, 2, 2, 1 (maps 16, 8, 4, 2), patch embeddings with their
    own position tables, the class token in the last stage; HF -> graphspec -> HF."""
    torch.manual_seed(0)
    m = graphspec.load("pvt_small", SMALL_SETS)
    g = m.graph
    if passes != "none":
        from graphspec.passes import run_pipeline

        g, _ = run_pipeline(g, passes, echo=lambda s: None)
    gen = emit(g, m.spec)
    # each stage's table as timm writes it (was `torch.zeros(shape)`, a tuple argument)
    assert "self.pos_embed = nn.Parameter(torch.zeros(1, num_patches, dim))" in gen.source
    net = getattr(load(gen.source), gen.class_name)().eval()
    cfg = transformers.PvtConfig(**hf_ref.SMALL_PVT)
    hf = hf_ref.perturbed(transformers.PvtForImageClassification(cfg))
    net.load_state_dict(to_graphspec(hf, g), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = hf(pixel_values=x).logits
        got = net(x)
        assert ((got - want).abs().max() / want.abs().max()).item() < 1e-5
        back = from_graphspec(net.state_dict(), g, "pvt", like=hf.state_dict())
        assert set(back) == set(hf.state_dict())


# -- bad input: one located message with a fix each, exit code 2 ----------------------------------
@pytest.mark.parametrize("override, message, fix", [
    ("encoder.attention=spatial_reduction(R=[8, 4, 3, 1])",
     "reduction ratio R=3 does not divide the 14×14 map of stage 3", "use R in [1, 2, 7, 14]"),
    ("encoder.attention=spatial_reduction(R=[8, 4, 2])",
     "the per-stage list `R` has 3 entries for 4 stages", "give 4 values, one per stage"),
    ("encoder.dim=[64, 128, 320]", "`dim` gives one value per stage: 4 stages (`depths`), got 3 entries",
     "give 4 positive values"),
    ("encoder.mlp_ratio=[8, 8, 4, 4, 4]", "`mlp_ratio` gives one value per stage: 4 stages (`depths`), got 5",
     "give 4 positive values"),
])
def test_bad_pyramid_input_is_one_located_error(override, message, fix):
    from graphspec.spec import SpecError

    with pytest.raises(SpecError) as e:
        graphspec.load("pvt_small", [override])
    (d,) = e.value.diagnostics
    assert message in d.message and fix in d.fix
    assert d.loc.file == f"--set {override}"


def test_cli_exits_2_on_a_reduction_that_does_not_divide(tmp_path):
    import subprocess
    import sys

    spec = tmp_path / "bad.yaml"
    text = (graphspec.SPECS_DIR / "pvt_small.yaml").read_text(encoding="utf-8")
    spec.write_text(text.replace("R=[8, 4, 2, 1]", "R=[8, 4, 2, 3]"), encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "graphspec.cli.main", "flops", str(spec)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "attention:" in t)
    assert f"bad.yaml:{line}:" in r.stderr and "R=3 does not divide the 7×7 map of stage 4" in r.stderr
    assert "fix: use R in [1, 7]" in r.stderr and "Traceback" not in r.stderr


def test_conditional_positions_need_a_token_map(tmp_path):
    from graphspec.spec import SpecError

    p = tmp_path / "peg.yaml"
    p.write_text("name: x\ninput: tokens(16)\nembed: tokens(100, dim=32, pos=conditional)\n"
                 "encoder×2: {dim: 32, heads: 4}\n", encoding="utf-8")
    with pytest.raises(SpecError, match="conditional positions need a 2-D token map") as e:
        graphspec.load(p)
    assert e.value.diagnostics[0].loc.line == 4 and "pos=learned" in e.value.diagnostics[0].fix
    p.write_text("name: x\ninput: image(32)\nembed: patches(4, dim=32, cls_token=true, pos=conditional)\n"
                 "encoder×2: {dim: 32, heads: 4}\nhead: classifier(10)\n", encoding="utf-8")
    with pytest.raises(SpecError, match="convolve the 8×8 token map, but the stage has 65 tokens") as e:
        graphspec.load(p)
    assert "drop cls_token" in e.value.diagnostics[0].fix


# -- SRA as a sympy identity through the real lowering path ------------------------------------------
def test_spatial_reduction_attention_is_pvt_eq():
    """Ω(SRA) = 2hwC² (q, proj) + 2hwC²/R² (k, v on hw/R² tokens) + 2(hw)²C/R² (QKᵀ, ·V)
    + hwC² (the reduction conv: (h/R)(w/R) outputs · C · C·R²), PVT §3.3, built by the
    `spatial_reduction` construct's own lowering."""
    import sympy

    from graphspec import vocab
    from graphspec.lower import Builder
    from graphspec.vocab.blocks import Layer

    h, w, C, R, heads = sympy.symbols("h w C R heads", positive=True, integer=True)
    b = Builder("sra")
    b.g.set_module("", "SRA")
    x = b.emit("input", (), "x", shape=(1, h * w, C), kind="features")
    mask = vocab.use("mask", "spatial_reduction", R=R)
    layer = Layer(dim=C, heads=heads, kv_heads=heads, head_dim=C / heads, norm=vocab.use("norm", "layer_norm"),
                  mask=mask, grid=(h, w))
    b.g.outputs = (mask.lower(b, layer, x, x, "attn"),)
    terms = {n.name: analysis.node_cost(b.g, n) for n in b.g if analysis.node_cost(b.g, n)}
    assert set(terms) == {f"attn.{t}" for t in ("q", "k", "v", "proj", "sr.proj", "scores", "context")}, terms
    assert sympy.simplify(terms["attn.sr.proj"] - h * w * C**2) == 0  # (hw/R²) positions · C · C·R²
    assert sympy.simplify(terms["attn.k"] + terms["attn.v"] - 2 * h * w * C**2 / R**2) == 0
    assert sympy.simplify(terms["attn.scores"] - (h * w) ** 2 * C / R**2) == 0  # hw queries × hw/R² keys × C
    omega = 2 * h * w * C**2 + 2 * h * w * C**2 / R**2 + 2 * (h * w) ** 2 * C / R**2 + h * w * C**2
    assert sympy.simplify(analysis.macs(b.g) - omega) == 0
    # R = 1 is global attention, Swin's Eq. (1) Ω(MSA) = 4hwC² + 2(hw)²C, plus the (then absent) conv
    assert sympy.simplify(omega.subs(R, 1) - h * w * C**2 - (4 * h * w * C**2 + 2 * (h * w) ** 2 * C)) == 0
    # PVT-S stage 1 (56², C = 64, R = 8): 3·12,845,056 + 401,408 + 19,668,992 = 58,605,568
    assert omega.subs({h: 56, w: 56, C: 64, R: 8}) == 58_605_568


def test_pvt_small_is_a_polynomial_in_the_image_size():
    import sympy

    from graphspec.lower import SYMBOLS

    B, H = SYMBOLS["B"], SYMBOLS["H"]
    macs = graphspec.load("pvt_small", symbolic=True).macs()
    assert sympy.degree(macs, H) == 4  # (hw)·(hw/R²) attention: quartic in H, as ViT's
    for size in (224, 448):
        assert macs.subs({B: 1, H: size}) == graphspec.load("pvt_small", [f"img_size={size}"]).macs()
    assert macs.subs({B: 1, H: 224}) == pvt_macs((3, 4, 6, 3)) == 3_815_701_504


def test_per_stage_attention_arguments_serve_windows_too():
    """A per-stage list of any attention argument: Swin-T with M = 7 written per stage is Swin-T."""
    m = graphspec.load("swin_t", ["encoder.attention=shifted_windows(M=[7, 7, 7, 7])"])
    assert (m.params(), m.macs()) == (28_288_354, 4_490_566_656)
    from graphspec.spec import SpecError

    with pytest.raises(SpecError, match="window 5 does not divide the 7×7 map of stage 4") as e:
        graphspec.load("swin_t", ["encoder.attention=shifted_windows(M=[7, 7, 7, 5])"])
    assert "use a window in [7]" in e.value.diagnostics[0].fix
