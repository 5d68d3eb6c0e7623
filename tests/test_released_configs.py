"""The config.json files of released checkpoints of today's families, as published on the Hugging
Face Hub (copied from public copies of them; no hub access here): `graphspec import` reads every
key (legacy ones such as `output_past`, `tie_weights_`, `activation_dropout` = 0 included) and
the spec's parameter count is the model class's own, built from that config on the meta device."""

from __future__ import annotations

import json

import pytest

import graphspec
from graphspec.interchange import from_hf_config

transformers = pytest.importorskip("transformers")
import reference_hf as hf_ref  # noqa: E402

RELEASED = {
    "roberta-base": {
        "architectures": ["RobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
        "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
        "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
        "model_type": "roberta", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
        "type_vocab_size": 1, "vocab_size": 50265},
    "xlm-roberta-base": {
        "architectures": ["XLMRobertaForMaskedLM"], "attention_probs_dropout_prob": 0.1, "bos_token_id": 0,
        "eos_token_id": 2, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
        "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 514,
        "model_type": "xlm-roberta", "num_attention_heads": 12, "num_hidden_layers": 12, "output_past": True,
        "pad_token_id": 1, "position_embedding_type": "absolute", "transformers_version": "4.17.0.dev0",
        "type_vocab_size": 1, "use_cache": True, "vocab_size": 250002},
    "distilbert-base-uncased": {
        "activation": "gelu", "architectures": ["DistilBertForMaskedLM"], "attention_dropout": 0.1, "dim": 768,
        "dropout": 0.1, "hidden_dim": 3072, "initializer_range": 0.02, "max_position_embeddings": 512,
        "model_type": "distilbert", "n_heads": 12, "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2, "sinusoidal_pos_embds": False, "tie_weights_": True,
        "transformers_version": "4.9.1", "vocab_size": 30522},
    "google/electra-small-discriminator": {
        "architectures": ["ElectraForPreTraining"], "attention_probs_dropout_prob": 0.1, "embedding_size": 128,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 256, "initializer_range": 0.02,
        "intermediate_size": 1024, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "electra",
        "num_attention_heads": 4, "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2,
        "vocab_size": 30522},
    "facebook/opt-125m": {
        "_name_or_path": "facebook/opt-125m", "activation_dropout": 0.0, "activation_function": "relu",
        "architectures": ["OPTForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 2, "do_layer_norm_before": True,
        "dropout": 0.1, "eos_token_id": 2, "ffn_dim": 3072, "hidden_size": 768, "init_std": 0.02, "layerdrop": 0.0,
        "max_position_embeddings": 2048, "model_type": "opt", "num_attention_heads": 12, "num_hidden_layers": 12,
        "pad_token_id": 1, "prefix": "</s>", "torch_dtype": "float16", "transformers_version": "4.21.0.dev0",
        "use_cache": True, "vocab_size": 50272, "word_embed_proj_dim": 768},
}
# the bundled spec each one is, and the head it has (roberta_base and xlm_roberta_base are the base model)
BUNDLED = {"roberta-base": ("roberta_base", "head=pooler"), "xlm-roberta-base": ("xlm_roberta_base", "head=pooler"),
           "google/electra-small-discriminator": ("electra_small", None), "facebook/opt-125m": ("opt_125m", None)}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_a_released_config_imports_and_counts_as_its_class(tmp_path, name):
    config = RELEASED[name]
    text = from_hf_config(json.loads(json.dumps(config)))
    (tmp_path / "s.yaml").write_text(text)
    cfg = transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k != "model_type"},
                                            model_type=config["model_type"])
    cls = getattr(transformers, config["architectures"][0])
    assert graphspec.load(tmp_path / "s.yaml").params() == hf_ref.n_params(hf_ref.meta(cls, cfg))
    if name in BUNDLED:
        spec, head = BUNDLED[name]
        m = graphspec.load(tmp_path / "s.yaml", [head] if head else [])
        assert (m.params(), m.macs()) == (graphspec.load(spec).params(), graphspec.load(spec).macs())
