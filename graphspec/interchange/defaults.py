"""What a Hugging Face config means when it leaves a key out: the defaults of transformers 5's
Config classes, for the keys graphspec's importers read (tests/test_hf_import.py checks them
against the classes), and per family the keys that do not change what the model computes."""

from __future__ import annotations

_ROPE = {"rope_theta": 10000.0, "rope_type": "default"}
_LLAMA = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
              num_key_value_heads=None, hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6,
              pretraining_tp=1, tie_word_embeddings=False, rope_parameters=_ROPE, attention_bias=False,
              attention_dropout=0.0, mlp_bias=False, head_dim=None)

DEFAULTS: dict[str, dict] = {
    "gpt2": dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12, n_inner=None,
                 activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                 layer_norm_epsilon=1e-5, scale_attn_weights=True, scale_attn_by_inverse_layer_idx=False,
                 reorder_and_upcast_attn=False, add_cross_attention=False, tie_word_embeddings=True),
    "bert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                 max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, is_decoder=False,
                 add_cross_attention=False, position_embedding_type="absolute", tie_word_embeddings=True),
    "vit": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
                image_size=224, patch_size=16, num_channels=3, qkv_bias=True, encoder_stride=16,
                pooler_output_size=None, pooler_act="tanh"),
    "swin": dict(image_size=224, patch_size=4, num_channels=3, embed_dim=96, depths=[2, 2, 6, 2],
                 num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4.0, qkv_bias=True, hidden_dropout_prob=0.0,
                 attention_probs_dropout_prob=0.0, drop_path_rate=0.1, hidden_act="gelu",
                 use_absolute_embeddings=False, layer_norm_eps=1e-5, encoder_stride=32),
    "llama": _LLAMA,
    "mistral": {**_LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "sliding_window": 4096},
    "mixtral": {**_LLAMA, "intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072,
                "rms_norm_eps": 1e-5, "sliding_window": None, "num_experts_per_tok": 2, "num_local_experts": 8,
                "output_router_logits": False, "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0,
                "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"}},
    "qwen2": {**_LLAMA, "vocab_size": 151936, "intermediate_size": 22016, "max_position_embeddings": 32768,
              "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28, "layer_types": None},
    "gemma": {**_LLAMA, "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28,
              "num_attention_heads": 16, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
              "max_position_embeddings": 8192, "tie_word_embeddings": True, "use_bidirectional_attention": None},
    "gemma2": {**{k: v for k, v in _LLAMA.items() if k not in ("hidden_act", "mlp_bias", "pretraining_tp")},
               "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
               "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
               "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192, "tie_word_embeddings": True,
               "query_pre_attn_scalar": 256, "sliding_window": 4096, "layer_types": None,
               "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0, "use_bidirectional_attention": None},
    "qwen3": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "pretraining_tp")}, "vocab_size": 151936,
              "intermediate_size": 22016, "max_position_embeddings": 32768, "head_dim": 128,
              "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28, "layer_types": None},
    "phi3": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "attention_bias", "pretraining_tp")},
             "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "rms_norm_eps": 1e-5,
             "max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "resid_pdrop": 0.0,
             "embd_pdrop": 0.0, "sliding_window": None,
             "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 1.0, "rope_type": "default"}},
    "phi": dict(vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                num_key_value_heads=None, resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0,
                hidden_act="gelu_new", max_position_embeddings=2048, layer_norm_eps=1e-5, tie_word_embeddings=False,
                rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"},
                qk_layernorm=False),
    "t5": dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=None, num_heads=8,
               relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
               layer_norm_epsilon=1e-6, feed_forward_proj="relu", is_decoder=False, dense_act_fn="relu",
               is_gated_act=False, scale_decoder_outputs=True, tie_word_embeddings=True),
    "pvt": dict(image_size=224, num_channels=3, num_encoder_blocks=4, depths=[2, 2, 2, 2],
                sequence_reduction_ratios=[8, 4, 2, 1], hidden_sizes=[64, 128, 320, 512], patch_sizes=[4, 2, 2, 2],
                strides=[4, 2, 2, 2], num_attention_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4], hidden_act="gelu",
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=0.0, layer_norm_eps=1e-6,
                qkv_bias=True, num_labels=1000),
    "detr": dict(backbone_config=None, backbone=None, use_timm_backbone=True, backbone_kwargs=None, num_channels=3,
                 num_queries=100, encoder_layers=6, encoder_ffn_dim=2048, encoder_attention_heads=8, decoder_layers=6,
                 decoder_ffn_dim=2048, decoder_attention_heads=8, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
                 activation_function="relu", d_model=256, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
                 auxiliary_loss=False, position_embedding_type="sine", dilation=False, num_labels=2),
}

# Keys of one family that change nothing graphspec builds (the pre-training heads' settings).
FAMILY_IGNORED: dict[str, set[str]] = {
    "gpt2": {"summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
             "summary_first_dropout", "n_ctx"},
    "t5": {"n_positions", "output_past"},  # t5-base's config.json: unused by T5 (relative positions), use_cache
    "gemma2": {"cache_implementation"},  # gemma-2's config.json: the KV cache generate() uses ("hybrid")
}
