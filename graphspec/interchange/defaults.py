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
    "roberta": dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                    max_position_embeddings=512, type_vocab_size=2, pad_token_id=1, layer_norm_eps=1e-12, is_decoder=False,
                    add_cross_attention=False, position_embedding_type="absolute", tie_word_embeddings=True),
    "xlm-roberta": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        max_position_embeddings=512, type_vocab_size=2, pad_token_id=1, layer_norm_eps=1e-12, is_decoder=False,
                        add_cross_attention=False, position_embedding_type="absolute", tie_word_embeddings=True),
    "camembert": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                      max_position_embeddings=512, type_vocab_size=2, pad_token_id=1, layer_norm_eps=1e-12, is_decoder=False,
                      add_cross_attention=False, position_embedding_type="absolute", tie_word_embeddings=True),
    "electra": dict(vocab_size=30522, embedding_size=128, hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                    intermediate_size=1024, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                    max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12, is_decoder=False,
                    add_cross_attention=False, position_embedding_type="absolute", tie_word_embeddings=True),
    "gptj": dict(vocab_size=50400, n_positions=2048, n_embd=4096, n_layer=28, n_head=16, rotary_dim=64, n_inner=None,
                 activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                 layer_norm_epsilon=1e-5, tie_word_embeddings=False, scale_attn_weights=True),
    "opt": dict(vocab_size=50272, hidden_size=768, num_hidden_layers=12, ffn_dim=3072, max_position_embeddings=2048,
                do_layer_norm_before=True, _remove_final_layer_norm=False, word_embed_proj_dim=None, dropout=0.1,
                attention_dropout=0.0, num_attention_heads=12, activation_function="relu", enable_bias=True,
                layer_norm_elementwise_affine=True, tie_word_embeddings=True, pad_token_id=1),
    "distilbert": dict(vocab_size=30522, max_position_embeddings=512, sinusoidal_pos_embds=False, n_layers=6,
                       n_heads=12, dim=768, hidden_dim=3072, dropout=0.1, attention_dropout=0.1, activation="gelu",
                       tie_word_embeddings=True),
    "vit": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12,
                image_size=224, patch_size=16, num_channels=3, qkv_bias=True, encoder_stride=16,
                pooler_output_size=None, pooler_act="tanh"),
    "deit": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
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
    "gemma3_text": {**{k: v for k, v in _LLAMA.items() if k not in ("hidden_act", "mlp_bias", "pretraining_tp")},
                    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
                    "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 131072,
                    "tie_word_embeddings": True, "query_pre_attn_scalar": 256, "sliding_window": 4096,
                    "layer_types": None, "final_logit_softcapping": None, "attn_logit_softcapping": None,
                    "use_bidirectional_attention": False,
                    "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                        "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}},
    "qwen3": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "pretraining_tp")}, "vocab_size": 151936,
              "intermediate_size": 22016, "max_position_embeddings": 32768, "head_dim": 128,
              "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28, "layer_types": None},
    "phi3": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "attention_bias", "pretraining_tp")},
             "vocab_size": 32064, "hidden_size": 3072, "intermediate_size": 8192, "rms_norm_eps": 1e-5,
             "max_position_embeddings": 4096, "original_max_position_embeddings": 4096, "resid_pdrop": 0.0,
             "embd_pdrop": 0.0, "sliding_window": None,
             "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 1.0, "rope_type": "default"}},
    "qwen3_moe": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "pretraining_tp")}, "vocab_size": 151936,
                  "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 24, "num_key_value_heads": 4,
                  "max_position_embeddings": 32768, "use_sliding_window": False, "sliding_window": None,
                  "max_window_layers": None, "layer_types": None, "decoder_sparse_step": 1,
                  "moe_intermediate_size": 768, "num_experts_per_tok": 8, "num_local_experts": 128,
                  "norm_topk_prob": False, "output_router_logits": False, "router_aux_loss_coef": 0.001,
                  "mlp_only_layers": []},
    "qwen2_moe": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "pretraining_tp", "attention_bias")},
                  "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
                  "num_attention_heads": 16, "num_key_value_heads": 16, "max_position_embeddings": 32768,
                  "use_sliding_window": False, "sliding_window": None, "max_window_layers": 28, "layer_types": None,
                  "decoder_sparse_step": 1, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
                  "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": False, "output_router_logits": False,
                  "router_aux_loss_coef": 0.001, "mlp_only_layers": [], "qkv_bias": True},
    "olmo2": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "pretraining_tp")},
              "vocab_size": 50304, "rms_norm_eps": 1e-5},
    "smollm3": {**_LLAMA, "vocab_size": 128256, "hidden_size": 2048, "num_hidden_layers": 36,
                "num_attention_heads": 16, "num_key_value_heads": 4, "max_position_embeddings": 32768,
                "tie_word_embeddings": True, "rope_parameters": {"rope_theta": 2000000.0, "rope_type": "default"},
                "use_sliding_window": False, "sliding_window": None, "no_rope_layers": None,
                "no_rope_layer_interval": 4, "layer_types": None},
    "deepseek_v2": {**_LLAMA, "vocab_size": 102400, "first_k_dense_replace": 0, "kv_lora_rank": 512,
                    "q_lora_rank": 1536, "n_group": None, "n_routed_experts": 64, "output_router_logits": False,
                    "n_shared_experts": 2, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
                    "routed_scaling_factor": 1.0, "topk_group": None, "topk_method": "greedy", "norm_topk_prob": False,
                    "v_head_dim": 128, "num_experts_per_tok": None, "moe_intermediate_size": 1407},
    "deepseek_v3": {**{k: v for k, v in _LLAMA.items() if k not in ("mlp_bias", "head_dim")}, "vocab_size": 129280,
                    "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
                    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
                    "n_shared_experts": 1, "n_routed_experts": 256, "output_router_logits": False,
                    "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
                    "v_head_dim": 128, "qk_nope_head_dim": 128, "n_group": 8, "topk_group": 4,
                    "num_experts_per_tok": 8, "first_k_dense_replace": 3, "norm_topk_prob": True,
                    "max_position_embeddings": 4096, "rope_interleave": True, "num_nextn_predict_layers": 1},
    "gpt_oss": dict(vocab_size=201088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=36,
                    num_local_experts=128, num_attention_heads=64, num_key_value_heads=8, head_dim=64,
                    sliding_window=128, tie_word_embeddings=False, hidden_act="silu", max_position_embeddings=131072,
                    rms_norm_eps=1e-5, attention_dropout=0.0, num_experts_per_tok=4, swiglu_alpha=1.702,
                    swiglu_limit=7.0, router_aux_loss_coef=0.001, output_router_logits=False, layer_types=None,
                    attention_bias=True,
                    rope_parameters={"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
                                     "beta_slow": 1.0, "truncate": False, "original_max_position_embeddings": 4096}),
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
# SigLIP's vision tower (SiglipVisionConfig); a whole `siglip` config reads its vision_config with these
DEFAULTS["siglip_vision_model"] = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                       num_attention_heads=12, num_channels=3, image_size=224, patch_size=16,
                                       hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, attention_dropout=0.0,
                                       vision_use_head=True)
DEFAULTS["siglip"] = dict(text_config=None, vision_config={})

# Llama 4's text model (Llama4TextConfig): every key the importer reads, as transformers 5 defaults it
DEFAULTS["llama4_text"] = dict(
    vocab_size=202048, hidden_size=5120, intermediate_size=8192, intermediate_size_mlp=16384, num_hidden_layers=48,
    num_attention_heads=40, num_key_value_heads=8, head_dim=128, hidden_act="silu", max_position_embeddings=131072,
    rms_norm_eps=1e-5, tie_word_embeddings=False, attention_dropout=0.0, num_experts_per_tok=1, num_local_experts=16,
    moe_layers=None, interleave_moe_layer_step=1, use_qk_norm=True, output_router_logits=False,
    router_aux_loss_coef=0.001, router_jitter_noise=0.0, rope_parameters={"rope_theta": 500000.0, "rope_type": "default"},
    no_rope_layers=None, no_rope_layer_interval=4, attention_chunk_size=8192, layer_types=None,
    attn_temperature_tuning=True, floor_scale=8192, attn_scale=0.1, attention_bias=False)
DEFAULTS["llama4"] = dict(text_config={}, vision_config=None, tie_word_embeddings=False)

# OLMo 3 (Olmo3Config: OLMo 2's, with a window and per-layer-type ropes) and GLM-4.5 (Glm4MoeConfig)
DEFAULTS["olmo3"] = {**DEFAULTS["olmo2"], "sliding_window": 4096, "layer_types": None,
                     "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 500000.0},
                                         "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0}}}
DEFAULTS["glm4_moe"] = dict(
    vocab_size=151552, hidden_size=4096, intermediate_size=10944, num_hidden_layers=46, num_attention_heads=96,
    num_key_value_heads=8, head_dim=None, hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
    tie_word_embeddings=False, attention_bias=False, attention_dropout=0.0, moe_intermediate_size=1408,
    num_experts_per_tok=8, output_router_logits=False, n_shared_experts=1, n_routed_experts=128,
    routed_scaling_factor=1.0, n_group=1, topk_group=1, first_k_dense_replace=1, norm_topk_prob=True,
    use_qk_norm=False, num_nextn_predict_layers=1, partial_rotary_factor=0.5,
    rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"})

# DINOv2 (Dinov2Config, Dinov2WithRegistersConfig: the same keys, registers' patch_size 16 and no use_mask_token)
_DINOV2 = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4, hidden_act="gelu",
               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-6, image_size=224,
               patch_size=14, num_channels=3, qkv_bias=True, layerscale_value=1.0, drop_path_rate=0.0,
               use_swiglu_ffn=False, apply_layernorm=True, reshape_hidden_states=True, stage_names=None,
               out_features=None, out_indices=None)
DEFAULTS["dinov2"] = {**_DINOV2, "use_mask_token": True}
DEFAULTS["dinov2_with_registers"] = {**_DINOV2, "patch_size": 16, "num_register_tokens": 4}

# ModernBERT (ModernBertConfig of transformers 5; the released config.json files carry the older
# global_attn_every_n_layers / global_rope_theta / local_rope_theta, read when the new keys are absent)
DEFAULTS["modernbert"] = dict(
    vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
    hidden_activation="gelu", max_position_embeddings=8192, norm_eps=1e-5, norm_bias=False, attention_bias=False,
    attention_dropout=0.0, layer_types=None, rope_parameters=None, local_attention=128, embedding_dropout=0.0,
    mlp_bias=False, mlp_dropout=0.0, decoder_bias=True, classifier_bias=False, classifier_activation="gelu",
    tie_word_embeddings=True)

# Keys of one family that change nothing graphspec builds (the pre-training heads' settings).
FAMILY_IGNORED: dict[str, set[str]] = {
    "gpt2": {"summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
             "summary_first_dropout", "n_ctx"},
    # EleutherAI/gpt-j-6b's config.json: GPT-2's sequence-summary keys (no head graphspec builds), `n_ctx`
    "gptj": {"summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
             "summary_first_dropout", "n_ctx"},
    "t5": {"n_positions", "output_past"},  # t5-base's config.json: unused by T5 (relative positions), use_cache
    # the heads' dropouts (a no-op in eval, as classifier_dropout); distilbert-base's `tie_weights_` (the tied
    # head, which tie_word_embeddings sets)
    "distilbert": {"qa_dropout", "seq_classif_dropout", "tie_weights_"},
    # ELECTRA: the sequence-summary settings of ElectraForMultipleChoice (not built)
    "electra": {"summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout"},
    "gemma2": {"cache_implementation"},  # gemma-2's config.json: the KV cache generate() uses ("hybrid")
    "gemma3_text": {"cache_implementation", "sliding_window_pattern"},
    # DeepSeek's released config.json: its remote code's class map (never followed)
    "deepseek_v2": {"auto_map"}, "deepseek_v3": {"auto_map"},  # the pattern: read when layer_types is absent
    # Llama 4's released text_config: a flag of Meta's llm-compressor release (no model change), generate()'s cache
    "llama4_text": {"for_llm_compressor", "cache_implementation"},
    # ModernBERT: init, flash-attention and sparse-prediction switches, torch.compile,
    # the [CLS] id; the released config.json's `position_embedding_type` ("absolute") and `layer_norm_eps`
    # (beside norm_eps), which ModernBertModel never reads
    "modernbert": {"initializer_cutoff_factor", "deterministic_flash_attn", "sparse_prediction",
                   "sparse_pred_ignore_index", "reference_compile", "repad_logits_with_grad", "cls_token_id",
                   "position_embedding_type", "layer_norm_eps"},
}
