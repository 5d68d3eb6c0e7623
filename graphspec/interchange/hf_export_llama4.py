"""A Llama 4 text spec as Llama4TextConfig (`graphspec export --format hf`; the inverse of
hf_import_llama4.py): per layer RoPE or not (no_rope_layers), chunked or full attention
(layer_types, one attention_chunk_size), the NoPE layers' temperature (attn_temperature_tuning,
floor_scale, attn_scale), the L2 q/k norm (use_qk_norm), and which layers are mixtures
(moe_layers) with their experts and the dense layers' width (intermediate_size_mlp).
hf_export checks the config by importing it back to the same IR; what a Llama4TextConfig cannot
hold is an ExportError here, with the reason."""

from __future__ import annotations


def is_llama4(st) -> bool:
    """Whether a `names: hf` RoPE decoder uses what only Llama 4 has: chunked attention, the NoPE
    layers' temperature, the L2 q/k norm, or experts weighting their inputs."""
    masks = [m for m in st.masks if m is not None]
    mlps = st.layer_mlps or (st.mlp,)
    return st.qk_norm == "l2" or any(m.name == "chunked" or (m.get("pos") is not None and m["pos"].name ==
                                                             "temperature") for m in masks) \
        or any(m is not None and m.name == "moe" and m.get("weigh") == "input" for m in mlps)


def llama4_config(spec, decoder, error) -> dict:
    """Llama4TextConfig's keys for `spec`; `decoder` writes the keys every HF decoder shares,
    `error(message)` raises hf_export's ExportError."""
    e, st = spec.embed, spec.stacks[0]
    L = sum(st.depths)
    rope = e.pos_use
    if not rope.get("interleaved"):
        error(f"{spec.name}: Llama 4 rotates interleaved pairs (complex RoPE); this spec's rope rotates halves "
              "(write rope(..., interleaved=true))")
    masks = st.layer_masks()
    pos = [m.get("pos") for m in masks]
    chunks = {m["chunk"] for m in masks if m.name == "chunked"}
    temps = {(p["floor"], p["scale"]) for p in pos if p is not None and p.name == "temperature"}
    if len(chunks) > 1:
        error(f"{spec.name}: its layers attend in chunks of {sorted(chunks)}; Llama4TextConfig holds one "
              "attention_chunk_size")
    if len(temps) > 1:
        error(f"{spec.name}: its NoPE layers' temperatures differ ({sorted(temps)}); Llama4TextConfig holds one "
              "floor_scale and attn_scale")
    mlps = list(st.layer_mlps) if st.layer_mlps else [st.mlp] * L
    sparse = [i for i, m in enumerate(mlps) if m.name == "moe"]
    moe = mlps[sparse[0]] if sparse else None
    dense = next((m for m in mlps if m.name != "moe"), None)
    step = next((k for k in range(1, L + 1) if sparse == list(range(k - 1, L, k))), None)
    rope_layers = [int(p is None or p.name == "rope") for p in pos]
    interval = next((k for k in range(2, L + 1) if rope_layers == [int((i + 1) % k != 0) for i in range(L)]), 4)
    cfg = decoder(spec, "Llama4ForCausalLM", "Llama4TextModel")
    floor, scale = next(iter(temps)) if temps else (8192, 0.1)
    floor = int(floor) if float(floor).is_integer() else floor  # HF's floor_scale is an int
    cfg.update(num_key_value_heads=st.kv_heads or st.heads[0], head_dim=st.head_dim or st.dim // st.heads[0],
               rms_norm_eps=float(st.norm_kind.get("eps")), attention_bias=bool(st.qkv_bias),
               use_qk_norm=st.qk_norm == "l2",
               no_rope_layers=rope_layers, no_rope_layer_interval=interval,
               layer_types=["chunked_attention" if m.name == "chunked" else "full_attention" for m in masks],
               attention_chunk_size=next(iter(chunks)) if chunks else None,
               attn_temperature_tuning=bool(temps), floor_scale=floor, attn_scale=scale,
               moe_layers=sparse, interleave_moe_layer_step=step or 1)
    if moe is not None:
        cfg.update(num_local_experts=moe["experts"], num_experts_per_tok=moe["top_k"],
                   intermediate_size=int(moe["expert"].get("d_ff")))
    if dense is not None:
        cfg["intermediate_size_mlp"] = int(dense.get("d_ff"))
    return cfg
