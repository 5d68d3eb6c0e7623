"""DeiT⚗ (Touvron et al. 2021 §4): `patches(..., cls_token=true, dist_token=true)`, the
distillation token after [class] with a position of its own, and `classifier(n, pool=cls_dist)`,
the mean of the class token's `head` and the distillation token's `head_dist`. The references are
Hugging Face's DeiTForImageClassificationWithTeacher (and DeiTForImageClassification, which reads
[class] only, and DeiTModel with its pooler), built from DeiTConfig objects: parameters on the meta
device, MACs with FlopCounterMode (eager attention), logits with random perturbed weights through
the generated module, ONNX and TVM, `graphspec import`, `export --format hf` and `import-weights`."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from graphspec.cli.main import main

import graphspec
from graphspec.interchange import from_hf_config
from graphspec.weights import to_graphspec

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

generated, meta, n_params, rel_err = hf_ref.generated, hf_ref.meta, hf_ref.n_params, hf_ref.rel_err
RTOL = 1e-5
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
             patch_size=8, num_labels=3)
CLASSES = {"DeiTForImageClassificationWithTeacher": "classifier(classes, pool=cls_dist)",
           "DeiTForImageClassification": "classifier(classes, pool=cls)", "DeiTModel": "pooler"}


def small(tmp_path, cls):
    cfg = transformers.DeiTConfig(**SMALL, architectures=[cls])
    path = tmp_path / "config.json"
    cfg.to_json_file(str(path))
    text = from_hf_config(json.loads(path.read_text()))
    (tmp_path / "s.yaml").write_text(text)
    return cfg, text, tmp_path / "s.yaml"


def logits(out):
    return out.logits if hasattr(out, "logits") else out.pooler_output


def image(seed=0):
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


# -- counts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, d, h", [("deit_b_distilled", 768, 12), ("deit_s_distilled", 384, 6)])
def test_bundled_specs_count_as_hugging_faces_model_with_teacher(name, d, h):
    """DeiT-B⚗ and DeiT-S⚗ at 224: params = HF on meta (87,338,192; Table 5's 87M, timm's 87.3M),
    MACs = FlopCounterMode / 2 on HF's model on meta with eager attention (17.66G), and both are
    the formula: the undistilled spec plus 2·d + d·1000 + 1000 params, 198 tokens instead of 197."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = transformers.DeiTConfig(hidden_size=d, num_attention_heads=h, intermediate_size=4 * d, num_labels=1000,
                                  attn_implementation="eager")
    hf = meta(transformers.DeiTForImageClassificationWithTeacher, cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        hf(pixel_values=torch.empty(1, 3, 224, 224, device="meta"))
    m, undistilled = graphspec.load(name), graphspec.load(name.removesuffix("_distilled"))
    assert m.params() == n_params(hf) == undistilled.params() + 2 * d + d * 1000 + 1000
    N = 198
    assert m.macs() == counter.get_total_flops() // 2 == (
        12 * (12 * N * d * d + 2 * N * N * d) + 196 * 3 * 16 * 16 * d + 2 * d * 1000)


# -- logits ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("passes", ["none", "default"])
@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_imported_deit_computes_hugging_faces_logits(tmp_path, cls, passes):
    cfg, text, path = small(tmp_path, cls)
    assert "embed: patches(patch, dim=D, cls_token=true, dist_token=true, pos=learned)" in text
    assert text.endswith(f"head: {CLASSES[cls]}\n"), text
    hf_cls = getattr(transformers, cls)
    m = graphspec.load(path, ["batch=2"])
    assert m.params() == n_params(meta(hf_cls, cfg))
    hf = hf_ref.random_hf(hf_cls, cfg)
    graph, net, src = generated(m, passes)
    net.load_state_dict(to_graphspec(hf, graph, "deit"), strict=True)
    with torch.no_grad():
        got, want = net(image()), logits(hf(pixel_values=image()))
    got = got[-1] if isinstance(got, tuple) else got  # DeiTModel: (sequence, pooled)
    assert got.shape == want.shape and rel_err(got, want) < RTOL
    assert hf_ref.round_trip_mismatches(net, graph, "deit", hf) == []
    assert "self.dist_token = nn.Parameter(torch.zeros(1, 1, 32))" in src
    if cls == "DeiTForImageClassificationWithTeacher":
        assert "return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) * 0.5" in src


def test_both_tokens_and_their_order_matter(tmp_path):
    """The comparison above can fail: with the same weights, the class token's classifier alone
    (pool=cls), or the two tokens' classifiers swapped, are far from HF's averaged logits."""
    cfg, _, path = small(tmp_path, "DeiTForImageClassificationWithTeacher")
    hf = hf_ref.random_hf(transformers.DeiTForImageClassificationWithTeacher, cfg)
    with torch.no_grad():
        want = hf(pixel_values=image()).logits
        graph, net, _ = generated(graphspec.load(path, ["batch=2", "head=classifier(classes, pool=cls)"]))
        sd = to_graphspec(hf, graph, "deit")
        net.load_state_dict(sd, strict=True)
        assert rel_err(net(image()), want) > 1e-2
        graph, net, _ = generated(graphspec.load(path, ["batch=2"]))
        sd = to_graphspec(hf, graph, "deit")
        sd["head.weight"], sd["head_dist.weight"] = sd["head_dist.weight"], sd["head.weight"]
        net.load_state_dict(sd, strict=True)
        assert rel_err(net(image()), want) > 1e-2


def test_onnx_and_tvm_compute_hugging_faces_logits(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tvm")
    cfg, _, path = small(tmp_path, "DeiTForImageClassificationWithTeacher")
    hf = hf_ref.random_hf(transformers.DeiTForImageClassificationWithTeacher, cfg)
    errors = hf_ref.hf_backend_errors(hf, graphspec.load(path, ["batch=2"]), image(3), "deit", key="pixel_values")
    assert max(errors.values()) < 1e-4, errors


# -- export and import-weights --------------------------------------------------------------------
@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_exported_weights_load_into_hugging_face_and_back(tmp_path, cls):
    """Generated module (perturbed) -> `export --format hf --weights`: the class loads it with no
    missing or unexpected keys and computes the same output; its save_pretrained ->
    `import-weights` gives the module's tensors back bit for bit."""
    _, _, path = small(tmp_path, cls)
    graph, net, _ = generated(graphspec.load(path, ["batch=2"]), "default")
    hf_ref.perturbed(net, seed=4)
    hf, out = hf_ref.export_and_load(tmp_path, path, net, getattr(transformers, cls))
    assert out["model_type"] == "deit" and out["architectures"] == [cls]
    with torch.no_grad():
        got, want = net(image(5)), logits(hf(pixel_values=image(5)))
    got = got[-1] if isinstance(got, tuple) else got
    assert rel_err(got, want) < RTOL
    back, mine = hf_ref.imported_weights(tmp_path, path, hf), net.state_dict()
    assert sorted(back) == sorted(mine) and all(torch.equal(back[k], mine[k]) for k in mine)


def test_a_deit_head_hugging_face_has_no_class_for_is_refused(tmp_path):
    r, out = hf_ref.exported(tmp_path, "deit_b_distilled", ["L=2", "head=classifier(classes, pool=mean)"])
    assert r.exit_code == 2 and "DeiT's classifiers are Linear layers with bias" in r.output, r.output
    assert not out.exists()


# -- bad specs: located, exit 2 -------------------------------------------------------------------
SPEC = """\
name: s
input: image(32)
embed: EMBED
encoder×1: {dim: 32, heads: 2}
head: HEAD
"""


@pytest.mark.parametrize("embed, head, line, message, fix", [
    ("patches(8, dim=32, dist_token=true)", "classifier(3)", 3, "distillation token sits after the class token",
     "cls_token=true, dist_token=true"),
    ("patches(8, dim=32, cls_token=true, dist_token=true, registers=4)", "classifier(3)", 3,
     "a distillation token beside register tokens", "remove registers= or dist_token="),
    ("patches(8, dim=32, cls_token=true, dist_token=1)", "classifier(3)", 3, "dist_token must be bool", ""),
    ("patches(8, dim=32, cls_token=true)", "classifier(3, pool=cls_dist)", 5,
     "this embedding has no distillation token", "dist_token=true), or write pool=cls"),
    ("patches(8, dim=32, cls_token=true, dist_token=true)", "classifier(3, pool=cls_dist, transform=gelu)", 5,
     "pool=cls_dist is DeiT's two classifiers", "leave transform= out"),
])
def test_bad_distillation_token_is_located_exit_2(tmp_path, monkeypatch, embed, head, line, message, fix):
    (tmp_path / "s.yaml").write_text(SPEC.replace("EMBED", embed).replace("HEAD", head))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["flops", "s.yaml"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"s.yaml:{line}:" in r.output and message in r.output and fix in r.output, r.output
