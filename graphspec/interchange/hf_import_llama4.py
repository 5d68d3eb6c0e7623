"""The importer of Llama 4's text model (model_type llama4_text: Llama4ForCausalLM, Llama4TextModel).

What Hugging Face's Llama4TextConfig holds, as graphspec writes it (transformers 5's
modeling_llama4.py is the reference):

    no_rope_layers (1: RoPE; default: a NoPE layer every no_rope_layer_interval)
    layer_types (chunked_attention | full_attention; default: chunked on the RoPE layers when
        attention_chunk_size is set)      -> attention: pattern(chunked(C) * 3, causal(pos=...))
    NoPE layers: attn_temperature_tuning, floor_scale, attn_scale -> pos=temperature(floor, scale),
        or pos=none without tuning
    use_qk_norm (L2 norm of q and k on the RoPE layers) -> qk_norm: l2
    RoPE: complex rotation of interleaved pairs -> rope(theta, interleaved=true, scaling=...)
    moe_layers (default every interleave_moe_layer_step-th layer): a sigmoid router over
        num_local_experts, num_experts_per_tok of them scaling their expert's input, and a shared
        expert -> moe(E, k, expert=glu(intermediate_size, act), shared=1, normalize=false,
        router=sigmoid(bias=false), weigh=input); the other layers glu(intermediate_size_mlp, act)

A per-layer choice that repeats with a period is written as `pattern(...)`, else as a list.
Training-only keys (the router's auxiliary loss, jitter) are read and left out; anything else
graphspec cannot express is an exit-2 error naming the option. A whole `llama4` config (the
released config.json of Llama4ForConditionalGeneration) imports its `text_config`; the vision
encoder and projector are left out and the header says so.
"""

from __future__ import annotations

import re

from graphspec.interchange.config import Reader, show
from graphspec.interchange.hf_import import Spec, _act, _head, _seq, num
from graphspec.interchange.hf_import_llm import _rope, _rope_text
from graphspec.spec.errors import SpecError


def _flags(r: Reader, key: str, n: int) -> list[int] | None:
    """A per-layer list of 0/1 (no_rope_layers), None when the config leaves it to the default."""
    v = r.raw(key)
    if v is None or v == []:
        return None
    if not (isinstance(v, list) and len(v) >= n and all(x in (0, 1) and not isinstance(x, float) for x in v[:n])):
        r.error(key, f"{key} must be a list of at least {n} entries 0 or 1 (one per layer), not {show(v)}",
                f"write {key} as [1, 1, 1, 0, ...] (1: the layer uses RoPE)")
        return None
    return [int(x) for x in v[:n]]


def _layers(r: Reader, L: int) -> tuple[list[bool], list[bool]]:
    """(rope, chunked) per layer, as Llama4TextConfig.__post_init__ derives them."""
    interval = r.int("no_rope_layer_interval", default=4)
    rope = _flags(r, "no_rope_layers", L)
    rope = [bool(x) for x in rope] if rope is not None else [(i + 1) % interval != 0 for i in range(L)]
    chunk = r.int("attention_chunk_size", optional=True)
    types = r.raw("layer_types")
    if types is None:
        return rope, [bool(x) and chunk is not None for x in rope]
    if not (isinstance(types, list) and len(types) >= L and all(t in ("chunked_attention", "full_attention")
                                                                 for t in types[:L])):
        r.error("layer_types", f"layer_types must be a list of {L} entries 'chunked_attention' or 'full_attention', "
                f"not {show(types)}", "write one per layer, or leave it out (chunked on the RoPE layers)")
        return rope, [False] * L
    chunked = [t == "chunked_attention" for t in types[:L]]
    if any(chunked) and chunk is None:
        r.error("attention_chunk_size", "option attention_chunk_size = null is not expressible in graphspec: "
                "layer_types has chunked_attention layers, and a chunk needs its size",
                "give attention_chunk_size (Llama 4: 8192)")
    return rope, chunked


def _temperature(r: Reader) -> str | None:
    """The NoPE layers' pos=: temperature(floor, scale) when attn_temperature_tuning is on (HF
    tests its truth: the released Scout config says 4), else None (pos=none)."""
    on = r.raw("attn_temperature_tuning")
    if not (isinstance(on, bool) or (isinstance(on, int) and on >= 0)):
        r.error("attn_temperature_tuning", f"attn_temperature_tuning must be true, false or a count, not {show(on)}")
        return None
    floor, scale = r.float("floor_scale", default=8192.0), r.float("attn_scale", default=0.1)
    if on and not floor > 0:
        r.error("floor_scale", f"option floor_scale = {show(r.raw('floor_scale'))} is not expressible in graphspec: "
                "the temperature's step must be positive", "use floor_scale 8192 (Llama 4's)")
        return None
    return f"temperature({num(floor)}, {num(scale)})" if on else None


def _runs(items: list[str]) -> str:
    """`pattern(a * 3, b)` when the list repeats with a period, else `[a, a, a, b, ...]`."""
    n = len(items)
    p = next(p for p in range(1, n + 1) if all(items[i] == items[i % p] for i in range(n)))
    if p == 1:
        return items[0]
    if p == n and n > 8:
        return "[" + ", ".join(items) + "]"
    groups: list[list] = []
    for x in items[:p]:
        if groups and groups[-1][0] == x:
            groups[-1][1] += 1
        else:
            groups.append([x, 1])
    return "pattern(" + ", ".join(x if k == 1 else f"{x} * {k}" for x, k in groups) + ")"


def _llama4_text(r: Reader, s: Spec) -> None:
    s.names_hf = True
    d, h, L = r.int("hidden_size"), r.int("num_attention_heads"), r.int("num_hidden_layers")
    kv = r.int("num_key_value_heads", optional=True) or h
    hd = r.int("head_dim", optional=True) or d // h
    s.var("vocab", r.int("vocab_size")), s.var("d", d), s.var("L", L), s.var("h", h), s.var("kv", kv)
    if hd * h != d:
        s.var("hd", hd)
    act = _act(r, "hidden_act")
    moe_layers = r.raw("moe_layers")
    step = r.int("interleave_moe_layer_step", default=1)
    if moe_layers is None:
        moe_layers = list(range(step - 1, L, step))
    elif not (isinstance(moe_layers, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < L
                                                   for i in moe_layers)):
        r.error("moe_layers", f"moe_layers must be a list of layer indices below {L}, not {show(moe_layers)}")
        moe_layers = []
    sparse = [i in moe_layers for i in range(L)]
    mlps = []
    if any(sparse):
        s.var("experts", r.int("num_local_experts")), s.var("top_k", r.int("num_experts_per_tok"))
        s.var("expert_ff", r.int("intermediate_size"))
        mlps.append((True, f"moe(experts, top_k, expert=glu(expert_ff, {act}), shared=1, normalize=false, "
                           "router=sigmoid(bias=false), weigh=input)"))
    else:
        r.raw("intermediate_size"), r.raw("num_local_experts"), r.raw("num_experts_per_tok")
    if not all(sparse):
        s.var("d_ff", r.int("intermediate_size_mlp"))
        mlps.append((False, f"glu(d_ff, {act})"))
    else:
        r.raw("intermediate_size_mlp")
    for k in ("output_router_logits", "router_aux_loss_coef", "router_jitter_noise"):
        r.raw(k)  # training only: the load-balancing loss (HF's Llama4Router adds no jitter)
    ctx = r.int("max_position_embeddings")
    s.var("seq_len", _seq(r, "max_position_embeddings")), s.var("batch", 1)
    rope, chunked = _layers(r, L)
    chunk = r.int("attention_chunk_size", optional=True)
    if any(chunked):
        s.var("chunk", chunk)
    temp = _temperature(r)  # the NoPE layers' (read, and checked, whether or not a layer has none)
    theta, _, scaling = _rope(r, partial=False)
    s.input = "tokens(seq_len)"
    s.embed = f"tokens(vocab, dim=d, pos={_rope_text(theta, 1.0, scaling, ctx, interleaved=True)})"
    nope = f"pos={temp or 'none'}"
    masks = [("chunked(chunk" + ("" if ro else f", {nope}") + ")") if ch else ("causal" if ro else f"causal({nope})")
             for ro, ch in zip(rope, chunked, strict=True)]
    f: list[tuple[str, object]] = [("dim", "d"), ("heads", "h")]
    if kv != h:
        f.append(("kv_heads", "kv"))
    if hd * h != d:
        f.append(("head_dim", "hd"))
    if masks != ["causal"] * L:
        f.append(("attention", _runs(masks)))
    if r.bool("use_qk_norm", True) and any(rope):
        f.append(("qk_norm", "l2"))  # Llama4TextL2Norm on the RoPE layers (its eps: rms_norm_eps)
    f.append(("norm", f"rms_norm({num(r.float('rms_norm_eps'))})"))
    text = dict(mlps)
    f.append(("mlp", _runs([text[x] for x in sparse])))
    bias = r.bool("attention_bias")
    f += [("qkv_bias", True), ("out_bias", True), ("mlp_bias", False)] if bias else [("bias", False)]
    if r.float("attention_dropout", default=0):
        f.append(("attn_dropout", r.float("attention_dropout")))
    s.stacks.append(("decoder×L", f + [("final_norm", True)]))
    lm = f"lm(tied={num(r.bool('tie_word_embeddings', False))})"
    s.head = _head(r, "llama4_text", {"Llama4ForCausalLM": lm, "Llama4TextModel": "none"}, "Llama4ForCausalLM")


LLAMA4_TOP = ("vision_config", "boi_token_index", "eoi_token_index", "image_token_index", "tie_word_embeddings")


def _llama4(r: Reader, s: Spec) -> None:
    """A whole Llama 4 config: its `text_config` as Llama4ForCausalLM (the vision tower, the
    projector and the image tokens are left out)."""
    from graphspec.interchange.defaults import DEFAULTS, FAMILY_IGNORED

    for k in LLAMA4_TOP:
        r.raw(k)
    r.expect("architectures", (None, [], ["Llama4ForConditionalGeneration"]),
             "graphspec imports Llama4ForConditionalGeneration's language model")
    sub = r.raw("text_config")
    if not isinstance(sub, dict):
        r.error("text_config", f"text_config must be an object, not {show(sub)}")
        return
    text = r.text
    if text:  # locate the sub-config's keys inside `"text_config": {...}`: blank what comes before it
        m = re.search(r'"text_config"\s*:', text)
        text = re.sub(r"[^\n]", " ", text[:m.start()]) + text[m.start():] if m else text
    t = Reader({**sub, "architectures": ["Llama4ForCausalLM"]}, DEFAULTS["llama4_text"], r.file, text,
               FAMILY_IGNORED["llama4_text"] | {"model_type"})
    _llama4_text(t, s)
    s.comment.insert(1, "Of Llama4ForConditionalGeneration, the language model (Llama4ForCausalLM): the vision "
                        "encoder, the projector and the image tokens are left out.")
    try:
        t.finish("llama4 text_config")
    except SpecError:
        pass  # its diagnostics are t's: reported with the top level's
    r.diags.items += [d for d in t.diags.items if d not in r.diags.items]
