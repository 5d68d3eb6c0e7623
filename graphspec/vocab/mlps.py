"""Activations (`act: silu`) and MLP kinds (`mlp: glu(11008, silu)`, `moe(8, 2, expert=glu(...))`).

Context of an MLP's lowering: the block's `Layer` (graphspec/vocab/blocks.py): `dim`, `mlp_bias`.
The MLP builds module `mlp`; its linears keep Hugging Face's names where a family has them
(`gate_proj/up_proj/down_proj`, Mixtral's router `gate` and `experts`). The stack's `dropout:`
is on the residual branches (blocks.py); inside the MLP there is dropout only with `drop=p`
(between the activation and the last linear: torch.nn.Transformer's and DETR's `dropout`, HF's
`activation_dropout`); GPT-2, BERT, ViT, Phi and Llama have none there."""

from __future__ import annotations

from dataclasses import dataclass

from graphspec.vocab.registry import CLASS_DOCS, Arg, alias, construct

ACT_OP = {"relu": ("relu", {}), "gelu": ("gelu", {"approximate": "none"}),
          "gelu_tanh": ("gelu", {"approximate": "tanh"}), "silu": ("silu", {})}


def _act(name: str, doc: str, example: str):
    def lower(b, use, ctx, x):
        op, attrs = ACT_OP[name]
        return b.emit(op, (x,), "act", **attrs)

    lower.__doc__ = doc
    construct("act", name, example=example)(lower)


_act("relu", "max(x, 0) (Vaswani et al. §3.3).", "act: relu")
_act("gelu", "GELU, exact erf form (Hendrycks & Gimpel 2016; BERT, ViT, Swin).", "act: gelu")
_act("gelu_tanh", "GELU, tanh approximation (GPT, GPT-2, Phi-2's gelu_new).", "act: gelu_tanh")
_act("silu", "SiLU / swish x·σ(x) (Elfwing et al. 2018), the gate of SwiGLU.", "act: silu")

for _w, _g in (("swiglu", "silu"), ("geglu", "gelu"), ("reglu", "relu")):
    alias("act", _w, "a gated MLP, not an activation", f"write `mlp: glu(d_ff, {_g})` (Shazeer 2020)")
alias("act", "glu", "is a gated MLP, not an activation", "write `mlp: glu(d_ff, act)`")
alias("act", "moe", "is an MLP kind, not an activation", "write `mlp: moe(experts, top_k, expert=glu(d_ff, silu))`")
alias("act", "swish", "is called silu here", "write `act: silu`")
alias("act", "gelu_new", "is GELU's tanh approximation", "write `act: gelu_tanh`")
alias("act", "gelu_pytorch_tanh", "is GELU's tanh approximation", "write `act: gelu_tanh`")
alias("mlp", "swiglu", "is a gated MLP with SiLU", "write `mlp: glu(d_ff, silu)`")
alias("mlp", "geglu", "is a gated MLP with GELU", "write `mlp: glu(d_ff, gelu)`")

_D_FF = Arg("d_ff", int, None, minimum=1, doc="hidden width; default ratio × dim")
_RATIO = Arg("ratio", float, 4.0, minimum=0, doc="hidden width / dim when d_ff is not given")
_DROP = Arg("drop", float, 0.0, minimum=0, doc="dropout between the activation and the last linear")
GLU_CLASS = {"silu": "SwiGLU", "gelu": "GeGLU", "gelu_tanh": "GeGLU", "relu": "ReGLU"}
CLASS_DOCS.update({"GeGLU": "Gated MLP with GELU (Shazeer 2020, Eq. 6): down(gelu(gate(x)) * up(x)).",
                   "ReGLU": "Gated MLP with ReLU (Shazeer 2020, Eq. 6): down(relu(gate(x)) * up(x))."})


def hidden(use, dim):
    return use["d_ff"] if use["d_ff"] is not None else int(dim * use["ratio"])


@construct("mlp", "mlp", _D_FF, Arg("act", "act", "gelu"), _RATIO, _DROP, example="mlp: mlp(3072, gelu)",
           module="Mlp", attr="mlp",
           doc_class="Position-wise feed-forward network: Linear, activation, Linear (Vaswani et al. §3.3).")
def mlp(b, use, ctx, x, local="mlp"):
    """Linear, activation, Linear (Vaswani et al. §3.3): dim -> d_ff -> dim."""
    dim, ff = ctx.dim, hidden(use, ctx.dim)
    with b.module(local, "Mlp", dim=dim, hidden=ff, act=use["act"].name):
        h = b.emit("linear", (x,), "fc1", out_features=ff, bias=ctx.mlp_bias, in_features=dim)
        h = use["act"].lower(b, ctx, h)
        if use["drop"]:
            h = b.emit("dropout", (h,), "drop", p=use["drop"])
        return b.emit("linear", (h,), "fc2", out_features=dim, bias=ctx.mlp_bias, in_features=ff)


@construct("mlp", "glu", _D_FF, Arg("act", "act", "silu"), _RATIO, _DROP, example="mlp: glu(11008, silu)",
           module="SwiGLU", attr="mlp",
           doc_class="SwiGLU (Shazeer 2020, Eq. 6): down(silu(gate(x)) * up(x)), as Llama's MLP.")
def glu(b, use, ctx, x, local="mlp"):
    """Gated linear unit MLP (Shazeer 2020, "GLU Variants Improve Transformer", Eq. 6):
    down(act(gate(x)) ⊙ up(x)); SwiGLU with silu (Llama, Mistral), GeGLU with gelu (Gemma)."""
    dim, ff = ctx.dim, hidden(use, ctx.dim)
    act = use["act"].name
    with b.module(local, GLU_CLASS[act], dim=dim, hidden=ff, act=act):
        g = b.emit("linear", (x,), "gate_proj", out_features=ff, bias=ctx.mlp_bias, in_features=dim)
        u = b.emit("linear", (x,), "up_proj", out_features=ff, bias=ctx.mlp_bias, in_features=dim)
        h = b.emit("mul", (use["act"].lower(b, ctx, g), u), "gated")
        if use["drop"]:
            h = b.emit("dropout", (h,), "drop", p=use["drop"])
        return b.emit("linear", (h,), "down_proj", out_features=dim, bias=ctx.mlp_bias, in_features=ff)


@construct("mlp", "clamped_swiglu", _D_FF, Arg("alpha", float, 1.702, minimum=0, exclusive=True,
                                                  doc="the sigmoid's gain: g·σ(alpha·g)"),
           Arg("limit", float, 7.0, minimum=0, exclusive=True, doc="gate clamped to ≤ limit, up to [-limit, limit]"),
           _RATIO, example="mlp: moe(4, 2, expert=clamped_swiglu(64, alpha=1.702, limit=7.0))",
           module="ClampedSwiGLU", attr="mlp",
           doc_class="gpt-oss's clamped SwiGLU: down((clamp(up, ±limit) + 1) * g * sigmoid(alpha * g)), "
                     "g = gate clamped to ≤ limit.")
def clamped_swiglu(b, use, ctx, x, local="mlp"):
    """gpt-oss's SwiGLU (HF GptOssExperts._apply_gate): down((clamp(up, -l, l) + 1) · g·σ(α·g)),
    g = clamp(gate, max=l); α 1.702, l 7.0. As `moe`'s expert it takes HF's layout (one
    gate_up_proj, gate and up interleaved, with biases per `mlp_bias`); alone it is three linears."""
    dim, ff = ctx.dim, hidden(use, ctx.dim)
    with b.module(local, "ClampedSwiGLU", dim=dim, hidden=ff):
        g = b.emit("linear", (x,), "gate_proj", out_features=ff, bias=ctx.mlp_bias, in_features=dim)
        u = b.emit("linear", (x,), "up_proj", out_features=ff, bias=ctx.mlp_bias, in_features=dim)
        h = b.emit("clamped_swiglu", (g, u), "gated", alpha=use["alpha"], limit=use["limit"])
        return b.emit("linear", (h,), "down_proj", out_features=dim, bias=ctx.mlp_bias, in_features=ff)


@dataclass(frozen=True)
class Routing:
    """Context of a router's lowering: what the mixture around it routes."""

    dim: int
    experts: int
    top_k: int
    normalize: bool


_GROUPS = (Arg("groups", int, 1, minimum=1, doc="expert groups (n_group); the choice keeps topk_groups of them"),
           Arg("topk_groups", int, 1, minimum=1, doc="groups a token's experts come from (topk_group)"),
           Arg("scale", float, 1.0, minimum=0, exclusive=True,
               doc="routed_scaling_factor: multiplies the routing weights"))


def _check_groups(a):
    if a["topk_groups"] > a["groups"]:
        return [("topk_groups", f"topk_groups {a['topk_groups']} exceeds the {a['groups']} groups",
                 f"use topk_groups ≤ {a['groups']}")]
    return []


def _router(b, use, ctx, x, score, bias=False):
    return b.emit("router", (x,), "gate", experts=ctx.experts, top_k=ctx.top_k, dim=ctx.dim, score=score,
                  normalize=ctx.normalize, scale=use["scale"], groups=use["groups"], topk_groups=use["topk_groups"],
                  bias=bias)


@construct("router", "topk_softmax", Arg("bias", bool, True, doc="the router linear's bias (GptOssTopKRouter.bias)"),
           example="mlp: moe(4, 2, expert=clamped_swiglu(64), router=topk_softmax)")
def topk_softmax_router(b, use, ctx, x):
    """gpt-oss's router (HF GptOssTopKRouter, module `router`): logits x Wᵀ + b over the E experts,
    the top_k logits chosen and softmaxed among themselves (the weights sum to 1, as softmax's
    renormalised top_k)."""
    return b.emit("router", (x,), "router", experts=ctx.experts, top_k=ctx.top_k, dim=ctx.dim, score="topk_softmax",
                  linear_bias=use["bias"])


@construct("router", "softmax", *_GROUPS, check=_check_groups, example="mlp: moe(4, 2, expert=glu(64, silu), "
           "router=softmax(groups=2, topk_groups=1, scale=16.0), normalize=false)")
def softmax_router(b, use, ctx, x):
    """Softmax over a linear router's logits, top_k of them (Mixtral §2.1, Qwen-MoE). With groups,
    DeepSeek-V2's device-limited routing (arXiv:2405.04434 §2.1.3, `group_limited_greedy`): a
    token's experts come from the topk_groups groups whose best expert scores highest."""
    return _router(b, use, ctx, x, "softmax")


@construct("router", "sigmoid", *_GROUPS, Arg("bias", bool, True, doc="e_score_correction_bias: "
           "a buffer added to the scores for the choice only"),
           check=_check_groups, example="mlp: moe(8, 2, expert=glu(32, silu), shared=1, "
           "router=sigmoid(groups=4, topk_groups=2, scale=2.5))")
def sigmoid_router(b, use, ctx, x):
    """DeepSeek-V3's router (arXiv:2412.19437 §2.1.2, Eqs. 13-16): sigmoid affinities; the
    choice adds a bias (auxiliary-loss-free load balancing) and, with groups, keeps the
    topk_groups groups of highest sum of their best two experts; the weights are the chosen
    affinities, normalised (norm_topk_prob) and scaled (routed_scaling_factor, 2.5)."""
    return _router(b, use, ctx, x, "sigmoid", use["bias"])


def _check_moe(a):
    out = []
    if a["top_k"] > a["experts"]:
        out.append(("top_k", f"top_k {a['top_k']} exceeds the {a['experts']} experts",
                    f"use top_k ≤ {a['experts']} (Mixtral: moe(8, 2, ...))"))
    if a["expert"].name == "moe":
        out.append(("expert", "an expert cannot itself be a mixture", "write expert=glu(d_ff, silu)"))
    elif a["weigh"] == "input" and a["expert"].name not in ("glu", "mlp"):
        out.append(("weigh", f"weigh=input scales the inputs of glu or mlp experts, not {a['expert'].name}'s",
                    "write expert=glu(d_ff, silu) (Llama 4's), or weigh=output"))
    elif a["expert"]["d_ff"] is None:
        out.append(("expert", "the expert needs its width", "write expert=glu(d_ff, silu) with d_ff a number"))
    elif a["expert"].get("drop"):
        out.append(("expert", "the experts have no dropout inside (one moe op runs them)", "remove drop="))
    r, E = a["router"], a["experts"]
    if r.name == "topk_softmax" and not a["normalize"]:
        out.append(("normalize", "topk_softmax's weights are a softmax over the top_k, they always sum to 1",
                    "remove normalize=false, or use router=softmax"))
    if r.get("groups", 1) > 1 and E % r["groups"]:
        out.append(("router", f"the {E} experts do not split into {r['groups']} equal groups",
                    f"use groups that divide {E}"))
    elif r.get("groups", 1) > 1:
        size = E // r["groups"]
        if r["topk_groups"] <= r["groups"] and a["top_k"] > size * r["topk_groups"]:
            out.append(("router", f"top_k {a['top_k']} exceeds the {size * r['topk_groups']} experts of the "
                        f"{r['topk_groups']} chosen groups of {size}",
                        f"use topk_groups ≥ {-(-a['top_k'] // size)} or top_k ≤ {size * r['topk_groups']}"))
        if r.name == "sigmoid" and size < 2:
            out.append(("router", f"groups of {size} expert: sigmoid ranks a group by its best two",
                        f"use groups ≤ {E // 2}"))
    if a["shared_gate"] and not a["shared"]:
        out.append(("shared_gate", "shared_gate=true gates the shared expert, and shared is 0",
                    "give shared=N (Qwen1.5-MoE-A2.7B: shared=4) or drop shared_gate"))
    return out


def _weigh(use) -> dict:
    """The `moe` op's `weigh` attribute: set only where the weights scale the experts' inputs."""
    return {"weigh": "input"} if use["weigh"] == "input" else {}


@construct("mlp", "moe", Arg("experts", int, minimum=1, doc="number of experts E"),
           Arg("top_k", int, minimum=1, doc="experts per token"),
           Arg("expert", "mlp", doc="each expert's MLP, e.g. glu(14336, silu)"),
           Arg("shared", int, 0, minimum=0, doc="always-on experts (DeepSeekMoE), one MLP of shared × d_ff"),
           Arg("normalize", bool, True, doc="renormalise the top_k router weights to sum 1 (Mixtral)"),
           Arg("router", "router", "softmax", doc="how the gate scores and chooses: softmax, sigmoid(...)"),
           Arg("shared_gate", bool, False, doc="Qwen2-MoE: the shared expert's output times "
               "sigmoid(shared_expert_gate(x))"),
           Arg("weigh", str, "output", choices=("output", "input"), doc="what the router weight multiplies: "
               "each expert's output (Mixtral), or its input (Llama 4: expert(w·x))"),
           check=_check_moe, example="mlp: moe(8, 2, expert=glu(14336, silu))", module="MoE", attr="mlp",
           doc_class="Sparse mixture of experts (Mixtral §2.1): a router picks the top_k experts "
                     "per token and weights their outputs.")
def moe(b, use, ctx, x, local="mlp"):
    """Sparse mixture of experts (Fedus et al. 2022; Mixtral, Jiang et al. 2024, §2.1): a router
    `gate` scores E experts, each token runs its top_k. One `moe` op holds all experts
    (HF's `experts.gate_up_proj`, `experts.down_proj`). `shared` experts run on every token
    (DeepSeekMoE, arXiv:2401.06066 §3.2; HF's `shared_experts`); with `shared_gate` (Qwen2-MoE)
    HF's `shared_expert`, scaled by sigmoid(`shared_expert_gate`(x)), a dim -> 1 linear. With
    `weigh=input` the router weight scales each chosen expert's input, Σₑ expertₑ(wₑ·x) (Llama 4,
    HF's Llama4TextMoe: `routed_in = hidden_states * router_scores`).
    MACs per token: router + top_k experts + shared experts (+ the shared gate's dim)."""
    dim, ex = ctx.dim, use["expert"]
    ff, E = hidden(ex, dim), use["experts"]
    with b.module(local, "MoE", dim=dim, experts=E, top_k=use["top_k"]):
        routing = use["router"].lower(b, Routing(dim, E, use["top_k"], use["normalize"]), x)
        if ex.name == "clamped_swiglu":  # gpt-oss's experts, biased per mlp_bias (HF GptOssExperts)
            unit = dict(gated=True, act="clamped_swiglu", alpha=ex["alpha"], limit=ex["limit"], bias=ctx.mlp_bias)
        else:
            unit = dict(gated=ex.name == "glu", act=ex["act"].name)
        y = b.emit("moe", (x, routing), "experts", experts=E, top_k=use["top_k"], dim=dim, d_ff=ff, **unit, **_weigh(use))
        if use["shared"]:
            from graphspec.vocab.registry import Use

            wide = Use(ex.construct, tuple({**ex.a, "d_ff": ff * use["shared"]}.items()))
            if use["shared_gate"]:
                s = wide.lower(b, ctx, x, "shared_expert")
                gate = b.emit("linear", (x,), "shared_expert_gate", out_features=1, bias=False, in_features=dim)
                s = b.emit("mul", (b.emit("sigmoid", (gate,), "shared_weight"), s), "gated_shared")
            else:
                s = wide.lower(b, ctx, x, "shared_experts")
            y = b.emit("add", (y, s), "with_shared")
        return y
