"""Hugging Face reference models of the T5 and PVT families, built from Config objects (no hub),
and graphspec's side of a logits comparison with any of them.

    cfg = t5_base()                       # transformers.T5Config of T5-base
    n_params(meta(transformers.T5Model, cfg)) == 222_903_552

`meta` builds a model on the meta device (no memory for the weights: parameter counts of
full-size models cost nothing); `small_*` are the configs the numerics tests run. Counting
follows `model.parameters()`, which yields a tied or shared tensor once (T5's `shared`
embedding is the encoder's and the decoder's `embed_tokens`).

A comparison (tests/test_llm_numerics.py, test_gemma2.py):

    hf = random_hf(transformers.LlamaForCausalLM, cfg)      # seed 0, then perturbed(seed=1)
    graph, net, src = generated(graphspec.load("llama2_7b", SMALL_SET), "default")
    assert hf_logits_error(hf, net, graph, ids) < 1e-5      # HF's weights mapped in, strict
    assert round_trip_mismatches(net, graph, "llama", hf) == []
"""

from __future__ import annotations

import torch
import transformers
from graphspec.codegen import emit, load

from graphspec.interpret import run
from graphspec.weights import from_graphspec, to_graphspec

# T5-base (Raffel et al. 2020, Table 14 "Base": d_model 768, d_ff 3072, d_kv 64, 12 heads, 12 + 12
# layers; 32 buckets, max distance 128; the SentencePiece vocabulary padded to 32128).
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
               num_heads=12, relative_attention_num_buckets=32, relative_attention_max_distance=128,
               feed_forward_proj="relu", dropout_rate=0.0, layer_norm_epsilon=1e-6)

# PVT (Wang et al. 2021, Table 1): widths 64-128-320-512, heads 1-2-5-8, SRA ratios 8-4-2-1, MLP
# ratios 8-8-4-4, patch sizes 4-2-2-2. Tiny: depths 2-2-2-2; Small: 3-4-6-3.
PVT_TINY = dict(image_size=224, depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
                sequence_reduction_ratios=[8, 4, 2, 1], mlp_ratios=[8, 8, 4, 4], patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2], num_labels=1000)
PVT_SMALL = {**PVT_TINY, "depths": [3, 4, 6, 3]}


def t5_config(**kw) -> transformers.T5Config:
    return transformers.T5Config(**{**T5_BASE, **kw})


def pvt_config(depths=(3, 4, 6, 3), **kw) -> transformers.PvtConfig:
    return transformers.PvtConfig(**{**PVT_SMALL, "depths": list(depths), **kw})


def meta(cls, cfg):
    """`cls(cfg)` on the meta device: shapes only."""
    with torch.device("meta"):
        return cls(cfg)


def n_params(*modules: torch.nn.Module) -> int:
    """Unique parameters, as `model.parameters()` yields a shared weight once."""
    return sum({id(p): p.numel() for m in modules for p in m.parameters()}.values())


# Small configurations for numerics (fp32, CPU, a fraction of a second each).
SMALL_T5 = dict(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                relative_attention_num_buckets=8, relative_attention_max_distance=16)
SMALL_PVT = dict(image_size=64, depths=[2, 1, 2, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 2, 3, 4],
                 sequence_reduction_ratios=[4, 2, 2, 1], mlp_ratios=[4, 4, 2, 2], patch_sizes=[4, 2, 2, 2],
                 strides=[4, 2, 2, 2], num_labels=10)


def perturbed(model, seed=0):
    """Move every parameter off its default init (zero biases, unit norms) by N(0, 0.02²) noise, so
    that a weight mapped to the wrong place shows in the output; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return model.eval()


def random_hf(cls, cfg, seed=0, noise_seed=1):
    """`cls(cfg)` with its own random init under torch's global `seed`, then `perturbed`."""
    torch.manual_seed(seed)
    return perturbed(cls(cfg), seed=noise_seed)


# -- graphspec's side ----------------------------------------------------------------------
def pipeline(graph, passes: str):
    """`graph` after the pass pipeline `passes` ("none": as lowered)."""
    if passes == "none":
        return graph
    from graphspec.passes import run_pipeline

    return run_pipeline(graph, passes)[0]


def generated(m, passes: str = "none"):
    """(graph, module, source): the loaded spec `m`'s graph after `passes` and the generated
    PyTorch module built from it (its own init), in eval mode."""
    graph = pipeline(m.graph, passes)
    gen = emit(graph, m.spec)
    return graph, getattr(load(gen.source), gen.class_name)().eval(), gen.source


def rel_err(got, want) -> float:
    """max |got - want| / max |want|."""
    return ((got - want).abs().max() / want.abs().max()).item()


def hf_logits_error(hf, net, graph, ids, family=None) -> float:
    """HF's weights mapped into `net` by graphspec.weights (strict), both run on the token `ids`:
    the relative error (`rel_err`) of net's logits against HF's."""
    net.load_state_dict(to_graphspec(hf, graph, family), strict=True)
    with torch.no_grad():
        return rel_err(net(ids), hf(input_ids=ids).logits)


def interpreted(graph, ids, params):
    """The IR interpreter's first output on the token `ids` with `params` (by full name)."""
    return next(iter(run(graph, {graph.inputs[0].name: ids}, params).values()))


def hf_interpreter_error(hf, graph, ids, family=None) -> float:
    """The IR interpreter run on the token `ids` with HF's weights (graphspec.weights' names): the
    relative error of its logits against HF's."""
    with torch.no_grad():
        return rel_err(interpreted(graph, ids, to_graphspec(hf, graph, family)), hf(input_ids=ids).logits)


def hf_backend_errors(hf, m, ids, family=None, key="input_ids") -> dict[str, float]:
    """The loaded spec `m` with HF's weights through ONNX (onnxruntime; unfused and after the
    default passes) and TVM Relax (llvm, default passes), on the token `ids` (HF's argument
    `key`: pixel_values for an image): {backend and passes: the relative error of its logits
    against HF's}."""
    from graphspec.backends import onnx as gx
    from graphspec.backends import tvm as gt

    with torch.no_grad():
        want = hf(**{key: ids}).logits
    errors = {}
    for passes in ("none", "default"):
        g = pipeline(m.graph, passes)
        arrays = {k: v.numpy() for k, v in to_graphspec(hf, g, family).items()}
        (got,) = gx.run(gx.export(g, arrays), {g.inputs[0].name: ids.numpy()})
        errors[f"onnx {passes}"] = rel_err(torch.from_numpy(got), want)
    low = gt.lower(g)
    (got,) = gt.Runner(gt.build(low, "llvm")[0], low.params, arrays)(ids.numpy())
    errors["tvm default"] = rel_err(torch.from_numpy(got), want)
    return errors


def config_imported(tmp_path, cfg):
    """`cfg` written by its to_json_file and `graphspec import`ed: (the spec text, tmp_path/s.yaml)."""
    import json

    from graphspec.interchange import from_hf_config

    cfg.to_json_file(str(tmp_path / "config.json"))
    text = from_hf_config(json.loads((tmp_path / "config.json").read_text()))
    (tmp_path / "s.yaml").write_text(text)
    return text, tmp_path / "s.yaml"


def task_outputs(out, task, base="last_hidden_state"):
    """An HF task model's outputs as a tuple: ...ForQuestionAnswering's start and end logits, else
    its logits (a base model's `base` output)."""
    if task == "ForQuestionAnswering":
        return out.start_logits, out.end_logits
    return (out.logits if hasattr(out, "logits") else getattr(out, base)),


def our_outputs(y, task):
    """The generated module's outputs as `task_outputs` orders them (a pooler head's: the pooled)."""
    if task == "ForQuestionAnswering":
        return y
    return (y[-1] if isinstance(y, tuple) else y),


def exported(tmp_path, name, overrides=(), weights=None):
    """`graphspec export NAME --format hf` into tmp_path/hf (with `--set` overrides and graphspec-named
    `weights`): (the CLI result, the directory); never a traceback."""
    from click.testing import CliRunner
    from graphspec.cli.main import main

    out = tmp_path / "hf"
    args = ["export", name, "--format", "hf", "-o", str(out), *[a for s in overrides for a in ("--set", s)]]
    r = CliRunner().invoke(main, args + (["--weights", str(weights)] if weights else []))
    assert "Traceback" not in r.output, r.output
    return r, out


def export_and_load(tmp_path, spec, net, cls, **kw):
    """net's weights -> `graphspec export SPEC --format hf --weights` into tmp_path/hf ->
    `cls.from_pretrained(**kw)`, checked for no missing, unexpected or mismatched keys: (the HF
    model in eval mode, the config.json written)."""
    import json

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "w.safetensors"))
    r, out = exported(tmp_path, str(spec), weights=tmp_path / "w.safetensors")
    assert r.exit_code == 0, r.output
    hf, info = cls.from_pretrained(out, output_loading_info=True, **kw)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return hf.eval(), json.loads((out / "config.json").read_text())


def imported_weights(tmp_path, spec, hf) -> dict:
    """`hf` saved by its own save_pretrained -> `graphspec import-weights SPEC --passes default`:
    the graphspec-named state dict written (never a traceback)."""
    from click.testing import CliRunner
    from graphspec.cli.main import main
    from safetensors.torch import load_file

    hf.save_pretrained(tmp_path / "hf2")
    r = CliRunner().invoke(main, ["import-weights", str(spec), str(tmp_path / "hf2" / "model.safetensors"), "-o",
                                  str(tmp_path / "back.safetensors"), "--passes", "default"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    return load_file(str(tmp_path / "back.safetensors"))


def round_trip_mismatches(net, graph, family, hf) -> list[str]:
    """net's state dict mapped back to HF's names: the keys missing, extra or not equal bit for
    bit to HF's own tensors ([] when the mapping is exact both ways)."""
    back, want = from_graphspec(net.state_dict(), graph, family, like=hf.state_dict()), hf.state_dict()
    return sorted(k for k in set(back) | set(want) if k not in back or k not in want
                  or not torch.equal(back[k], want[k]))


# `graphspec import` (tests/test_hf_import.py): per model_type, the Config class, the model class
# a config without `architectures` stands for, and two settings beside the defaults that change
# the model (a published size, and options: biases, GQA, head_dim, tied heads, windows, experts).
IMPORT_FAMILIES = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", [dict(n_embd=1024, n_layer=24, n_head=16),
                                               dict(tie_word_embeddings=False, n_inner=2048, activation_function="relu",
                                                    n_positions=256, scale_attn_weights=False)]),
    "bert": ("BertConfig", "BertModel", [dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                              intermediate_size=4096),
                                         dict(type_vocab_size=1, vocab_size=50000, max_position_embeddings=1024,
                                              hidden_act="relu")]),
    "vit": ("ViTConfig", "ViTModel", [dict(architectures=["ViTForImageClassification"], num_labels=10,
                                           image_size=384, patch_size=32),
                                      dict(qkv_bias=False, hidden_size=384, num_attention_heads=6,
                                           intermediate_size=1536, num_channels=1)]),
    "roberta": ("RobertaConfig", "RobertaModel", [dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                                       layer_norm_eps=1e-5, architectures=["RobertaForMaskedLM"]),
                                                  dict(hidden_size=1024, num_hidden_layers=4, num_attention_heads=16,
                                                       intermediate_size=4096, pad_token_id=0,
                                                       architectures=["RobertaForSequenceClassification"], num_labels=5)]),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaModel", [dict(vocab_size=250002, max_position_embeddings=514,
                                                                 type_vocab_size=1, layer_norm_eps=1e-5),
                                                            dict(hidden_act="relu", num_hidden_layers=3, type_vocab_size=2,
                                                                 architectures=["XLMRobertaForTokenClassification"])]),
    "camembert": ("CamembertConfig", "CamembertModel", [dict(vocab_size=32005, max_position_embeddings=514,
                                                             type_vocab_size=1, layer_norm_eps=1e-5),
                                                        dict(architectures=["CamembertForQuestionAnswering"],
                                                             num_hidden_layers=2, hidden_act="gelu_new")]),
    "electra": ("ElectraConfig", "ElectraModel", [dict(architectures=["ElectraForPreTraining"], hidden_act="relu"),
                                                  dict(architectures=["ElectraForMaskedLM"], embedding_size=64,
                                                       num_hidden_layers=3, tie_word_embeddings=False)]),
    "gptj": ("GPTJConfig", "GPTJForCausalLM", [dict(n_layer=4), dict(n_embd=1024, n_head=8, n_layer=3, rotary_dim=32,
                                                                  n_inner=2048, activation_function="relu",
                                                                  n_positions=512)]),
    "opt": ("OPTConfig", "OPTForCausalLM", [dict(hidden_size=2048, num_hidden_layers=4, num_attention_heads=32,
                                                 ffn_dim=8192),
                                            dict(enable_bias=False, tie_word_embeddings=False, activation_function="gelu",
                                                 max_position_embeddings=512)]),
    "distilbert": ("DistilBertConfig", "DistilBertModel", [dict(architectures=["DistilBertForMaskedLM"],
                                                                activation="relu", n_layers=3),
                                                           dict(architectures=["DistilBertForSequenceClassification"],
                                                                num_labels=4, dim=384, n_heads=6, hidden_dim=1536,
                                                                max_position_embeddings=256)]),
    "deit": ("DeiTConfig", "DeiTModel", [dict(architectures=["DeiTForImageClassificationWithTeacher"], num_labels=1000,
                                              hidden_size=384, num_attention_heads=6, intermediate_size=1536),
                                         dict(architectures=["DeiTForImageClassification"], qkv_bias=False,
                                              hidden_size=192, num_attention_heads=3, intermediate_size=768,
                                              image_size=384, num_channels=1)]),
    "swin": ("SwinConfig", "SwinModel", [dict(architectures=["SwinForImageClassification"], num_labels=1000,
                                              embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
                                         dict(image_size=384, window_size=12, qkv_bias=False, mlp_ratio=2.0)]),
    "llama": ("LlamaConfig", "LlamaForCausalLM", [dict(num_key_value_heads=8, attention_bias=True, mlp_bias=True),
                                                  dict(tie_word_embeddings=True, hidden_size=2048, head_dim=128,
                                                       num_attention_heads=32, num_hidden_layers=4)]),
    "mistral": ("MistralConfig", "MistralForCausalLM", [dict(sliding_window=None, num_key_value_heads=32),
                                                        dict(head_dim=64, num_hidden_layers=8, vocab_size=32768)]),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", [dict(num_local_experts=4, num_experts_per_tok=1),
                                                        dict(sliding_window=4096, num_key_value_heads=4,
                                                             num_hidden_layers=4)]),
    # gpt-oss-20b (GptOssConfig's defaults are 120b); 3 layers full, sliding, sliding without attention biases,
    # a tied head, head_dim 128 over 4 kv heads, window 64, the clamp at 5
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM",
                [dict(num_hidden_layers=24, num_local_experts=32),
                 dict(num_hidden_layers=3, attention_bias=False, tie_word_embeddings=True, sliding_window=64,
                      num_key_value_heads=4, head_dim=128, swiglu_limit=5.0,
                      layer_types=["full_attention", "sliding_attention", "sliding_attention"])]),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", [dict(num_key_value_heads=4, tie_word_embeddings=True),
                                                  dict(hidden_size=896, num_attention_heads=14, num_key_value_heads=2,
                                                       intermediate_size=4864, num_hidden_layers=24)]),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", [dict(hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                                                       num_attention_heads=8, num_key_value_heads=1, head_dim=256),
                                                  dict(attention_bias=True, num_hidden_layers=4)]),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", [dict(num_key_value_heads=8, attention_bias=True, tie_word_embeddings=True),
                                                  dict(hidden_size=1024, num_attention_heads=16, num_key_value_heads=8,
                                                       head_dim=128, intermediate_size=3072, num_hidden_layers=28,
                                                       tie_word_embeddings=True)]),  # Qwen3-0.6B
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", [dict(num_hidden_layers=4, norm_topk_prob=True,
                                                                  head_dim=128, num_local_experts=16),
                                                             dict(num_hidden_layers=2, attention_bias=True,
                                                                  tie_word_embeddings=True, num_experts_per_tok=2)]),
    # the Qwen1.5-MoE-A2.7B defaults renormalised; Qwen2-57B-A14B's experts (2560 wide, 8 shared widths), 2 layers
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", [dict(num_hidden_layers=4, num_key_value_heads=4,
                                                                  norm_topk_prob=True),
                                                             dict(num_hidden_layers=2, qkv_bias=False, num_experts=64,
                                                                  num_experts_per_tok=8, moe_intermediate_size=2560,
                                                                  shared_expert_intermediate_size=20480,
                                                                  tie_word_embeddings=True)]),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", [dict(num_key_value_heads=8, num_hidden_layers=4),
                                                  dict(attention_bias=True, tie_word_embeddings=True, hidden_size=2048,
                                                       num_attention_heads=16, num_hidden_layers=16)]),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", [dict(hidden_size=3584, intermediate_size=14336, num_hidden_layers=42,
                                                          num_attention_heads=16, num_key_value_heads=8),  # 9B
                                                     dict(hidden_size=4608, num_attention_heads=32, head_dim=128,
                                                          query_pre_attn_scalar=144, num_hidden_layers=4,
                                                          layer_types=["full_attention", "sliding_attention",
                                                                       "sliding_attention", "full_attention"],
                                                          attn_logit_softcapping=None, final_logit_softcapping=None,
                                                          tie_word_embeddings=False, attention_bias=True)]),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM",
                    [dict(vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,  # 1B
                          num_attention_heads=4, num_key_value_heads=1, head_dim=256, sliding_window=512,
                          max_position_embeddings=32768),
                     dict(num_hidden_layers=4, sliding_window=1024, attention_bias=True, tie_word_embeddings=False,
                          layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
                          rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6},
                                           "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})]),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", [dict(sliding_window=2047),  # Phi-3-mini-4k
                                                dict(vocab_size=200064, num_attention_heads=24, num_key_value_heads=8,
                                                     num_hidden_layers=4, tie_word_embeddings=True, resid_pdrop=0.1,
                                                     rope_parameters={"rope_theta": 10000.0, "rope_type": "default",
                                                                      "partial_rotary_factor": 0.75})]),
    "phi": ("PhiConfig", "PhiForCausalLM", [dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
                                                 rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.4,
                                                                  "rope_type": "default"}),
                                            dict(num_key_value_heads=8, num_hidden_layers=4)]),
    "t5": ("T5Config", "T5Model", [dict(**T5_BASE), dict(d_kv=32, num_decoder_layers=3)]),
    # SigLIP So400m/14 @384's vision tower (27×27 patches, 6 pixels cropped); one without the MAP head,
    # exact GELU, one channel (PaliGemma's and Gemma 3's layout, vision_use_head false)
    "siglip_vision_model": ("SiglipVisionConfig", "SiglipVisionModel",
                            [dict(hidden_size=1152, image_size=384, intermediate_size=4304, num_attention_heads=16,
                                  num_hidden_layers=27, patch_size=14),
                             dict(vision_use_head=False, hidden_act="gelu", num_channels=1, num_hidden_layers=4,
                                  image_size=448, patch_size=14, layer_norm_eps=1e-5)]),
    # DeepSeek-V2 (arXiv:2405.04434 §3.1.2: 60 layers, d 5120, 160 experts top 6 from 3 of 8 groups, scaled by 16);
    # a V2-Lite-like 4 layers with q/kv biases, a tied head and YaRN
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM",
                    [dict(hidden_size=5120, intermediate_size=12288, moe_intermediate_size=1536, num_hidden_layers=60,
                          num_attention_heads=128, n_routed_experts=160, num_experts_per_tok=6,
                          topk_method="group_limited_greedy", n_group=8, topk_group=3, routed_scaling_factor=16.0,
                          first_k_dense_replace=1),
                     dict(hidden_size=2048, intermediate_size=10944, moe_intermediate_size=1408, num_hidden_layers=4,
                          num_attention_heads=16, q_lora_rank=None, num_experts_per_tok=6, first_k_dense_replace=1,
                          attention_bias=True, tie_word_embeddings=True, max_position_embeddings=163840,
                          rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 40.0,
                                           "original_max_position_embeddings": 4096, "beta_fast": 32.0,
                                           "beta_slow": 1.0, "mscale": 0.707, "mscale_all_dim": 0.707,
                                           "truncate": True})]),
    # Moonlight-16B-A3B-like (a deepseek_v3 config: no query latent, 64 experts top 6 + 2 shared, one group); 4
    # layers rotating halves, 4 groups top 2, weights not renormalised, q/kv/o biases, a tied head
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM",
                    [dict(vocab_size=163840, hidden_size=2048, intermediate_size=11264, moe_intermediate_size=1408,
                          num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16, q_lora_rank=None,
                          n_routed_experts=64, num_experts_per_tok=6, n_shared_experts=2, n_group=1, topk_group=1,
                          first_k_dense_replace=1, routed_scaling_factor=2.446),
                     dict(num_hidden_layers=4, rope_interleave=False, n_group=4, topk_group=2, norm_topk_prob=False,
                          attention_bias=True, tie_word_embeddings=True)]),
    # SmolLM3-3B's shape (RoPE base 5e6, 65536 positions; a NoPE layer every 4th); 6 layers with a NoPE layer every
    # 3rd, no GQA, biases and an untied head; 4 layers with NoPE where no_rope_layers has a 0 (no repeating run)
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM",
                [dict(rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0}, max_position_embeddings=65536),
                 dict(num_hidden_layers=6, no_rope_layer_interval=3, num_key_value_heads=16, attention_bias=True,
                      mlp_bias=True, tie_word_embeddings=False),
                 dict(num_hidden_layers=4, no_rope_layers=[0, 1, 1, 0])]),
    # Llama 4 Maverick's shape (128 experts every other layer, dense layers between, no q/k norm); 6 layers with a
    # NoPE layer every 3rd, no chunked attention, no temperature, q/k/v/o biases, head_dim 64, a tied head
    "llama4_text": ("Llama4TextConfig", "Llama4ForCausalLM",
                    [dict(num_local_experts=128, interleave_moe_layer_step=2, use_qk_norm=False,
                          max_position_embeddings=1048576),
                     dict(num_hidden_layers=6, no_rope_layer_interval=3, attention_chunk_size=None,
                          attn_temperature_tuning=False, attention_bias=True, tie_word_embeddings=True, head_dim=64)]),
    # OLMo 3 7B's shape (vocabulary 100278, YaRN on the full layers, 65536 positions); 6 layers sliding and full
    # alternating over 64 tokens, GQA, biases, a tied head, the sliding layers with their own RoPE base
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM",
              [dict(vocab_size=100278, max_position_embeddings=65536, rms_norm_eps=1e-6,
                    rope_parameters={"full_attention": {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 8.0,
                                                        "original_max_position_embeddings": 8192, "beta_fast": 32.0,
                                                        "beta_slow": 1.0, "attention_factor": 1.2079441541679836},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0}}),
               dict(num_hidden_layers=6, layer_types=["sliding_attention", "full_attention"] * 3, sliding_window=64,
                    num_key_value_heads=8, attention_bias=True, tie_word_embeddings=True,
                    rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 500000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})]),
    # GLM-4.5's shape (355B: d 5120, 92 layers, 3 dense, 160 experts of 1536, q/k norm, ×2.5, partial RoPE 0.5);
    # 4 layers with 2 dense, 4 groups top 2 not renormalised, no shared expert, full RoPE, MHA, a tied head
    "glm4_moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM",
                 [dict(hidden_size=5120, num_hidden_layers=92, intermediate_size=12288, moe_intermediate_size=1536,
                       n_routed_experts=160, first_k_dense_replace=3, routed_scaling_factor=2.5, use_qk_norm=True,
                       head_dim=128, attention_bias=True, max_position_embeddings=131072,
                       rope_parameters={"rope_type": "default", "rope_theta": 1e6, "partial_rotary_factor": 0.5}),
                  dict(num_hidden_layers=4, first_k_dense_replace=2, n_group=4, topk_group=2, norm_topk_prob=False,
                       n_shared_experts=0, num_key_value_heads=96, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0})]),
    "pvt": ("PvtConfig", "PvtForImageClassification", [dict(depths=[3, 4, 6, 3]),
                                                       dict(qkv_bias=False, num_labels=10, mlp_ratios=[4, 4, 4, 4])]),
}


# The families whose Config class's defaults describe no model that runs, and the option an import
# of them names (DeepseekV2Config: num_experts_per_tok None, a router that picks no k)
REFUSED_DEFAULTS = {"deepseek_v2": "option num_experts_per_tok = null",
                    "glm4_moe": "option head_dim = null"}  # Glm4MoeConfig: 4096 // 96 = 42 dims, 21 rotated


def hf_classes(model_type: str, settings: dict | None = None):
    """(Config class, model class) for an import case: `architectures` picks the model class."""
    cfg_cls, model_cls, _ = IMPORT_FAMILIES[model_type]
    arch = (settings or {}).get("architectures")
    return getattr(transformers, cfg_cls), getattr(transformers, arch[0] if arch else model_cls)


# config.json files as model repositories ship them (transformers 4.x: top-level `rope_theta`,
# `rope_scaling: null`, `partial_rotary_factor`, `torch_dtype`), with the bundled spec each
# should reproduce. Each entry was checked key by key against a public copy of the hub file,
# named above it (repository, path, commit as the code index or a fetched snapshot showed it).
PUBLISHED_CONFIGS = {
    # openai-community/gpt2: Girafboy/pytorchKQI example/evaluate.py @9632690 (`gpt2`) and
    # mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f (`gpt2`); both agree key for key.
    "gpt2": {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
             "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
             "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
             "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
             "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
             "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
             "vocab_size": 50257},
    # meta-llama/Llama-2-7b-hf: Girafboy/pytorchKQI example/evaluate.py @9632690 (`Llama_2_7b_hf`);
    # subho406/mlstm_kernels mlstm_kernels/utils/benchmark/benchmarks/huggingface_model_benchmark.py
    # @00fb260 (`llama_2_config`) agrees. The earlier fixture lacked `_name_or_path`.
    "llama2_7b": {"_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"],
                  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
                  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008,
                  "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32,
                  "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
                  "rope_scaling": None, "tie_word_embeddings": False, "torch_dtype": "float16",
                  "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000},
    # mistralai/Mistral-7B-v0.1: tanganke/fusion_bench tests/test_depth_upscaling.py @54c9e8c (the
    # MistralConfig(**{...}) headed by the hub file's URL); agrees key for key.
    "mistral_7b": {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
                   "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
                   "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
                   "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                   "sliding_window": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                   "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000},
    # mistralai/Mixtral-8x7B-v0.1: mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f
    # (`Mixtral-8x7B-v0.1`); agrees key for key.
    "mixtral_8x7b": {"architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1,
                     "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
                     "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mixtral",
                     "num_attention_heads": 32, "num_experts_per_tok": 2, "num_hidden_layers": 32,
                     "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
                     "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.02,
                     "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                     "transformers_version": "4.36.0.dev0", "use_cache": True, "vocab_size": 32000},
    # microsoft/phi-2 (the transformers-native file, model_type phi): sdpython/experimental-experiment
    # experimental_experiment/torch_models/llm_model_helper.py @a8dbf15 (get_phi2). The earlier
    # fixture lacked `_name_or_path`.
    "phi2": {"_name_or_path": "microsoft/phi-2", "architectures": ["PhiForCausalLM"], "attention_dropout": 0.0,
             "bos_token_id": 50256, "embd_pdrop": 0.0,
             "eos_token_id": 50256, "hidden_act": "gelu_new", "hidden_size": 2560, "initializer_range": 0.02,
             "intermediate_size": 10240, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "phi",
             "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
             "partial_rotary_factor": 0.4, "qk_layernorm": False, "resid_pdrop": 0.1, "rope_scaling": None,
             "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
             "transformers_version": "4.37.0", "use_cache": True, "vocab_size": 51200},
    # google/gemma-2-2b: Girafboy/pytorchKQI example/evaluate.py @9632690 (`gemma_2_2b`: eos 1,
    # float32); agrees key for key. (mlc-llm's `gemma2_2b` is gemma-2-2b-it's file: eos [1, 107].)
    "gemma2_2b": {"architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                  "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
                  "eos_token_id": 1, "final_logit_softcapping": 30.0, "head_dim": 256,
                  "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
                  "initializer_range": 0.02, "intermediate_size": 9216, "max_position_embeddings": 8192,
                  "model_type": "gemma2", "num_attention_heads": 8, "num_hidden_layers": 26,
                  "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
                  "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32",
                  "transformers_version": "4.42.4", "use_cache": True, "vocab_size": 256000},
    # Qwen/Qwen3-8B: kohya-ss/musubi-tuner src/musubi_tuner/zimage/zimage_utils.py @30c658c
    # (QWEN3_8B_CONFIG_JSON); agrees key for key.
    "qwen3_8b": {"architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                 "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
                 "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 12288,
                 "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
                 "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
                 "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": False,
                 "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
                 "use_sliding_window": False, "vocab_size": 151936},
    # meta-llama/Llama-3.1-8B (the legacy rope_scaling dict with rope_type "llama3"): subho406/mlstm_kernels
    # mlstm_kernels/utils/benchmark/benchmarks/huggingface_model_benchmark.py @00fb260 (`llama_3_1_config`);
    # agrees key for key. (mlc-llm's `llama3_1_8b` is the Instruct file: eos [128001, 128008, 128009].)
    "llama3_1_8b": {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
                    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072,
                    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
                    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
                    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
                    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
                    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256},
    # google/gemma-3-1b-pt (rope_theta / rope_local_base_freq / sliding_window_pattern): NOT checked
    # against a copy of the -pt file. mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f
    # (`gemma3_1b_it`) holds google/gemma-3-1b-it's file, which agrees key for key but for
    # eos_token_id ([1, 106] there; the -pt value 1 here is unverified).
    "gemma3_1b": {"architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                  "attn_logit_softcapping": None, "bos_token_id": 2, "cache_implementation": "hybrid",
                  "eos_token_id": 1, "final_logit_softcapping": None, "head_dim": 256,
                  "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "initializer_range": 0.02,
                  "intermediate_size": 6912, "max_position_embeddings": 32768, "model_type": "gemma3_text",
                  "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0,
                  "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
                  "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
                  "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0", "use_cache": True,
                  "vocab_size": 262144},
    # deepseek-ai/DeepSeek-V2-Lite: mlc-ai/mlc-llm python/mlc_llm/model/model_preset.py @79d603f
    # (`deepseek_v2_lite`, an abridged copy) agrees on every key it has and gives transformers_version
    # 4.33.1 (this fixture had 4.39.3). The keys it leaves out (attention_dropout, auto_map,
    # aux_loss_alpha, q_lora_rank null, seq_aux, tie_word_embeddings) are as two other public copies
    # have them (a C++ test's "verbatim" DeepSeek-V2-Lite config and a log of the -Chat model's
    # config; the code index showed neither's repository). The original code's topk_method,
    # scoring_func, moe_layer_freq and aux-loss keys sit beside the legacy rope_theta / rope_scaling (yarn).
    "deepseek_v2_lite": {"architectures": ["DeepseekV2ForCausalLM"], "attention_bias": False,
                         "attention_dropout": 0.0,
                         "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV2Config",
                                      "AutoModel": "modeling_deepseek.DeepseekV2Model",
                                      "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"},
                         "aux_loss_alpha": 0.001, "bos_token_id": 100000, "eos_token_id": 100001,
                         "first_k_dense_replace": 1, "hidden_act": "silu", "hidden_size": 2048,
                         "initializer_range": 0.02, "intermediate_size": 10944, "kv_lora_rank": 512,
                         "max_position_embeddings": 163840, "model_type": "deepseek_v2",
                         "moe_intermediate_size": 1408, "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": 64,
                         "n_shared_experts": 2, "norm_topk_prob": False, "num_attention_heads": 16,
                         "num_experts_per_tok": 6, "num_hidden_layers": 27, "num_key_value_heads": 16,
                         "pretraining_tp": 1, "q_lora_rank": None, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                         "rms_norm_eps": 1e-06,
                         "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                                          "original_max_position_embeddings": 4096, "type": "yarn"},
                         "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax",
                         "seq_aux": True, "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy",
                         "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True,
                         "v_head_dim": 128, "vocab_size": 102400},
    # deepseek-ai/DeepSeek-V3: Gabriel-Yoon/LLMServingSim configs/model/deepseek-ai/DeepSeek-V3.json
    # @5e8b0f2 agrees key for key except a "head_dim": 128 that copy adds (a second public copy, a
    # markdown dump of hub config.json files whose repository the index did not show, has the same
    # keys without it). The file has no aux_loss_alpha or seq_aux (this fixture had both).
    "deepseek_v3": {"architectures": ["DeepseekV3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                    "auto_map": {"AutoConfig": "configuration_deepseek.DeepseekV3Config",
                                 "AutoModel": "modeling_deepseek.DeepseekV3Model",
                                 "AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"},
                    "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
                    "first_k_dense_replace": 3, "hidden_act": "silu", "hidden_size": 7168, "initializer_range": 0.02,
                    "intermediate_size": 18432, "kv_lora_rank": 512, "max_position_embeddings": 163840,
                    "model_type": "deepseek_v3", "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_group": 8,
                    "n_routed_experts": 256, "n_shared_experts": 1, "norm_topk_prob": True,
                    "num_attention_heads": 128, "num_experts_per_tok": 8, "num_hidden_layers": 61,
                    "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "q_lora_rank": 1536,
                    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                            "weight_block_size": [128, 128]},
                    "rms_norm_eps": 1e-06,
                    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                                     "original_max_position_embeddings": 4096, "type": "yarn"},
                    "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
                    "tie_word_embeddings": False, "topk_group": 4, "topk_method": "noaux_tc",
                    "torch_dtype": "bfloat16", "transformers_version": "4.33.1", "use_cache": True, "v_head_dim": 128,
                    "vocab_size": 129280},
}
