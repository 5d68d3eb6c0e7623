"""Exact reference figures the tests compare the IR against.

Copied from the project's reference notes (paper_figures.md / paper_figures.yaml: exact-integer
re-implementations of the official code, not using torch); the project never reads those
notes at run time. Units: params = scalars; MACs = multiply-accumulates per forward pass,
batch 1, at the spec's input size. Each figure names its source:

- "official code": microsoft/Swin-Transformer `SwinTransformer.flops()` / `parameters()`.
- "torchvision": pytorch/vision weights metadata `num_params` and `_ops` (= MACs of conv,
  linear and matmul, class token and head included).
- "Swin Table 1": Liu et al. 2021 Table 1 ViT/DeiT figures (patch tokens only, no head).
- "HF / paper configs": parameter counts of the official configurations.
- "formula": no published MAC figure exists (NLP models); the arithmetic is written beside it.
"""

from __future__ import annotations

# -- parameters ----------------------------------------------------------------------------
PARAMS = {
    "swin_t": 28_288_354,  # official code; torchvision swin_t num_params (README 28M, paper 29M ✘)
    "swin_s": 49_606_258,  # official code (50M)
    "swin_b": 87_768_224,  # official code (88M)
    "swin_b_384": 87_903_584,  # official code; 87,768,224 + (23²−13²)·(2·4+2·8+18·16+2·32) = +135,360
    "swin_l": 196_735_516,  # official code, Swin-L 384 window 12 (197M)
    "vit_b16": 86_567_656,  # torchvision vit_b_16 num_params
    "deit_b": 86_567_656,  # = ViT-B/16 (DeiT Table 1)
    "vit_b16_384": 86_859_496,  # torchvision vit_b_16 (384) num_params
    "vit_l16": 304_326_632,  # torchvision vit_l_16 num_params (ViT paper's 307M ✘)
    "vit_h14": 632_045_800,  # torchvision vit_h_14 num_params
    "deit_s": 22_050_664,  # DeiT-S (timm deit_small_patch16_224)
    # DeiT⚗ (DeiT Table 5: 87M, 22M): HF DeiTForImageClassificationWithTeacher on meta (tests/test_deit_distilled.py);
    # timm deit_base_distilled_patch16_224: 87.3M
    "deit_b_distilled": 87_338_192,  # = deit_b + 768 (dist_token) + 768 (its position) + 768·1000 + 1000
    "deit_s_distilled": 22_436_432,  # = deit_s + 2·384 + 384·1000 + 1000
    "transformer_base": 63_082_496,  # assumed layout, vocab 37000, 3-way tying (paper 65M ✘)
    "transformer_big": 214_245_376,  # assumed layout (paper 213M, +0.6%)
    "bert_base": 109_482_240,  # BertModel incl. pooler (google-research/bert#1225; paper 110M)
    "bert_large": 335_141_888,  # BertModel incl. pooler (paper 340M ✘, −1.4%)
    # HF RobertaModel / XLMRobertaModel on meta (tests/test_roberta.py): (V + 514 + 1)·768 + 2·768 + 12 blocks + pooler
    "roberta_base": 124_645_632,  # fairseq README: 125M
    # HF ElectraForPreTraining on meta (tests/test_electra.py; ELECTRA Table 6: 14M, 110M)
    "electra_small": 13_549_057,
    "electra_base": 109_483_009,
    "gpt_j_6b": 6_050_882_784,  # HF GPTJForCausalLM on meta (tests/test_gptj.py; README 6,053,381,344 ✘)
    "opt_125m": 125_239_296,  # HF OPTForCausalLM on meta (tests/test_opt.py; OPT Table 1: 125M)
    "distilbert_base": 66_362_880,  # HF DistilBertModel on meta (tests/test_distilbert.py; Sanh et al. Table 3: 66M)
    "xlm_roberta_base": 278_043_648,  # XLM-R Table 7: 270M
    "gpt": 116_534_784,  # openai/finetune-transformer-lm params_shapes.json
    "gpt2": 124_439_808,  # openai/gpt-2 README (124M; the paper's 117M)
    "resnet50": 25_557_032,  # torchvision resnet50 num_params (BatchNorm affine counted)
    "detr_r50": 41_524_768,  # facebookresearch/detr, all parameters (FrozenBatchNorm2d = buffers)
    "detr_dc5_r50": 41_524_768,  # a dilation adds no parameter (HF's DETR on meta, tests/test_detr_dc5.py)
    "resnet101": 44_549_160,  # torchvision resnet101 num_params
    "detr_r101": 60_464_672,  # HF DetrForObjectDetection with ResNetConfig(depths=[3, 4, 23, 3]) on meta
    "detr_dc5_r101": 60_464_672,
    # HF T5Model, the shared table once: 32128·768 + encoder 84,954,240 + decoder 113,275,008
    "t5_base": 24_674_304 + 84_954_240 + 113_275_008,  # = 222,903,552 (paper: "about 220 million")
    "pvt_small": 24_485_864,  # HF PvtForImageClassification (PVT Table 1: 24.5M)
    "pvt_tiny": 13_229_288,  # HF PvtForImageClassification, depths 2-2-2-2 (13.2M)
    # SETR (no published count): ViT-L/16 without head 303,301,632 with its position table grown
    # from 197 to 1025 tokens (+828·1024), plus each decoder (see tests/test_setr.py)
    "setr_naive": 303_301_632 + 828 * 1024 + 301_206,
    "setr_pup": 303_301_632 + 828 * 1024 + (9 * 256 * (1024 + 3 * 256) + 4 * 2 * 256 + 256 * 150 + 150),
    "setr_mla": 303_301_632 - 2 * 1024 + 828 * 1024 + 4 * (1024 * 512 + 9 * 512 * 512 + 9 * 512 * 256
                                               + 2 * (512 + 512 + 256)) + 1024 * 150 + 150,
    # LLMs: Hugging Face's *ForCausalLM built from Config objects on the meta device (tests/test_llm_counts.py)
    "llama2_7b": 6_738_415_616,
    "mistral_7b": 7_241_732_096,
    "mixtral_8x7b": 46_702_792_704,  # 12,879,925,248 active (router + 2 of 8 experts)
    "phi2": 2_779_683_840,
    "gemma2_2b": 2_614_341_888,  # Gemma2ForCausalLM, tied head (tests/test_gemma2.py; paper Table 1: 2B, 590M embedding)
    "olmo2_7b": 7_298_617_344,  # Olmo2ForCausalLM on meta (tests/test_llm_counts.py; arXiv:2501.00656: 7B)
    # Qwen3MoeForCausalLM on meta (tests/test_llm_counts.py; arXiv:2505.09388 Table 2: 30.5B, 3.3B activated)
    "qwen3_30b_a3b": 30_532_122_624,
    # Qwen2MoeForCausalLM on meta (tests/test_moe_routers.py; the Qwen1.5-MoE blog: 14.3B, 2.7B activated)
    "qwen1_5_moe_a2_7b": 14_315_784_192,
    # DeepseekV2ForCausalLM on meta (tests/test_mla.py; arXiv:2405.04434 Appendix B: 15.7B, 2.4B activated)
    "deepseek_v2_lite": 15_706_484_224,
    # DeepseekV3ForCausalLM on meta (tests/test_deepseek_interchange.py; arXiv:2412.19437 §4.2: 671B, 37B activated)
    "deepseek_v3": 671_026_404_352,
    # GptOssForCausalLM on meta (tests/test_gpt_oss.py; arXiv:2508.10925: 20.9B, 3.6B active): 24·(q, k, v, o
    # 2880·9216 + 4096 + 2·512 + 2880 + sinks 64 + router 32·2880 + 32 + 32 experts·(3·2880² + 3·2880) + 2·2880)
    # + 2880 + 2·201088·2880 (untied)
    "gpt_oss_20b": 24 * (2880 * 9216 + 4096 + 2 * 512 + 2880 + 64 + 32 * 2880 + 32 + 32 * (3 * 2880**2 + 3 * 2880)
                         + 2 * 2880) + 2880 + 2 * 201_088 * 2880,
    # Qwen3ForCausalLM on meta (tests/test_hf_import.py; arXiv:2505.09388 Table 1: 8.2B, 6.95B non-embedding)
    "qwen3_8b": 36 * (4096 * (4096 + 2 * 1024) + 4096 * 4096 + 3 * 4096 * 12288 + 2 * 4096 + 2 * 128) + 4096
                + 2 * 151_936 * 4096,
    # Llama4ForCausalLM from Llama-4-Scout-17B-16E's text config on meta (tests/test_llama4.py): 48·(attention
    # 2·5120² + 2·5120·1024 + router 16·5120 + 16 experts and the shared one 17·3·5120·8192 + 2·5120) + 5120 +
    # 2·202048·5120 (untied; model card: 109B with the vision encoder, 17B active)
    "llama4_scout": 48 * (2 * 5120**2 + 2 * 5120 * 1024 + 16 * 5120 + 17 * 3 * 5120 * 8192 + 2 * 5120) + 5120
                    + 2 * 202_048 * 5120,
    # Olmo3ForCausalLM from Olmo-3-7B's config on meta (tests/test_olmo3.py): OLMo 2's 7B with the unpadded
    # dolma2 vocabulary, 32·(4·4096² + 3·4096·11008 + 4·4096) + 4096 + 2·100278·4096 (the hub: 7,298,011,136)
    "olmo3_7b": 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 4 * 4096) + 4096 + 2 * 100_278 * 4096,
    # Glm4MoeForCausalLM from GLM-4.5-Air's config on meta (tests/test_glm4_moe.py; arXiv:2508.06471: 106B, 12B
    # active): 46·(q, k, v with biases 4096·(12288 + 2·1024) + 12288 + 2·1024, o 12288·4096, 2·4096) + 1 dense
    # 3·4096·10944 + 45·(router 128·4096 + 128 experts and the shared one 129·3·4096·1408) + 4096 + 2·151552·4096
    "glm4_5_air": 46 * (4096 * 14336 + 14336 + 12288 * 4096 + 2 * 4096) + 3 * 4096 * 10944
                  + 45 * (128 * 4096 + 129 * 3 * 4096 * 1408) + 4096 + 2 * 151_552 * 4096,
    # Twins-PCPVT-S by hand from gvt.py (tests/test_twins.py; Table 1: 24.1M)
    "twins_pcpvt_s": 24_106_216,
    # LlamaForCausalLM / Gemma3ForCausalLM from the released configs on meta (tests/test_rope_scaling.py):
    # 32·(4096·(4096 + 2·1024) + 4096² + 3·4096·14336 + 2·4096) + 4096 + 2·128256·4096 (arXiv:2407.21783: 8B)
    "llama3_1_8b": 32 * (4096 * 6144 + 4096**2 + 3 * 4096 * 14336 + 2 * 4096) + 4096 + 2 * 128_256 * 4096,
    # 16·(2048·(2048 + 2·512) + 2048² + 3·2048·8192 + 2·2048) + 2048 + 128256·2048 (tied; model card: 1.23B)
    "llama3_2_1b": 16 * (2048 * 3072 + 2048**2 + 3 * 2048 * 8192 + 2 * 2048) + 2048 + 128_256 * 2048,
    # Phi3ForCausalLM from Phi-3.5-mini-instruct's config on meta (tests/test_longrope.py): 32·(3072·9216 + 3072² +
    # 3·3072·8192 + 2·3072) + 3072 + 2·32064·3072 (untied; arXiv:2404.14219 / model card: 3.8B)
    "phi3_5_mini": 32 * (3072 * 9216 + 3072**2 + 3 * 3072 * 8192 + 2 * 3072) + 3072 + 2 * 32_064 * 3072,
    # SmolLM3ForCausalLM on meta (tests/test_smollm3.py): 36·(2048·(2048 + 2·512) + 2048² + 3·2048·11008 + 2·2048)
    # + 2048 + 128256·2048 (tied; the blog: 3B)
    "smollm3_3b": 36 * (2048 * 3072 + 2048**2 + 3 * 2048 * 11008 + 2 * 2048) + 2048 + 128_256 * 2048,
    # 26·(1152·(1024 + 2·256) + 1024·1152 + 3·1152·6912 + 4·1152 + 2·256 q/k norms) + 1152 + 262144·1152
    # (tied; arXiv:2503.19786 Table 1: 302M embedding + 698M non-embedding)
    "gemma3_1b": 26 * (1152 * 1536 + 1024 * 1152 + 3 * 1152 * 6912 + 4 * 1152 + 2 * 256) + 1152 + 262_144 * 1152,
    # 62·(5376·(4096 + 2·2048) + 4096·5376 + 3·5376·21504 + 4·5376 + 2·128) + 5376 + 262208·5376 (tied; Table 1:
    # 1,416M embedding + 25,600M non-embedding)
    "gemma3_27b": 62 * (5376 * 8192 + 4096 * 5376 + 3 * 5376 * 21504 + 4 * 5376 + 2 * 128) + 5376 + 262_208 * 5376,
    # SigLIP vision towers (HF SiglipVisionModel on meta): L·(4(D² + D) + 2DF + F + D + 4D) + patch conv D·3·P² + D
    # + positions N·D + post_layernorm 2D + MAP head (probe D, in_proj 3D² + 3D, out D² + D, LN 2D, MLP 2DF + F + D)
    "siglip_so400m": 27 * (4 * (1152**2 + 1152) + 2 * 1152 * 4304 + 4304 + 5 * 1152) + 1152 * 3 * 14**2 + 1152
                     + 729 * 1152 + 2 * 1152 + (4 * 1152**2 + 8 * 1152 + 2 * 1152 * 4304 + 4304),  # 428,225,600
    "siglip_b16": 12 * (4 * (768**2 + 768) + 2 * 768 * 3072 + 3072 + 5 * 768) + 768 * 3 * 16**2 + 768
                  + 196 * 768 + 2 * 768 + (4 * 768**2 + 8 * 768 + 2 * 768 * 3072 + 3072),  # 92,884,224
    # DINOv2 (= HF Dinov2Model on meta less its mask_token, tests/test_dinov2.py): L·(attention 4(D² + D) + MLP
    # 8D² + 5D (g: SwiGLU 3DF + 2F + D) + norms 4D + LayerScale 2D) + patches D·3·14² + D + cls D + positions
    # (1 + 37²)·D + final norm 2D (+ registers 4D)
    "dinov2_s14": 12 * (12 * 384**2 + 15 * 384) + 384 * 3 * 14**2 + 384 + 384 + 1370 * 384 + 2 * 384,
    "dinov2_b14": 12 * (12 * 768**2 + 15 * 768) + 768 * 3 * 14**2 + 768 + 768 + 1370 * 768 + 2 * 768,
    "dinov2_l14": 24 * (12 * 1024**2 + 15 * 1024) + 1024 * 3 * 14**2 + 1024 + 1024 + 1370 * 1024 + 2 * 1024,
    "dinov2_g14": 40 * (4 * (1536**2 + 1536) + 3 * 1536 * 4096 + 2 * 4096 + 1536 + 6 * 1536) + 1536 * 3 * 14**2
                  + 1536 + 1536 + 1370 * 1536 + 2 * 1536,
    "dinov2_b14_reg": 12 * (12 * 768**2 + 15 * 768) + 768 * 3 * 14**2 + 768 + 768 + 1370 * 768 + 2 * 768 + 4 * 768,
    # ModernBERT (= HF ModernBertModel on meta, tests/test_modernbert.py), no biases: tokens V·D + embedding norm D
    # + L·(attention 4D² + GeGLU 3DF + mlp_norm D) + attn_norm D in all blocks but the first + final norm D
    "modernbert_base": 50368 * 768 + 768 + 22 * (4 * 768**2 + 3 * 768 * 1152 + 768) + 21 * 768 + 768,
    "modernbert_large": 50368 * 1024 + 1024 + 28 * (4 * 1024**2 + 3 * 1024 * 2624 + 1024) + 27 * 1024 + 1024,
}

# -- MACs, default convention (linear, conv, matmul; class token and head included) ------------
MACS = {
    # SETR at 512²: ViT-L/16 over 1025 tokens, 24·(12·1025·1024² + 2·1025²·1024), patch embedding
    # 1024·(768·1024), and the decoder (tests/test_setr.py)
    "setr_naive": 24 * (12 * 1025 * 1024**2 + 2 * 1025**2 * 1024) + 1024 * 768 * 1024 + 307_757_056,
    "setr_pup": 24 * (12 * 1025 * 1024**2 + 2 * 1025**2 * 1024) + 1024 * 768 * 1024 + 63_216_549_888,
    "setr_mla": 24 * (12 * 1025 * 1024**2 + 2 * 1025**2 * 1024) + 1024 * 768 * 1024 + 19_159_580_672,
    "resnet50": 4_087_136_256 + 2048 * 1000,  # conv MACs (fvcore's 4.09G) + fc
    # DETR at 800×1066 (25×34 map): backbone 69,976,448,000 + input_proj 850·2048·256
    # + encoder 6·(4·850·256² + 2·850²·256 + 2·850·256·2048) + decoder 1,825,382,400
    # + heads on all six decoder outputs 6·100·(256·92 + 2·256² + 256·4)
    "detr_r50": 69_976_448_000 + 850 * 2048 * 256 + 6 * (4 * 850 * 256**2 + 2 * 850**2 * 256
                + 2 * 850 * 256 * 2048) + 1_825_382_400 + 6 * 100 * (256 * 92 + 2 * 256**2 + 256 * 4),
    # R101 and DC5 at 800×1066: torch's FlopCounterMode / 2 on HF's DetrForObjectDetection (eager
    # attention; DC5's last stage dilated as tests/test_detr_dc5.py's dilate_last_stage does), run
    # once at full size (2026-12-03; the tests check the small sizes), without the auxiliary heads,
    # plus those heads: 5·100·(256·92 + 2·256² + 256·4). DC5's 50×67 map: 3350 encoder positions.
    "detr_dc5_r50": 173_173_632_000 + 5 * 100 * (256 * 92 + 2 * 256**2 + 256 * 4),
    "detr_r101": 144_615_910_400 + 5 * 100 * (256 * 92 + 2 * 256**2 + 256 * 4),
    "detr_dc5_r101": 236_622_310_400 + 5 * 100 * (256 * 92 + 2 * 256**2 + 256 * 4),
    "resnet101": 7_799_357_440 + 2048 * 1000,  # conv MACs (HF ResNet's FlopCounterMode / 2, torchvision 7.80G) + fc
    "swin_t": 4_490_566_656,  # torchvision swin_t _ops 4.491 = official flops() minus LayerNorms
    "swin_s": 8_740_875_264,  # official flops() minus LayerNorms
    "swin_b": 15_430_946_816,  # torchvision swin_b _ops 15.431
    "swin_b_384": 47_083_134_976,  # official flops() minus LayerNorms
    "swin_l": 103_919_087_616,  # official flops() minus LayerNorms (the printed 103.9G)
    "vit_b16": 17_563_828_224,  # torchvision _ops 17.564
    "deit_b": 17_563_828_224,  # = ViT-B/16
    "vit_b16_384": 55_484_350_464,  # torchvision _ops 55.484
    "vit_l16": 61_554_712_576,  # torchvision _ops 61.555
    "vit_h14": 167_295_109_120,  # torchvision _ops 167.295
    "deit_s": 4_598_882_304,  # torchvision convention (4.599)
    # DeiT⚗, N = 198 tokens: 12·(12·N·d² + 2·N²·d) + 196·768·d (patch conv) + 2·d·1000 (two heads);
    # = FlopCounterMode / 2 on HF's DeiTForImageClassificationWithTeacher, eager (timm: 17.7 GMACs for B)
    "deit_b_distilled": 12 * (12 * 198 * 768**2 + 2 * 198**2 * 768) + 196 * 768 * 768 + 2 * 768 * 1000,
    "deit_s_distilled": 12 * (12 * 198 * 384**2 + 2 * 198**2 * 384) + 196 * 768 * 384 + 2 * 384 * 1000,
    # formula, N = T = 128 tokens, d = width, f = d_ff, V = vocab:
    # block = 12·N·d² (f = 4d) + 2·N²·d; encoder block 4Nd² + 2N²d + 2Ndf;
    # decoder block with cross attention 8Nd² + 4N²d + 2Ndf; tied LM head N·d·V.
    # 6·(134,217,728 + 16,777,216 + 268,435,456) + 6·(268,435,456 + 33,554,432 + 268,435,456)
    #   + 128·512·37000 = 2,516,582,400 + 3,422,552,064 + 2,424,832,000
    "transformer_base": 8_363_966_464,
    # 6·(536,870,912 + 33,554,432 + 1,073,741,824) + 6·(1,073,741,824 + 67,108,864 + 1,073,741,824)
    #   + 128·1024·37000 = 9,865,003,008 + 13,287,555,072 + 4,849,664,000
    "transformer_big": 28_002_222_080,
    # 12·(12·128·768² + 2·128²·768) + 768² (pooler) = 12·931,135,488 + 589,824
    "bert_base": 11_174_215_680,
    # N = 128: blocks + the embedding projection (small: 128 -> 256) + the discriminator's dense and logit
    "electra_small": 12 * (12 * 128 * 256**2 + 2 * 128**2 * 256) + 128 * 128 * 256 + 128 * (256**2 + 256),
    "electra_base": 12 * (12 * 128 * 768**2 + 2 * 128**2 * 768) + 128 * (768**2 + 768),
    "gpt_j_6b": 28 * (12 * 128 * 4096**2 + 2 * 128**2 * 4096) + 128 * 4096 * 50400,  # FlopCounterMode / 2
    "opt_125m": 12 * (12 * 128 * 768**2 + 2 * 128**2 * 768) + 128 * 768 * 50272,  # FlopCounterMode / 2 on HF's
    "distilbert_base": 6 * (12 * 128 * 768**2 + 2 * 128**2 * 768),  # = 5,586,812,928, no pooler
    "roberta_base": 11_174_215_680,  # = bert_base (FlopCounterMode / 2 on HF's RobertaModel, 128 tokens)
    "xlm_roberta_base": 11_174_215_680,
    # 24·(12·128·1024² + 2·128²·1024) + 1024² = 24·1,644,167,168 + 1,048,576
    "bert_large": 39_461_060_608,
    # 12·931,135,488 + 128·768·40478 (tied head) = 11,173,625,856 + 3,979,149,312
    "gpt": 15_152_775_168,
    # 12·931,135,488 + 128·768·50257 (tied head) = 11,173,625,856 + 4,940,464,128
    "gpt2": 16_114_089_984,
    # T5-base at N = T = 128, d = 768, d_ff = 3072, no head: encoder 12·(4Nd² + 2N²d + 2N·d·d_ff)
    # + decoder 12·(8Nd² + 4N²d + 2N·d·d_ff) = 12·931,135,488 + 12·1,258,291,200
    "t5_base": 12 * 931_135_488 + 12 * 1_258_291_200,
    "pvt_small": 3_815_701_504,  # = FlopCounterMode/2 on HF's PVT-Small, eager attention (Table 1: 3.8G)
    "pvt_tiny": 1_932_911_616,  # PVT's formula with depths 2-2-2-2 (tests/test_pvt.py; Table 1: 1.9G)
    # LLMs at N = 128, per token: 32 layers of linears + the untied head 4096·32000 = 131,072,000;
    # attention 32·2·128²·d (QKᵀ, ·V; causal and sliding counted dense, GQA's k/v repeated).
    # Llama-2-7B: 32·(4·4096² + 3·4096·11008) + 131,072,000 = 6,607,077,376 per token
    "llama2_7b": 128 * 6_607_077_376 + 32 * 2 * 128**2 * 4096,
    # Mistral-7B: 32·(2·4096² + 2·4096·1024 + 3·4096·14336) + 131,072,000 = 7,110,393,856
    "mistral_7b": 128 * 7_110_393_856 + 32 * 2 * 128**2 * 4096,
    # Mixtral-8x7B: 32·(41,943,040 + router 4096·8 + 2 experts·3·4096·14336) + 131,072,000 = 12,748,587,008
    "mixtral_8x7b": 128 * 12_748_587_008 + 32 * 2 * 128**2 * 4096,
    # Phi-2: 32·(4·2560² + 2·2560·10240) + 2560·51200 = 2,647,654,400
    "phi2": 128 * 2_647_654_400 + 32 * 2 * 128**2 * 2560,
    # Gemma-2-2B: 26·(2304·(2048 + 2·1024) + 2048·2304 + 3·2304·9216) + tied head 2304·256000 per
    # token, attention 26·2·8·128²·256 (sliding and global both dense at N = 128 < 4096); equal to
    # FlopCounterMode/2 on Gemma2ForCausalLM (eager) on the meta device
    "gemma2_2b": 128 * (26 * (2304 * 4096 + 2048 * 2304 + 3 * 2304 * 9216) + 2304 * 256_000) + 26 * 2 * 8 * 128**2 * 256,
    # OLMo 2 7B: 32·(4·4096² + 3·4096·11008) + head 4096·100352 per token, attention 32·2·128²·4096;
    # equal to FlopCounterMode/2 on Olmo2ForCausalLM (eager) on the meta device
    "olmo2_7b": 128 * (32 * (4 * 4096**2 + 3 * 4096 * 11008) + 4096 * 100_352) + 32 * 2 * 128**2 * 4096,
    # Qwen3-30B-A3B: 48·(q 2048·4096 + k, v 2·2048·512 + o 4096·2048 + router 2048·128 + 8 experts ·
    # 3·2048·768) + head 2048·151936 per token, attention 48·2·32·128²·128 (head size 128); a small
    # config equals FlopCounterMode/2 on Qwen3MoeForCausalLM (tests/test_llm_counts.py)
    "qwen3_30b_a3b": 128 * (48 * (2048 * 4096 + 2 * 2048 * 512 + 4096 * 2048 + 2048 * 128 + 8 * 3 * 2048 * 768)
                            + 2048 * 151_936) + 48 * 2 * 32 * 128**2 * 128,
    # Qwen1.5-MoE-A2.7B: 24·(q, k, v, o 4·2048² + router 2048·60 + 4 experts · 3·2048·1408 + shared
    # expert 3·2048·5632 + its gate 2048) + head 2048·151936 per token, attention 24·2·128²·2048; a
    # small config equals FlopCounterMode/2 on Qwen2MoeForCausalLM (tests/test_moe_routers.py)
    "qwen1_5_moe_a2_7b": 128 * (24 * (4 * 2048**2 + 2048 * 60 + 4 * 3 * 2048 * 1408 + 3 * 2048 * 5632 + 2048)
                                + 2048 * 151_936) + 24 * 2 * 128**2 * 2048,
    # DeepSeek-V2-Lite: 27·MLA (q 2048·3072 + kv_a 2048·576 + kv_b 512·4096 + o 2048·2048) + dense
    # 3·2048·10944 + 26·(router 2048·64 + 6 experts · 3·2048·1408 + shared 3·2048·2816) + head
    # 2048·102400 per token, attention 27·16·128²·(192 + 128); = FlopCounterMode/2 on
    # DeepseekV2ForCausalLM, meta for attention and dense parts, a small real config for the MoE (tests/test_mla.py)
    "deepseek_v2_lite": 128 * (27 * (2048 * 3072 + 2048 * 576 + 512 * 4096 + 2048 * 2048) + 3 * 2048 * 10944
                               + 26 * (2048 * 64 + 6 * 3 * 2048 * 1408 + 3 * 2048 * 2816) + 2048 * 102_400)
                        + 27 * 16 * 128**2 * (192 + 128),
    # DeepSeek-V3: 61·MLA (q_a 7168·1536 + q_b 1536·24576 + kv_a 7168·576 + kv_b 512·32768 + o 16384·7168)
    # + 3 dense 3·7168·18432 + 58·(router 7168·256 + 8 experts · 3·7168·2048 + shared 3·7168·2048) + head
    # 7168·129280 per token, attention 61·128·128²·(192 + 128); = FlopCounterMode/2 on DeepseekV3ForCausalLM,
    # meta for attention and dense parts, a small real config for the MoE (tests/test_deepseek_interchange.py)
    "deepseek_v3": 128 * (61 * (7168 * 1536 + 1536 * 24576 + 7168 * 576 + 512 * 32768 + 16384 * 7168)
                          + 3 * 3 * 7168 * 18432 + 58 * (7168 * 256 + 8 * 3 * 7168 * 2048 + 3 * 7168 * 2048)
                          + 7168 * 129_280) + 61 * 128 * 128**2 * (192 + 128),
    # gpt-oss-20b: 24·(q, k, v, o 2880·9216 + router 2880·32 + 4 experts · 3·2880²) + head 2880·201088 per token,
    # attention 24·2·64·128²·64 (window 128 = N: every causal pair); = FlopCounterMode/2 on a small eager
    # GptOssForCausalLM (tests/test_gpt_oss.py); the sinks' concat and softmax are no MACs
    "gpt_oss_20b": 128 * (24 * (2880 * 9216 + 2880 * 32 + 4 * 3 * 2880**2) + 2880 * 201_088) + 24 * 2 * 64 * 128**2 * 64,
    # Qwen3-8B: 36·(q 4096·4096 + k, v 2·4096·1024 + o 4096·4096 + 3·4096·12288) + untied head
    # 4096·151936 per token, attention 36·2·32·128²·128; = FlopCounterMode/2 on Qwen3ForCausalLM
    # (eager) on the meta device (tests/test_hf_import.py)
    "qwen3_8b": 128 * (36 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 12288) + 4096 * 151_936)
                + 36 * 2 * 32 * 128**2 * 128,
    # Llama 4 Scout: 48·(q, o 2·5120² + k, v 2·5120·1024 + router 5120·16 + one routed expert and the shared one
    # 2·3·5120·8192) + head 5120·202048 per token, attention 48·2·128²·5120 (chunks of 8192 > N: all pairs);
    # FlopCounterMode/2 on Llama4ForCausalLM (eager, meta) is 48·128·15·3·5120·8192 more: HF runs every expert
    # on every token, its input scaled by 0 outside the top-1 (tests/test_llama4.py)
    "llama4_scout": 128 * (48 * (2 * 5120**2 + 2 * 5120 * 1024 + 5120 * 16 + 2 * 3 * 5120 * 8192) + 5120 * 202_048)
                    + 48 * 2 * 128**2 * 5120,
    # OLMo 3 7B: OLMo 2's counts with vocabulary 100278 (sliding layers dense: N = 128 < the 4096 window); GLM-4.5-Air:
    # 46·attention (q, k, v 4096·14336, o 12288·4096) + 1 dense SwiGLU + 45·(router 4096·128 + 8 experts and the
    # shared one 9·3·4096·1408) + head, scores and values 46·2·128²·12288; both = FlopCounterMode/2 (eager; GLM's
    # experts on a small real model: tests/test_olmo3.py, test_glm4_moe.py)
    "olmo3_7b": 128 * (32 * (4 * 4096**2 + 3 * 4096 * 11008) + 4096 * 100_278) + 32 * 2 * 128**2 * 4096,
    "glm4_5_air": 128 * (46 * (4096 * 14336 + 12288 * 4096) + 3 * 4096 * 10944 + 45 * (4096 * 128 + 9 * 3 * 4096 * 1408)
                         + 4096 * 151_552) + 46 * 2 * 128**2 * 12288,
    "twins_pcpvt_s": 3_809_459_968,  # by hand from gvt.py (tests/test_twins.py; Table 1: 3.8G)
    # Llama 3.1 8B / 3.2 1B / Gemma 3 1B at N = 128: linears per token + attention (dense), equal to
    # FlopCounterMode/2 on the HF models (eager) on the meta device (tests/test_rope_scaling.py)
    "llama3_1_8b": 128 * (32 * (4096 * 6144 + 4096**2 + 3 * 4096 * 14336) + 4096 * 128_256) + 32 * 2 * 128**2 * 4096,
    "llama3_2_1b": 128 * (16 * (2048 * 3072 + 2048**2 + 3 * 2048 * 8192) + 2048 * 128_256) + 16 * 2 * 128**2 * 2048,
    "phi3_5_mini": 128 * (32 * (3072 * 9216 + 3072**2 + 3 * 3072 * 8192) + 3072 * 32_064) + 32 * 2 * 128**2 * 3072,
    # SmolLM3-3B: Llama's counts (a layer without RoPE has the same matmuls); = FlopCounterMode/2 (eager, meta)
    "smollm3_3b": 128 * (36 * (2048 * 3072 + 2048**2 + 3 * 2048 * 11008) + 2048 * 128_256) + 36 * 2 * 128**2 * 2048,
    "gemma3_1b": 128 * (26 * (1152 * 1536 + 1024 * 1152 + 3 * 1152 * 6912) + 1152 * 262_144) + 26 * 2 * 4 * 128**2 * 256,
    "gemma3_27b": 128 * (62 * (5376 * 8192 + 4096 * 5376 + 3 * 5376 * 21504) + 5376 * 262_208)
                  + 62 * 2 * 32 * 128**2 * 128,
    # SigLIP (= FlopCounterMode/2, eager): L·(4ND² + 2NDF + 2N²D) + N·D·3·P² + MAP head (probe q D², k and v
    # 2ND², q·kᵀ and ·v 2ND over 1 × N pairs, out D², MLP 2DF); N = 729 patches of 14 at 384 (6 pixels cropped)
    "siglip_so400m": 27 * (4 * 729 * 1152**2 + 2 * 729 * 1152 * 4304 + 2 * 729**2 * 1152) + 729 * 1152 * 3 * 14**2
                     + (2 * 1152**2 + 2 * 729 * 1152**2 + 2 * 729 * 1152 + 2 * 1152 * 4304),  # 335,173,224,960
    "siglip_b16": 12 * (4 * 196 * 768**2 + 2 * 196 * 768 * 3072 + 2 * 196**2 * 768) + 196 * 768 * 3 * 16**2
                  + (2 * 768**2 + 2 * 196 * 768**2 + 2 * 196 * 768 + 2 * 768 * 3072),  # 17,708,292,096
    # DINOv2 at 518² (= FlopCounterMode/2 of HF's eager forward): L·(12ND² + 2N²D) (g: 4ND² + 3NDF + 2N²D) +
    # 37²·D·3·14², N = 1 + 37² = 1370 tokens (+ 4 registers)
    "dinov2_s14": 12 * (12 * 1370 * 384**2 + 2 * 1370**2 * 384) + 1369 * 384 * 3 * 14**2,
    "dinov2_b14": 12 * (12 * 1370 * 768**2 + 2 * 1370**2 * 768) + 1369 * 768 * 3 * 14**2,
    "dinov2_l14": 24 * (12 * 1370 * 1024**2 + 2 * 1370**2 * 1024) + 1369 * 1024 * 3 * 14**2,
    "dinov2_g14": 40 * (4 * 1370 * 1536**2 + 3 * 1370 * 1536 * 4096 + 2 * 1370**2 * 1536) + 1369 * 1536 * 3 * 14**2,
    "dinov2_b14_reg": 12 * (12 * 1374 * 768**2 + 2 * 1374**2 * 768) + 1369 * 768 * 3 * 14**2,
    # ModernBERT at N = 512 (= FlopCounterMode/2, eager; local layers counted dense): L·(4ND² + 3NDF + 2N²D)
    "modernbert_base": 22 * (4 * 512 * 768**2 + 3 * 512 * 768 * 1152 + 2 * 512**2 * 768),
    "modernbert_large": 28 * (4 * 512 * 1024**2 + 3 * 512 * 1024 * 2624 + 2 * 512**2 * 1024),
}

# -- Swin official flops() (MACs + LayerNorm elements + the final-norm quirk) -------------------
OFFICIAL_FLOPS = {
    "swin_t": 4_494_405_120,  # official code; README/paper 4.5G
    "swin_s": 8_746_520_064,  # 8.7G
    "swin_b": 15_438_473_216,  # 15.4G
    "swin_b_384": 47_105_253_376,  # README 47.1G (the paper's 47.0G ✘)
    "swin_l": 103_952_265_216,  # printed 103.9G (a truncation)
}

# The quirk: flops() adds num_features·H0·W0 // 2**num_layers for the final norm, where the
# true count is num_features·H0·W0 // 4**(num_layers−1) (H0×W0 = patch grid).
SWIN_QUIRK = {
    "swin_t": 768 * (56 * 56 // 2**4 - 56 * 56 // 4**3),  # 768·(196 − 49) = 112,896
    "swin_s": 768 * (56 * 56 // 2**4 - 56 * 56 // 4**3),  # 112,896
    "swin_b": 1024 * (56 * 56 // 2**4 - 56 * 56 // 4**3),  # 1024·147 = 150,528
    "swin_b_384": 1024 * (96 * 96 // 2**4 - 96 * 96 // 4**3),  # 1024·(576 − 144) = 442,368
    "swin_l": 1536 * (96 * 96 // 2**4 - 96 * 96 // 4**3),  # 1536·432 = 663,552
}

# Swin-T official flops() per stage (official code). PatchMerging belongs to the stage before
# it. NB: the notes split the last 918,528 as "147,456 + 768,000"; the correct split is
# final norm 768·56·56//16 = 150,528 plus head 768·1000 = 768,000 (the total is consistent).
SWIN_T_STAGES = {
    "patch_embed": 14_751_744,  # conv 56·56·96·3·4² = 14,450,688 + LN 3136·96 = 301,056
    "layers.0": 811_948_032,  # 2 × 376,922,112 + merge LN 301,056 + reduction 57,802,752
    "layers.1": 781_691_904,
    "layers.2": 2_183_935_488,
    "layers.3": 701_159_424,
    "final_norm_quirk+head": 918_528,  # 150,528 + 768,000
}

# -- Swin Table 1 ViT/DeiT convention: patch tokens only (no class token), no head -------------
MACS_SWIN_PAPER = {
    "vit_b16": 17_470_881_792,  # Swin Table 1 17.5G
    "deit_b": 17_470_881_792,  # 17.5G
    "vit_b16_384": 55_377_395_712,  # Swin Table 1 55.4G
    "vit_l16": 61_232_381_952,
    "vit_h14": 166_622_658_560,
    "deit_s": 4_573_642_752,  # Swin Table 1 4.6G
}

# -- figures reached through --set overrides ---------------------------------------------------
OVERRIDES = {
    # Swin-L at 224 with window 7 (official code)
    ("swin_l", ("img_size=224", "M=7")): {"params": 196_532_476, "official_flops": 34_487_049_216,
                                          "macs": 34_475_759_616},
    # ViT-L/16 at 384 (torchvision _ops 191.066; Swin Table 1 190.7G)
    ("vit_l16", ("img_size=384",)): {"params": 304_715_752, "macs": 191_066_300_416,
                                     "macs_swin_paper": 190_706_614_272},
}

# -- NLP: the pieces behind the published totals ------------------------------------------------
TRANSFORMER_EMBEDDING = {"transformer_base": 37000 * 512, "transformer_big": 37000 * 1024}
TRANSFORMER_NON_EMBEDDING = {"transformer_base": 44_138_496, "transformer_big": 176_357_376}
BERT_EMBEDDINGS = {"bert_base": 23_837_184, "bert_large": 31_782_912}  # (30522 + 512 + 2)·H + 2H
# GPT-2 − GPT = (50257 − 40478)·768 + (1024 − 512)·768 + 2·768 (ln_f)
GPT2_MINUS_GPT = 7_905_024
# "117M": the GPT-2 layout with GPT's 40,478 vocabulary (a reconstruction, not OpenAI's words)
GPT2_SMALL_WITH_GPT_VOCAB_M = 116.93
