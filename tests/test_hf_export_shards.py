"""`graphspec export --format hf --weights W --max-shard-size SIZE`: sharded safetensors as
save_pretrained writes them, and RoPE models' max_position_embeddings carried by `rope(max_len=)`.

References: a Hugging Face model built from the exported config, loaded with the exported
weights and written by its own `save_pretrained(max_shard_size=...)` (file names, index and
split must be the same), huggingface_hub's `parse_size_to_int`, transformers' own default shard
size, and the released config.json values in tests/reference_hf.py.
"""

from __future__ import annotations

import inspect
import json
import re

import pytest
import torch
from click.testing import CliRunner

transformers = pytest.importorskip("transformers")
import reference_hf as ref  # noqa: E402
from graphspec.cli.main import main  # noqa: E402
from graphspec.codegen import emit, load  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import graphspec  # noqa: E402
from graphspec.interchange.hf_export import DEFAULT_SHARD_SIZE, shard_size, to_hf_config  # noqa: E402

SMALL = {"llama2_7b": ["vocab=100", "d=64", "L=2", "h=4", "d_ff=96", "seq_len=16"],  # fused qkv split into q, k, v
         "gpt2": ["vocab=100", "d=64", "L=2", "h=4", "n_ctx=64", "seq_len=16"]}  # tied head: written once


def cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in r.output, r.output
    return r


def sets(overrides):
    return [a for s in overrides for a in ("--set", s)]


def generated_weights(spec, path):
    """The generated module (default passes, as a torch build) with perturbed random weights."""
    m = graphspec.load(spec, SMALL[spec])
    from graphspec.passes import run_pipeline

    graph, _ = run_pipeline(m.graph, "default")
    gen = emit(graph, m.spec)
    torch.manual_seed(0)
    net = getattr(load(gen.source), gen.class_name)().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.02 * torch.randn(p.shape))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    return net, state


@pytest.mark.parametrize("spec", sorted(SMALL))
def test_sharded_export_is_what_save_pretrained_writes(tmp_path, spec):
    net, state = generated_weights(spec, tmp_path / "w.safetensors")
    out = tmp_path / "hf"
    r = cli("export", spec, "--format", "hf", "-o", out, "--weights", tmp_path / "w.safetensors",
            "--max-shard-size", "20KB", *sets(SMALL[spec]))
    assert r.exit_code == 0, r.output
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(p.name for p in out.glob("model-*.safetensors"))
    n = len(files)
    assert n > 1 and files == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert not (out / "model.safetensors").exists()
    assert sorted(set(index["weight_map"].values())) == files
    shards = {f: load_file(str(out / f)) for f in files}
    for f, tensors in shards.items():  # every tensor where the index says, nothing else
        assert sorted(tensors) == sorted(k for k, v in index["weight_map"].items() if v == f)
    written = {k: v for t in shards.values() for k, v in t.items()}
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in written.values())
    assert all(sum(v.numel() * v.element_size() for v in t.values()) <= 20_000 for t in shards.values() if len(t) > 1)

    hf, info = transformers.AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert index["metadata"]["total_parameters"] == hf.num_parameters()
    if spec == "gpt2":
        assert "lm_head.weight" not in index["weight_map"] and hf.lm_head.weight is hf.transformer.wte.weight
    x = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = net(x)
        assert (hf.eval()(input_ids=x).logits - want).abs().max().item() <= 1e-5 * want.abs().max().item()

    # HF's own writer, on a model built from the config (not from_pretrained, which reorders)
    fresh = getattr(transformers, hf.config.architectures[0])(hf.config)
    fresh.load_state_dict(written, strict=False)
    fresh.save_pretrained(tmp_path / "ref", max_shard_size="20KB")
    assert (tmp_path / "ref" / "model.safetensors.index.json").read_text() == \
        (out / "model.safetensors.index.json").read_text()  # byte for byte
    assert sorted(p.name for p in (tmp_path / "ref").glob("model-*")) == files

    r = cli("import-weights", spec, out, "-o", tmp_path / "back.safetensors", "--passes", "default",
            *sets(SMALL[spec]))
    assert r.exit_code == 0, r.output
    back = load_file(str(tmp_path / "back.safetensors"))
    assert sorted(back) == sorted(state) and all(torch.equal(back[k], state[k]) for k in state)


@pytest.mark.parametrize("size", ["5GB", "500MB", "20KB", "1TB", "1.5gb", " 7 MB ", "0.5KB"])
def test_shard_size_reads_what_huggingface_hub_reads(size):
    from huggingface_hub.serialization._base import parse_size_to_int

    assert shard_size(size) == parse_size_to_int(size)


def test_shard_size_default_and_bytes():
    from transformers.modeling_utils import PreTrainedModel

    assert DEFAULT_SHARD_SIZE == inspect.signature(PreTrainedModel.save_pretrained).parameters["max_shard_size"].default
    assert shard_size(DEFAULT_SHARD_SIZE) == 50 * 10**9 and shard_size(123456) == shard_size("123456") == 123456


@pytest.mark.parametrize("size", ["5XB", "5GiB", "0", "-1GB", "0KB", "GB", "", "1e9", "nanGB", "infGB"])
def test_a_bad_shard_size_is_exit_2_naming_the_option(tmp_path, size):
    with pytest.raises(ValueError, match="5GB or 500MB"):
        shard_size(size)
    save_file({"x": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", "--weights", tmp_path / "w.safetensors",
            "--max-shard-size", size)
    assert r.exit_code == 2 and "--max-shard-size" in r.output and "5GB or 500MB" in r.output, r.output
    assert not (tmp_path / "hf").exists()


def test_max_shard_size_without_weights_is_refused(tmp_path):
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", "--max-shard-size", "5GB")
    assert r.exit_code == 2 and "--weights" in r.output and not (tmp_path / "hf").exists()


def test_a_failed_shard_write_leaves_nothing(tmp_path, monkeypatch):
    """A full disk at the second shard: no output directory (or the old one, whole, with --force)
    and no temporaries."""
    import errno

    import safetensors.torch

    generated_weights("gpt2", tmp_path / "w.safetensors")
    real, calls = safetensors.torch.save_file, []

    def failing(tensors, filename, metadata=None):
        calls.append(filename)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    args = ["--weights", tmp_path / "w.safetensors", "--max-shard-size", "20KB",
            *sets(SMALL["gpt2"])]
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "hf", *args)
    assert r.exit_code == 2 and "No space left" in r.output and "nothing was written" in r.output, r.output
    assert len(calls) == 2 and [p.name for p in tmp_path.iterdir() if p.suffix != ".lock"] == ["w.safetensors"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text("{}")
    calls.clear()
    r = cli("export", "gpt2", "--format", "hf", "-o", tmp_path / "old", "--force", *args)
    assert r.exit_code == 2 and "previous contents are untouched" in r.output, r.output
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["config.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".build", ".old"))]


# -- rope(max_len=): max_position_embeddings -----------------------------------------------------
LLMS = ["llama2_7b", "mistral_7b", "mixtral_8x7b", "phi2"]


@pytest.mark.parametrize("spec", LLMS)
def test_published_config_round_trips_max_position_embeddings(tmp_path, spec):
    """Llama-2-7b-hf 4096, Mistral-7B-v0.1 32768, Mixtral-8x7B-v0.1 32768, phi-2 2048: import ->
    export gives the released value back, and the bundled spec exports the same."""
    published = ref.PUBLISHED_CONFIGS[spec]
    text = graphspec.from_hf_config(published)
    assert f"max_len={published['max_position_embeddings']})" in text
    (tmp_path / "s.yaml").write_text(text)
    assert to_hf_config(graphspec.load(tmp_path / "s.yaml"))["max_position_embeddings"] == \
        published["max_position_embeddings"]
    assert to_hf_config(graphspec.load(spec, ["L=1"]))["max_position_embeddings"] == \
        published["max_position_embeddings"]


def test_gemma2_2b_carries_its_context_length():
    """gemma-2-2b's config.json: 8192, Gemma2Config's default (the 2B/9B/27B releases)."""
    spec = graphspec.load("gemma2_2b").spec
    assert spec.embed.pos_use["max_len"] == transformers.Gemma2Config().max_position_embeddings == 8192


TINY = """name: tiny
names: hf
input: tokens(16)
embed: tokens(100, dim=32, pos=rope(10000{ARG}))
decoder×2:
  dim: 32
  heads: 4
  norm: rms_norm(1e-5)
  mlp: glu(48, silu)
  bias: false
  final_norm: true
head: lm(tied=false)
"""


def test_rope_max_len_changes_nothing_built(tmp_path):
    models = []
    for arg in ("", ", max_len=4096"):
        (tmp_path / f"t{len(models)}.yaml").write_text(TINY.format(ARG=arg))
        models.append(graphspec.load(tmp_path / f"t{len(models)}.yaml"))
    a, b = models
    assert (a.params(), a.macs()) == (b.params(), b.macs())
    assert [re.sub(r"\s+#.*$", "", x) for x in str(a.graph).splitlines()[1:]] == \
        [re.sub(r"\s+#.*$", "", x) for x in str(b.graph).splitlines()[1:]]
    assert emit(a.graph, a.spec).source == emit(b.graph, b.spec).source
    assert to_hf_config(a)["max_position_embeddings"] == 2048 and to_hf_config(b)["max_position_embeddings"] == 4096


@pytest.mark.parametrize("value,words", [("0", "must be ≥ 1, got 0"), ("-3", "must be ≥ 1"),
                                         ("true", "must be int"), ("4096.5", "must be int")])
def test_a_bad_rope_max_len_is_a_located_error(tmp_path, value, words):
    (tmp_path / "t.yaml").write_text(TINY.format(ARG=f", max_len={value}"))
    r = cli("flops", tmp_path / "t.yaml")
    assert r.exit_code == 2 and "t.yaml:4:" in r.output and "max_len" in r.output and words in r.output, r.output
