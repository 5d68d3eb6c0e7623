"""SigLIP's vision tower (specs/siglip_so400m.yaml, siglip_b16.yaml) against Hugging Face's
SiglipVisionModel (transformers/models/siglip/modeling_siglip.py), built from SiglipVisionConfig
objects: parameters on the meta device, MACs by FlopCounterMode (eager attention), outputs of a
small random model (last_hidden_state and the MAP head's pooler_output) through the generated
module, the IR interpreter, torch.fx, ONNX and TVM llvm; `graphspec import` / `export --format hf`.

The small model: 30×30 images in patches of 8 (a 3×3 grid, the last 6 pixels cropped as HF's
"valid" conv does), width 32, 2 layers of 4 heads, MLP 48; every HF parameter perturbed.
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main
from torch.utils.flop_counter import FlopCounterMode

import graphspec
from graphspec.interchange.hf_export import to_hf_config
from graphspec.interchange.hf_import import from_hf_config
from graphspec.weights import from_graphspec, to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402  (tests/, on pytest's pythonpath)

# google/siglip-so400m-patch14-384's vision_config (the keys it sets; the rest are
# SiglipVisionConfig's defaults: gelu_pytorch_tanh, layer_norm_eps 1e-6, vision_use_head true)
SO400M = dict(hidden_size=1152, image_size=384, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=27,
              patch_size=14)
SMALL = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4, image_size=30,
             patch_size=8)
SMALL_SET = ["img_size=30", "patch=8", "D=32", "L=2", "h=4", "d_ff=48"]
TOL = 1e-5


def small_hf(**kw):
    cfg = transformers.SiglipVisionConfig(**{**SMALL, **kw}, attn_implementation="eager")
    return hf_ref.random_hf(transformers.SiglipVisionModel, cfg)


def images(batch=2, side=30):
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(3))


def reference(hf, x):
    with torch.no_grad():
        out = hf(pixel_values=x)
    return [out.last_hidden_state] + ([out.pooler_output] if out.pooler_output is not None else [])


def max_err(got, want) -> float:
    got = got if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(want)
    return max((a - b).abs().max().item() for a, b in zip(got, want, strict=True))


# -- counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec,cfg", [("siglip_so400m", SO400M), ("siglip_b16", {})])
def test_params_are_hugging_faces_on_meta(spec, cfg):
    """428,225,600 (So400m, "428M": the MAP head 15,238,352) and 92,884,224 (B/16), to the unit."""
    hf = hf_ref.meta(transformers.SiglipVisionModel, transformers.SiglipVisionConfig(**cfg))
    m = graphspec.load(spec)
    assert m.params() == hf_ref.n_params(hf) == m.spec.expect["params"]
    assert hf_ref.n_params(hf.head) == m.params() - graphspec.load(spec, ["head=none"]).params()


def flop_counter_macs(cfg: dict) -> int:
    config = transformers.SiglipVisionConfig(**cfg, attn_implementation="eager")
    with torch.device("meta"):
        hf = transformers.SiglipVisionModel(config).eval()
        x = torch.empty(1, 3, config.image_size, config.image_size)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        hf(pixel_values=x)
    return fc.get_total_flops() // 2


def test_macs_are_flop_counter_halves():
    """B/16 at full size, So400m at 2 of its 27 layers (on meta, eager attention: SDPA would count
    zero), and the So400m formula: 27·(4ND² + 2NDF + 2N²D) + 3·14²·ND + head, N = 729."""
    assert graphspec.load("siglip_b16").macs() == flop_counter_macs({}) == 17_708_292_096
    assert graphspec.load("siglip_so400m", ["L=2"]).macs() == flop_counter_macs({**SO400M, "num_hidden_layers": 2})
    N, D, F = 729, 1152, 4304
    head = D * D + 2 * N * D * D + 2 * N * D + D * D + 2 * D * F  # probe q, k and v, q·kᵀ and ·v (1 × N), out, MLP
    assert graphspec.load("siglip_so400m").macs() == 27 * (4 * N * D * D + 2 * N * D * F + 2 * N * N * D) \
        + N * D * 3 * 14 * 14 + head == 335_173_224_960


def test_cli_flops_and_inspect():
    r = CliRunner().invoke(main, ["flops", "siglip_so400m", "--check"])
    assert r.exit_code == 0 and "all figures match" in r.output, r.output
    r = CliRunner().invoke(main, ["inspect", "siglip_so400m", "--set", "L=1"])
    assert r.exit_code == 0, r.output
    assert "attn_pool.attn.scores" in r.output and "f32[1,16,1,729]" in r.output  # the probe: 1 × 729 pairs
    assert "AttentionPool" in r.output and "%attn_pool.pool" in r.output


# -- numerics --------------------------------------------------------------------------------
@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("use_head", [True, False])
def test_generated_module_interpreter_and_fx_compute_hugging_faces(passes, use_head):
    """HF's weights mapped by graphspec.weights (in_proj_weight sliced into q, k, v, or into q and
    the fused kv under the default passes), strict; both outputs within 1e-5."""
    from graphspec.codegen.fx import to_fx

    from graphspec.interpret import run

    hf = small_hf(vision_use_head=use_head)
    m = graphspec.load("siglip_so400m", [*SMALL_SET, "batch=2", *([] if use_head else ["head=none"])])
    graph, net, src = hf_ref.generated(m, passes)
    sd = to_graphspec(hf, graph)
    if passes == "default" and use_head:
        assert "attn_pool.attn.kv.weight" in sd and "attn_pool.attn.k.weight" not in sd
        assert sum(n.op == "attention" for n in graph) == 3  # the encoder's two and the probe's
    net.load_state_dict(sd, strict=True)
    x = images()
    want = reference(hf, x)
    with torch.no_grad():
        assert max_err(net(x), want) < TOL
        assert max_err(list(run(graph, {graph.inputs[0].name: x}, sd).values()), want) < TOL
        gm = to_fx(graph).eval()
        gm.load_state_dict(net.state_dict(), strict=True)
        assert max_err(gm(x), want) < TOL
    assert hf_ref.round_trip_mismatches(net, graph, "siglip_vision_model", hf) == []


def test_a_wrong_mapping_shows():
    """The probe's q|k|v order matters: k and v swapped in in_proj is 1e-3 or more off."""
    hf = small_hf()
    m = graphspec.load("siglip_so400m", SMALL_SET)
    graph, net, _ = hf_ref.generated(m)
    sd = to_graphspec(hf, graph)
    sd["attn_pool.attn.k.weight"], sd["attn_pool.attn.v.weight"] = sd["attn_pool.attn.v.weight"], sd["attn_pool.attn.k.weight"]
    net.load_state_dict(sd, strict=True)
    x = images()
    with torch.no_grad():
        assert (net(x)[1] - reference(hf, x)[1]).abs().max().item() > 1e-3


def test_generated_code_reads_like_the_reference(tmp_path):
    import subprocess
    import sys

    from graphspec.codegen import emit

    m = graphspec.load("siglip_so400m")
    src = emit(m.graph, m.spec).source
    assert "class AttentionPool(nn.Module):" in src and "def forward(self, x, tokens):" in src
    assert "probe = self.latent.expand(x.shape[0], -1, -1)" in src
    assert "self.attn_pool = AttentionPool(dim=1152, num_heads=16)" in src
    assert "nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)" in src
    assert "return x, self.attn_pool(x)" in src
    assert "self.latent = nn.Parameter(torch.zeros(1, 1, dim))" in src  # the class's width, not 1152
    pool = hf_ref.load(src).AttentionPool(dim=64, num_heads=4)  # as a user reuses the class elsewhere
    assert tuple(pool.latent.shape) == (1, 1, 64)
    assert tuple(pool(torch.randn(2, 9, 64)).shape) == (2, 64)
    (tmp_path / "siglip.py").write_text(src)
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", "E,F,W,I,B",
                        "--line-length", "100", str(tmp_path / "siglip.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout  # the project's rules for generated files (tests/test_codegen.py)


@pytest.mark.parametrize("passes", ["none", "default"])
def test_onnx_and_tvm_llvm_match_eager(passes):
    pytest.importorskip("onnxruntime")
    import numpy as np
    from graphspec.backends import onnx as gx
    from graphspec.backends import tvm as gt
    from graphspec.backends import weights
    from graphspec.backends.torch import run_eager

    m = graphspec.load("siglip_so400m", [*SMALL_SET, "batch=2"])
    g = hf_ref.pipeline(m.graph, passes)
    params, x = weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)
    ref = run_eager(g, params, x, spec=m.spec)
    low = gt.lower(g)
    ex, _ = gt.build(low, "llvm")
    for got in (gx.run(gx.export(g, params, dynamic_batch=True), x),
                gt.Runner(ex, low.params, params)(*(x[n] for n in low.inputs))):
        for a, b in zip(got, ref, strict=True):
            assert a.shape == b.shape
            assert float(np.abs(a - b).max()) <= 1e-4 * max(1.0, float(np.abs(b).max()))


# -- interchange -----------------------------------------------------------------------------
def write(tmp_path, cfg: dict, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


def imported(tmp_path, cfg: dict):
    path = write(tmp_path, cfg)
    r = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "spec.yaml"), "--force"])
    assert r.exit_code == 0, r.output
    return graphspec.load(tmp_path / "spec.yaml"), (tmp_path / "spec.yaml").read_text()


def ir(m) -> list[str]:
    return [ln.split("  #")[0] for ln in str(m.graph).splitlines()[1:]]


# google/siglip-so400m-patch14-384's config.json (SiglipModel), as public code copies it
SO400M_FULL = {"architectures": ["SiglipModel"], "initializer_factor": 1.0, "model_type": "siglip",
               "text_config": {"hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_text_model",
                               "num_attention_heads": 16, "num_hidden_layers": 27},
               "torch_dtype": "float32", "transformers_version": "4.37.0.dev0",
               "vision_config": {**SO400M, "model_type": "siglip_vision_model"}}


def test_published_configs_import_as_the_bundled_spec(tmp_path):
    """The vision_config alone and the whole SiglipModel config: siglip_so400m node for node."""
    bundled = graphspec.load("siglip_so400m")
    m, text = imported(tmp_path, {**SO400M, "model_type": "siglip_vision_model"})
    assert "crop=true" in text and "head: map" in text and ir(m) == ir(bundled)
    m, text = imported(tmp_path, SO400M_FULL)
    assert "the text tower and the logit scale and bias are left out" in text and ir(m) == ir(bundled)


@pytest.mark.parametrize("kw", [{}, dict(vision_use_head=False, hidden_act="gelu", num_channels=1, image_size=32),
                                dict(layer_norm_eps=1e-5, attention_dropout=0.1, num_attention_heads=2)])
def test_imported_small_config_computes_what_hf_computes(tmp_path, kw):
    hf = small_hf(**kw)
    path = tmp_path / "config.json"
    hf.config.to_json_file(str(path))
    (tmp_path / "s.yaml").write_text(from_hf_config(json.loads(path.read_text())))
    m = graphspec.load(tmp_path / "s.yaml")
    assert m.params() == hf_ref.n_params(hf)
    graph, net, _ = hf_ref.generated(m, "default")
    net.load_state_dict(to_graphspec(hf, graph), strict=True)
    x = torch.randn(2, hf.config.num_channels, hf.config.image_size, hf.config.image_size)
    with torch.no_grad():
        assert max_err(net(x), reference(hf, x)) < TOL


@pytest.mark.parametrize("change,words", [
    ({"hidden_act": "quick_gelu"}, 'option hidden_act = "quick_gelu" is not expressible'),
    ({"image_size": [384, 384]}, "image_size must be an integer from 1"),
    ({"num_hidden_layers": 0}, "num_hidden_layers must be an integer from 1"),
    ({"use_rope": True}, "option use_rope = true is not known to graphspec's siglip_vision_model importer"),
    ({"architectures": ["SiglipForImageClassification"]}, "option architectures = [\"SiglipForImageClassification\"]"),
])
def test_unexpressible_configs_exit_2_naming_the_option(tmp_path, change, words):
    cfg = {**SO400M, "model_type": "siglip_vision_model", **change}
    path = write(tmp_path, cfg)
    r = CliRunner().invoke(main, ["import", str(path), "-o", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    key = next(iter(change))
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if f'"{key}"' in ln)
    assert f"config.json:{line}:" in r.output
    assert not (tmp_path / "s.yaml").exists()


def test_a_whole_siglip_config_is_located_inside_its_vision_config(tmp_path):
    cfg = {**SO400M_FULL, "vision_config": {**SO400M_FULL["vision_config"], "hidden_act": "quick_gelu"}}
    path = write(tmp_path, cfg)
    r = CliRunner().invoke(main, ["import", str(path)])
    line = next(i for i, ln in enumerate(path.read_text().splitlines(), 1) if '"hidden_act"' in ln)
    assert r.exit_code == 2 and f"config.json:{line}:" in r.output and "hidden_act" in r.output, r.output
    r = CliRunner().invoke(main, ["import", str(write(tmp_path, {**SO400M_FULL, "vision_config": 3}))])
    assert r.exit_code == 2 and "vision_config must be an object" in r.output


@pytest.mark.parametrize("spec,sets", [("siglip_so400m", []), ("siglip_b16", ["head=none"])])
def test_export_is_the_config_hugging_face_builds(spec, sets):
    m = graphspec.load(spec, sets)
    cfg = to_hf_config(m)
    assert cfg["model_type"] == "siglip_vision_model" and cfg["vision_use_head"] == (not sets)
    config = transformers.AutoConfig.for_model(**cfg)
    assert hf_ref.n_params(hf_ref.meta(transformers.SiglipVisionModel, config)) == m.params()


def test_export_weights_load_in_hugging_face_and_import_weights_back(tmp_path):
    """export --weights (the fused kv packed back into in_proj) -> SiglipVisionModel.from_pretrained,
    no missing or unexpected keys, the same outputs; its save_pretrained -> import-weights -> the
    same module."""
    from safetensors.torch import load_file, save_file

    sets = [x for s in SMALL_SET for x in ("--set", s)]
    graph, net, _ = hf_ref.generated(graphspec.load("siglip_so400m", SMALL_SET), "default")
    hf_ref.perturbed(net)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    r = CliRunner().invoke(main, ["export", "siglip_so400m", "--format", "hf", "-o", str(tmp_path / "hf"),
                                  "--weights", str(tmp_path / "w.safetensors"), *sets])
    assert r.exit_code == 0, r.output
    hf, info = transformers.SiglipVisionModel.from_pretrained(tmp_path / "hf", output_loading_info=True,
                                                              attn_implementation="eager")
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = images()
    with torch.no_grad():
        assert max_err(net(x), reference(hf.eval(), x)) < TOL
    r = CliRunner().invoke(main, ["import-weights", "siglip_so400m", str(tmp_path / "hf" / "model.safetensors"),
                                  "-o", str(tmp_path / "back.safetensors"), "--passes", "default", *sets])
    assert r.exit_code == 0, r.output
    back = load_file(tmp_path / "back.safetensors")
    assert all(torch.equal(back[k], v) for k, v in net.state_dict().items())
    assert from_graphspec(net.state_dict(), graph, "siglip_vision_model")["head.probe"].shape == (1, 1, 32)


# -- bad head arguments ----------------------------------------------------------------------
HEADLESS = ("name: s\ninput: image(32)\nembed: patches(8, dim=32, pos=learned)\n"
            "encoder×2: {dim: 32, heads: 4, d_ff: 48, act: gelu_tanh, eps: 1e-6, final_norm: true}\n")


@pytest.mark.parametrize("head,words", [
    ("map(heads=5)", "map(): 5 heads do not divide the width 32"),
    ("map(heads=0)", "heads must be"),
    ("map(eps=-1)", "eps must be"),
    ("map(act=quick_gelu)", "unknown map() argument `act` 'quick_gelu'"),
    ("map(d_ff=true)", "d_ff must be"),
    ("map(dim=4)", "map() has no argument 'dim'"),
])
def test_bad_head_arguments_are_located_errors(tmp_path, head, words):
    (tmp_path / "s.yaml").write_text(HEADLESS + f"head: {head}\n")
    r = CliRunner().invoke(main, ["flops", str(tmp_path / "s.yaml")])
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output, r.output
    assert "s.yaml:5:" in r.output and "fix:" in r.output


def test_head_defaults_follow_the_encoder_and_can_be_set():
    """map's heads, MLP, activation and ε are the encoder's unless given."""
    g = graphspec.load("siglip_so400m", [*SMALL_SET, "head=map(heads=2, d_ff=16, act=relu, eps=1e-3)"]).graph
    assert g["attn_pool.attn.q_heads"].shape[1] == 2 and g["attn_pool.mlp.fc1"].shape[-1] == 16
    assert g["attn_pool.norm"].a["eps"] == 1e-3 and g["attn_pool.mlp.act"].op == "relu"
    g = graphspec.load("siglip_so400m", SMALL_SET).graph
    assert g["attn_pool.attn.q_heads"].shape[1] == 4 and g["attn_pool.mlp.fc1"].shape[-1] == 48
    assert g["attn_pool.norm"].a["eps"] == 1e-6 and g["attn_pool.mlp.act"].a.get("approximate") == "tanh"


def test_map_on_a_cnn_is_a_located_error():
    r = CliRunner().invoke(main, ["flops", "resnet50", "--set", "head=map"])
    assert r.exit_code == 2 and "map() pools a token sequence" in r.output and "Traceback" not in r.output, r.output
    assert "--set head=map:1:1" in r.output and "fix:" in r.output
