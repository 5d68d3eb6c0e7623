"""Reading one `encoder:` / `decoder:` section into a `StackSpec`, through the vocabulary.

Every construct-valued field (`attention`, `norm`, `placement`, `act`, `mlp`, `block`,
`downsample`) is read with `graphspec.vocab.read`, so a new construct needs no change here.
Compact forms stay sugar: `norm: pre` is placement pre with layer_norm(eps), `act: gelu` with
`d_ff:`/`mlp_ratio:` is `mlp: mlp(d_ff, gelu)`. A per-layer attention is a list of one mask per
block, or `pattern(m1, m2, ...)` repeated over the blocks.
"""

from __future__ import annotations

from typing import Any

from graphspec import vocab
from graphspec.spec import stages
from graphspec.spec.expr import Call
from graphspec.spec.schema import MAX_BLOCKS, STACK_KEYS, Attn, StackSpec, _unknown

NAMES = ("graphspec", "hf")


def read_stack(r, role: str, v: Any, has_encoder: bool, names: str = "graphspec") -> StackSpec | None:
    p = (role,)
    if not isinstance(v, dict):
        r.diags.add(r.raw.loc(*p), f"`{role}` must be a mapping", f"write `{role}×N: {{dim: ..., heads: ...}}`")
        return None
    _unknown(r.diags, r.raw, p, set(v), STACK_KEYS, f"`{role}`")
    loc = lambda k: r.raw.loc(*p, k) or r.raw.loc(*p)  # noqa: E731
    g = lambda k, kind, what, d=None, **kw: (r.typed(v[k], p + (k,), kind, what, **kw) if k in v else d)  # noqa: E731
    dim = 1 if stages.is_list(v.get("dim")) else g("dim", int, "dim", minimum=1)  # per stage: below
    if dim is None:
        r.diags.add(r.raw.loc(*p), f"`{role}` needs `dim`", f"add `dim: 512` to `{role}`")
    if "depths" in v:
        depths = r.value(v["depths"], p + ("depths",))
        heads = r.value(v.get("heads"), p + ("heads",))
        if not (isinstance(depths, list) and depths and all(isinstance(d, int) and d > 0 for d in depths)):
            r.diags.add(r.raw.loc(*p, "depths"), "`depths` must be a non-empty list of positive ints",
                        "e.g. [2, 2, 6, 2]")
            depths = [1]
        if not (isinstance(heads, list) and len(heads) == len(depths) and all(isinstance(h, int) and h > 0 for h in heads)):
            r.diags.add(r.raw.loc(*p, "heads"), f"with `depths`, `heads` must be a list of {len(depths)} positive ints",
                        "e.g. heads: [3, 6, 12, 24]")
            heads = [1] * len(depths)
    else:
        layers = g("layers", int, "the repeat count", 1, minimum=1)
        h = g("heads", int, "heads", None, minimum=1)
        if h is None:
            r.diags.add(r.raw.loc(*p), f"`{role}` needs `heads`", f"add `heads: 8` to `{role}`")
        depths, heads = [layers], [h]
    if all(isinstance(d, int) for d in depths) and sum(depths) > MAX_BLOCKS:
        r.diags.add(r.raw.loc(*p, "depths") or r.raw.loc(*p, "layers") or r.raw.loc(*p),
                    f"`{role}` has {sum(depths)} blocks; graphspec lowers every block and allows at most "
                    f"{MAX_BLOCKS}", "use fewer layers")
        depths = [1] * len(depths)
    total = sum(d for d in depths if isinstance(d, int))
    dims = stages.per_stage(r, v["dim"], p + ("dim",), len(depths), int, "dim") if stages.is_list(v.get("dim")) else ()
    dim = dims[0] if dims else dim

    masks = _masks(r, v.get("attention", "causal" if role == "decoder" else "global"), p + ("attention",), total,
                   depths)
    attn = _attn_of(masks[0]) if masks else Attn()

    # norm kind and placement: `norm: pre|post|parallel|sandwich` (sugar: LayerNorm with `eps:`)
    # or `norm: rms_norm(1e-6)` with `placement:`
    eps = g("eps", float, "eps", 1e-5)
    norm_u = vocab.read(r, v.get("norm", "pre"), p + ("norm",), ("placement", "norm"), "norm")
    placement = "pre"
    if norm_u is not None and norm_u.kind == "placement":
        placement, norm_u = norm_u.name, vocab.use("norm", "layer_norm", eps=eps)
        if "placement" in v:
            r.diags.add(loc("placement"), f"`norm: {placement}` already places the norms",
                        f"write `norm: layer_norm(eps)` (or rms_norm) with `placement: {placement}`")
    elif norm_u is not None:
        if "eps" in v:
            r.diags.add(loc("eps"), f"`eps:` and `norm: {norm_u.name}(...)` both set the norm",
                        f"write the epsilon inside the norm: `norm: {norm_u.name}({v['eps']})`")
        pl = vocab.read(r, v.get("placement", "pre"), p + ("placement",), "placement")
        placement = pl.name if pl is not None else "pre"
    block = _block(r, v["block"], p + ("block",)) if "block" in v else None
    if block is not None:
        placement = "custom"

    # MLP: `mlp: glu(11008, silu)`, or the sugar d_ff / mlp_ratio / act
    d_ff = g("d_ff", int, "d_ff", None, minimum=1)
    ratios = (stages.per_stage(r, v["mlp_ratio"], p + ("mlp_ratio",), len(depths), (int, float), "mlp_ratio")
              if stages.is_list(v.get("mlp_ratio")) else ())
    ratio = float(ratios[0]) if ratios else 4.0 if stages.is_list(v.get("mlp_ratio")) else g(
        "mlp_ratio", float, "mlp_ratio", 4.0, minimum=0)
    act = vocab.read(r, v.get("act", "gelu"), p + ("act",), "act", "activation")
    layer_mlps: tuple = ()
    if "mlp" in v:
        mlp, layer_mlps = _mlps(r, v["mlp"], p + ("mlp",), total)
        for k in ("d_ff", "mlp_ratio", "act"):
            if k in v and mlp is not None:
                r.diags.add(loc(k), f"`{k}:` and `mlp: {mlp.name}(...)` both set the MLP",
                            f"write it inside the MLP, e.g. `mlp: {mlp.name}(d_ff, act)`")
    else:
        mlp = vocab.use("mlp", "mlp", d_ff=d_ff, act=act or vocab.use("act", "gelu"), ratio=ratio)
    mlps = tuple(vocab.use("mlp", "mlp", d_ff=d_ff, act=act or vocab.use("act", "gelu"), ratio=float(x))
                 for x in ratios) if ratios and "mlp" not in v else ()

    down = vocab.read(r, v.get("downsample", "none"), p + ("downsample",), "downsample")
    cross = g("cross", bool, "cross", role == "decoder" and has_encoder)
    bias = g("bias", bool, "bias", True)
    pos = r.choice(v.get("pos", "input"), p + ("pos",), ("input", "every_layer"), "pos")
    return StackSpec(
        role=role, dim=dim, heads=tuple(heads), depths=tuple(depths), d_ff=d_ff, mlp_ratio=ratio, attention=attn,
        norm=placement, act=act.name if act is not None else "gelu", bias=bias,
        qkv_bias=g("qkv_bias", bool, "qkv_bias", bias), dropout=g("dropout", float, "dropout", 0.0, minimum=0),
        attn_dropout=g("attn_dropout", float, "attn_dropout", 0.0, minimum=0),
        drop_path=g("drop_path", float, "drop_path", 0.0, minimum=0), eps=eps,
        final_norm=g("final_norm", bool, "final_norm", False), cross=cross,
        downsample=down.name if down is not None else "none",
        pos_every_layer=pos == "every_layer",
        queries=g("queries", int, "queries", None, minimum=1), aux=g("aux", bool, "aux", False),
        loc=r.raw.loc(*p, "$key") or r.raw.loc(*p),
        kv_heads=g("kv_heads", int, "kv_heads", None, minimum=1), head_dim=g("head_dim", int, "head_dim", None, minimum=1),
        out_bias=g("out_bias", bool, "out_bias", bias), mlp_bias=g("mlp_bias", bool, "mlp_bias", bias),
        qk_norm=_qk_norm(r, v, p),
        softcap=g("softcap", float, "softcap", None, minimum=0), norm_kind=norm_u, mlp=mlp, masks=tuple(masks),
        block=block, names=names, dims=dims, mlps=mlps, down_use=down,
        sinks=g("sinks", bool, "sinks", False),
        scale=g("scale", float, "scale", None, minimum=0), qkv=_qkv(r, v, p), layer_mlps=layer_mlps,
        layer_scale=_layer_scale(r, v, p),
    )


def _layer_scale(r, v: dict, p: tuple):
    """`layer_scale: 1e-5` (LayerScale's initial γ); absent, `none` or `false`: no LayerScale."""
    if "layer_scale" not in v:
        return None
    raw = v["layer_scale"]
    if raw is None or raw is False or (isinstance(raw, str) and raw.strip() in ("none", "false")):
        return None
    return r.typed(raw, p + ("layer_scale",), float, "layer_scale", minimum=0)  # evaluated (and reported) once


def _qkv(r, v: dict, p: tuple):
    """`qkv: mla(...)` (graphspec/vocab/mla.py): DeepSeek's latent attention makes its own q, k, v,
    so the fields that shape the three linears do not apply."""
    val = r.value(v["qkv"], p + ("qkv",), calls=True) if "qkv" in v else None
    if val is None or val is False or (isinstance(val, Call) and val.name == "none" and not val.args):
        return None  # `qkv: none`: the three linears
    u = vocab.read(r, v["qkv"], p + ("qkv",), "qkv", "q/k/v projection")
    for k, fix in (("kv_heads", "MLA's keys and values have one latent for all heads; remove kv_heads"),
                   ("head_dim", "MLA's head widths are mla(nope_dim=, rope_dim=, v_dim=); remove head_dim"),
                   ("qk_norm", "MLA normalises its latents (mla(norm=...)); remove qk_norm")):
        if u is not None and k in v and v[k] is not False:
            r.diags.add(r.raw.loc(*p, k) or r.raw.loc(*p), f"`{k}:` does not apply to `qkv: {u.name}(...)`", fix)
    return u


def _mlps(r, v: Any, path: tuple, total: int) -> tuple:
    """`mlp:` one MLP for every block; a list with one per block; `pattern(a, b, ...)` repeated
    over the blocks; or `first(k, dense, rest)`: the first k blocks `dense`, the others `rest`
    (DeepSeek's first_k_dense_replace). Returns (the last block's MLP, one per block or ())."""
    val = r.value(v, path, calls=True) if isinstance(v, str) else v
    loc = r.raw.loc(*path)
    if isinstance(val, Call) and val.name == "first":
        args = dict(zip(("k", "dense", "rest"), val.args, strict=False))
        bad = set(val.kwargs) - {"k", "dense", "rest"}
        args.update({k: x for k, x in val.kwargs.items() if k not in bad})
        if len(val.args) > 3 or bad or len(args) != 3:
            r.diags.add(loc, f"first() takes k, dense and rest, got {val!r}",
                        "write first(1, glu(10944, silu), moe(64, 6, expert=glu(1408, silu))): the first k blocks "
                        "dense, the rest the second MLP")
            return None, ()
        k = r.typed(args["k"], path, int, "first() argument `k`", minimum=0)
        if isinstance(k, int) and not isinstance(k, bool) and k > total:
            r.diags.add(loc, f"first({k}, ...) asks for {k} dense blocks, but the stack has {total}",
                        f"use k ≤ {total}")
            return None, ()
        ms = [vocab.read(r, args[a], path, "mlp", "MLP") for a in ("dense", "rest")]
        if None in ms or not isinstance(k, int):
            return None, ()
        return ms[1], tuple(ms[0] if i < k else ms[1] for i in range(total))
    if isinstance(val, Call) and val.name == "pattern":
        ms = [vocab.read(r, a, path, "mlp", "MLP") for x in val.args for a in (x if isinstance(x, list) else [x])]
        if not ms or val.kwargs:
            r.diags.add(loc, "pattern() repeats its MLPs over the blocks and needs at least one",
                        "write e.g. pattern(glu(11008, silu), moe(8, 2, expert=glu(14336, silu)))")
            return None, ()
        return (None, ()) if None in ms else (ms[(total - 1) % len(ms)], tuple(ms[i % len(ms)] for i in range(total)))
    if isinstance(val, list):
        ms = [vocab.read(r, a, path + (i,), "mlp", "MLP") for i, a in enumerate(val)]
        if len(ms) != total:
            r.diags.add(loc, f"the mlp list has {len(ms)} entries for {total} blocks",
                        f"give one MLP per block ({total}), or write first(k, dense, rest) or pattern(...)")
            return None, ()
        return (None, ()) if None in ms or not ms else (ms[-1], tuple(ms))
    return vocab.read(r, val, path, "mlp", "MLP"), ()


def _qk_norm(r, v: dict, p: tuple) -> str | bool:
    """`qk_norm`: false; `true` or `head` -> "head", the stack's norm over each head's q and k (Qwen3,
    Gemma-3); `all` -> "all", over all heads' q and all k/v heads' k at once, before the split (OLMo-2);
    `l2` -> "l2", x·rsqrt(mean(x²) + ε) of each head's q and k, no weight, in the RoPE layers (Llama 4)."""
    if "qk_norm" not in v:
        return False
    path = p + ("qk_norm",)
    val = r.value(v["qk_norm"], path, calls=True)
    if isinstance(val, bool):
        return "head" if val else False
    if isinstance(val, Call) and val.name in ("head", "all", "l2") and not val.args and not val.kwargs:
        return val.name
    if not r.invalid(val):
        r.diags.add(r.raw.loc(*path), f"qk_norm {val.name if isinstance(val, Call) else val!r} is not one of "
                    "true, false, head, all, l2",
                    "write `qk_norm: head` (each head's dims: Qwen3), `qk_norm: all` (all heads' dims: OLMo-2) "
                    "or `qk_norm: l2` (weightless, on the RoPE layers: Llama 4)")
    return False


def _masks(r, v: Any, path: tuple, total: int, depths: list) -> list:
    """One mask for every block, a list with one per block, `pattern(...)` repeated, or one per
    stage from list-valued arguments (`spatial_reduction(R=[8, 4, 2, 1])`)."""
    val = r.value(v, path, calls=True) if isinstance(v, str) else v
    if stages.has_lists(val) and val.name != "pattern":
        calls = stages.stage_calls(r, val, path, depths)
        ms = [vocab.read(r, c, path, "mask", "attention") for c in calls] if calls else [None]
        return [] if None in ms else [m for m, d in zip(ms, depths, strict=True) for _ in range(d)]
    if isinstance(val, Call) and val.name == "pattern":
        if not val.args or val.kwargs:
            r.diags.add(r.raw.loc(*path), "pattern() repeats its masks over the blocks and needs at least one",
                        "write e.g. pattern(sliding(4096), global)")
            return []
        args = [x for a in val.args for x in (a if isinstance(a, list) else [a])]  # `sliding(512) * 5`
        ms = [vocab.read(r, a, path, "mask", "attention") for a in args]
        return [] if None in ms else [ms[i % len(ms)] for i in range(total)]
    if isinstance(val, list):
        ms = [vocab.read(r, a, path + (i,), "mask", "attention") for i, a in enumerate(val)]
        if len(ms) != total:
            r.diags.add(r.raw.loc(*path), f"the attention list has {len(ms)} entries for {total} blocks",
                        f"give one mask per block ({total}), or repeat a shorter list with pattern(...)")
            return []
        return [] if None in ms else ms
    m = vocab.read(r, val, path, "mask", "attention")
    return [] if m is None else [m]


def _attn_of(m) -> Attn:
    """The first mask as today's `Attn` summary (global | causal | sliding | windowed)."""
    if m.name in ("windowed", "shifted_windows"):
        return Attn("windowed", m["M"], m.name == "shifted_windows" or bool(m.get("shift")))
    return Attn(m.name, m.get("window"))


def _block(r, v: Any, path: tuple) -> tuple | None:
    """Free composition: a list of residual branches `[step, ...]` and bare steps."""
    if not isinstance(v, list) or not v:
        r.diags.add(r.raw.loc(*path), "`block` must be a list of residual branches and steps",
                    "e.g. block: [[norm, attn], [norm, mlp]]")
        return None
    out: list = []
    for i, item in enumerate(v):
        if isinstance(item, list):
            steps = [vocab.read(r, s, path + (i, j), "sublayer", "block step") for j, s in enumerate(item)]
            if None in steps:
                return None
            out.append(tuple(steps))
        else:
            s = vocab.read(r, item, path + (i,), "sublayer", "block step")
            if s is None:
                return None
            out.append(s)
    if not any(isinstance(i, tuple) for i in out):
        r.diags.add(r.raw.loc(*path), "`block` has no residual branch", "wrap sub-layers in a list: [[norm, attn]]")
        return None
    return tuple(out)



def _has_attention(s: StackSpec) -> bool:
    if s.block is None:
        return True
    steps = [u for item in s.block for u in (item if isinstance(item, tuple) else (item,))]
    return any(u.name in ("attn", "cross_attn") or (u.name == "parallel" and "attn" in (u["a"].name, u["b"].name))
               for u in steps)


def check_vocab(spec, diags) -> None:
    """Rules across the vocabulary's fields: GQA's head groups, the rotary dims of a head, a
    position scheme that lives inside attention on a model that has some."""
    from graphspec.spec.errors import divisors
    from graphspec.vocab.positions import attention_only, rotary_dim

    pos = spec.embed.pos_use
    if attention_only(pos) and not any(_has_attention(s) for s in spec.stacks):
        diags.add(spec.loc("embed"), f"`{pos.name}` acts inside attention, but no block of this model has attention",
                  "use pos=learned(max_len) or pos=sinusoidal, or add `attn` to the block")
    for s in spec.stacks:
        for si, h in enumerate(s.heads):
            if not isinstance(h, int) or not isinstance(s.dim, int):
                continue
            stage = f" (stage {si + 1})" if len(s.heads) > 1 else ""
            kv = s.kv_heads or h
            if h % kv:
                ok = divisors(h)
                diags.add(spec.loc(s.role, "kv_heads") or s.loc,
                          f"{h} query heads do not split into {kv} k/v head groups{stage}",
                          f"use kv_heads in {ok[-6:]} (a divisor of heads; 1 is multi-query attention)")
            hd = s.head_dim or (s.dim // h if s.dim % h == 0 else None)
            ropes = {id(p): (p, where) for p, where in [(pos, spec.loc("embed"))] + [
                (m["pos"], spec.loc(s.role, "attention") or s.loc) for m in s.masks if m.get("pos") is not None]
                if p is not None and p.name == "rope"}  # the embedding's rope and a mask's own (Gemma-3)
            for p, where in ropes.values() if hd else ():
                r = rotary_dim(p, hd)
                if not isinstance(r, int) or r % 2 or r == 0:
                    lo = 2 * int(p["fraction"] * hd // 2)
                    ok = [f"fraction={c / hd:g}" for c in (lo, lo + 2) if 0 < c <= hd]
                    diags.add(where, f"rope rotates {p['fraction']} × {hd} = {r:g} dims of each head, "
                              "which is not an even number", "choose a fraction that gives an even count: "
                              + " or ".join(ok))
                    continue
                sc = p.get("scaling")
                for msg, fix in (sc.hook("dims")(sc, r) if sc is not None and sc.hook("dims") else ()):
                    diags.add(sc.loc or where, msg, fix)  # LongRoPE's factors, one per rotated pair
