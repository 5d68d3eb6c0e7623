"""IR -> one standalone PyTorch file (`generate`), and the file as a module (`load`).

    source = generate(graph, spec)      # deterministic to the byte
    model = load(source)()              # an nn.Module named as the IR's parameters

The file: a header docstring (spec, paper, parameters, MACs), imports, the helper functions the
model needs (codegen/templates/helpers.py.j2), then one class per module class, children
before parents. It never imports graphspec.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import re
import sys
import types
from dataclasses import dataclass
from functools import cache

import jinja2
from graphspec.codegen.classes import ClassDef, Classes
from graphspec.codegen.emit import ClassEmitter, Rendered
from graphspec.codegen.loops import Loops
from graphspec.codegen.names import comment_text, docstring_text
from graphspec.codegen.program import CodegenError, ModuleTree, localize_constants

from graphspec import analysis
from graphspec.ir import Graph
from graphspec.vocab.registry import class_doc

HELPER_ORDER = ("window_partition", "window_reverse", "roll_tokens", "shift_mask", "add_window_mask",
                "relative_position_index", "patch_merge", "causal_mask", "sinusoidal", "sine_pos_2d", "attention",
                "relative_buckets", "relative_bias", "FrozenBatchNorm2d", "DropPath", "LayerScale", "interpolate_pos", "rope_frequencies", "apply_rotary", "sliding_mask", "chunked_mask", "local_mask",
                "attention_with_sinks",                "attn_temperature", "alibi",
                "OffsetRMSNorm", "TopKRouter", "Experts", "softmax_with_sinks", "clamped_swiglu", "SoftmaxTopKRouter", "last_token",
                "ClampedSwiGLUExperts")
HELPER_DEPS = {"shift_mask": ("window_partition",), "relative_bias": ("relative_buckets",),
               "ClampedSwiGLUExperts": ("clamped_swiglu",)}
WIDTH = 100

DOCS = {
    "PatchEmbed": "Image to patch tokens with a stride-p convolution: (B, C, H, W) -> (B, H/p*W/p, dim).",
    "TokenEmbedding": "Token embedding, with positions (and token types) added: (B, N) -> (B, N, dim).",
    "WindowAttention": "Window multi-head self-attention with relative position bias; shifted windows "
                       "(SW-MSA) mask attention across regions (Swin §3.2).",
    "Attention": "Multi-head scaled dot-product self-attention (Vaswani et al. §3.2).",
    "CrossAttention": "Multi-head attention of queries from x over keys and values from another sequence "
                      "(Vaswani et al. §3.2.3: the decoder over the encoder output).",
    "Mlp": "Position-wise feed-forward network: Linear, activation, Linear (Vaswani et al. §3.3).",
    "PatchMerging": "Patch merging (Swin §3.3): 2×2 neighbouring tokens concatenated, normalized, "
                    "reduced from 4C to 2C.",
    "Stage": "One stage of the hierarchy (Swin §3.3): blocks at one resolution, then patch merging.",
    "Encoder": "The encoder: a stack of blocks (Vaswani et al. §3.1).",
    "Decoder": "The decoder: a stack of blocks that also attend to the encoder output (Vaswani et al. §3.1).",
    "Pooler": "BERT's pooler: tanh(W h_[CLS] + b) over the first token (Devlin et al. §3).",
    "ResNet": "ResNet backbone (He et al. 2016, Table 1): 7×7 stem, max-pool, four stages of bottleneck blocks.",
    "Bottleneck": "Bottleneck block (He et al. 2016 §4.1, Fig. 5): 1×1, 3×3 and 1×1 convolutions with "
                  "BatchNorm, added to the identity or a projected shortcut, then ReLU.",
    "ConvBNReLU": "Conv2d, BatchNorm and ReLU (mmseg's ConvModule in SETR's decoders).",
    "NAIVEHead": "SETR-Naive decoder: tokens as a map, 1×1 conv-BN-ReLU, 1×1 classifier, bilinear "
                 "upsampling to the image.",
    "PUPHead": "SETR-PUP decoder (Zheng et al. 2021, Fig. 1b): conv-BN-ReLU and 2× bilinear upsampling, "
               "alternating, then the classifier.",
    "MLAStream": "One SETR-MLA stream (Zheng et al. 2021, Fig. 1c): 1×1 reduction, top-down sum with the "
                 "previous stream, two 3×3 convolutions, 4× upsampling.",
    "MLAHead": "SETR-MLA decoder (Zheng et al. 2021, Fig. 1c): four token streams as maps, aggregated "
               "top-down, concatenated, classified, upsampled.",
    "MLP": "DETR's box head (Carion et al. 2020 §3.2, prediction FFN): three Linear layers with ReLU, "
           "sigmoid box coordinates.",
}

INIT = {
    "trunc_normal": [
        "def _init_weights(self, m):",
        '    """timm / official Swin init: Linear ~ trunc_normal(std=0.02), zero bias; LayerNorm 1, 0."""',
        "    if isinstance(m, nn.Linear):",
        "        nn.init.trunc_normal_(m.weight, std=0.02)",
        "        if m.bias is not None:",
        "            nn.init.zeros_(m.bias)",
        "    elif isinstance(m, nn.LayerNorm):",
        "        nn.init.ones_(m.weight)",
        "        nn.init.zeros_(m.bias)",
    ],
    "normal": [
        "def _init_weights(self, m):",
        '    """BERT / GPT init: Linear and Embedding ~ N(0, 0.02²), zero bias; LayerNorm 1, 0."""',
        "    if isinstance(m, (nn.Linear, nn.Embedding)):",
        "        nn.init.normal_(m.weight, mean=0.0, std=0.02)",
        "    if isinstance(m, nn.Linear) and m.bias is not None:",
        "        nn.init.zeros_(m.bias)",
        "    elif isinstance(m, nn.LayerNorm):",
        "        nn.init.ones_(m.weight)",
        "        nn.init.zeros_(m.bias)",
    ],
    "kaiming": [
        "def _init_weights(self, m):",
        '    """As torchvision\'s ResNet: Conv2d ~ kaiming_normal(fan_out, relu); BatchNorm 1, 0."""',
        "    if isinstance(m, nn.Conv2d):",
        '        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")',
        "    elif isinstance(m, nn.BatchNorm2d):",
        "        nn.init.ones_(m.weight)",
        "        nn.init.zeros_(m.bias)",
    ],
    "xavier": [
        "def _init_weights(self, m):",
        '    """As torch.nn.Transformer: zero bias, LayerNorm 1, 0 (matrices: Xavier, in __init__)."""',
        "    if isinstance(m, nn.Linear) and m.bias is not None:",
        "        nn.init.zeros_(m.bias)",
        "    elif isinstance(m, nn.LayerNorm):",
        "        nn.init.ones_(m.weight)",
        "        nn.init.zeros_(m.bias)",
    ],
}


@dataclass(frozen=True)
class Generated:
    source: str
    class_name: str


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("graphspec.codegen", "templates"),
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


class Emitter:
    def __init__(self, graph: Graph, spec=None):
        graph = localize_constants(graph)
        self.graph, self.spec = graph, spec
        self.tree = ModuleTree(graph)
        self.classes = Classes(self.tree)
        self.helpers: set[str] = set()
        self.loops = Loops()
        names = {d.name for d in self.classes.defs}
        self.reserved = (set(dir(builtins)) | {"torch", "nn", "F", "math", "self", "dpr"} | set(HELPER_ORDER)
                         | names)
        self.rendered: dict[int, Rendered] = {}
        for d in self.classes.defs:
            if not self.is_sequential(d) and d.uid not in self.rendered:  # Sequential: inline in its parent
                self.rendered[d.uid] = ClassEmitter(self, d).render()

    def is_sequential(self, d: ClassDef) -> bool:
        return d.cls == "Sequential" and d.paths != [""]

    def class_of(self, path: str) -> Rendered:
        d = self.classes.of[path]
        if d.uid not in self.rendered:  # a class that took in a later instance with a newer child class
            self.rendered[d.uid] = ClassEmitter(self, d).render()
        return self.rendered[d.uid]

    def class_name(self, d: ClassDef) -> str:
        return d.name

    def doc(self, d: ClassDef) -> str:
        info = self.graph.modules[d.paths[0]]
        if d.paths == [""]:
            paper = self.graph.meta.get("paper") or ""
            return docstring_text(f"{self.graph.meta.get('spec') or self.graph.name}" + (f": {paper}." if paper else "."))
        if info.cls == "Block":
            if info.a.get("window"):
                return ("Swin Transformer block (§3.2): window attention, cyclically shifted when shift_size > 0, "
                        "then an MLP, each in a pre-norm residual.")
            if info.a.get("norm") == "post":
                return "Transformer block with post-norm residuals, x = norm(x + f(x)) (Vaswani et al. §3.1)."
            if info.a.get("norm") == "sandwich":
                return "Transformer block with sandwich norms, x = x + norm(f(norm(x))) (Gemma 2 §2)."
            if info.a.get("norm") == "parallel":
                return "Transformer block with a parallel residual, x = x + attn(norm(x)) + mlp(norm(x)) (GPT-J)."
            if info.a.get("norm") == "custom":  # the spec's own `block:` list
                return docstring_text(f"Transformer block: {info.a['layout']}.")
            return "Transformer block with pre-norm residuals, x = x + f(norm(x))."
        return docstring_text(DOCS.get(info.cls) or class_doc(info.cls) or f"{info.cls} of {self.graph.name}.")

    # -- the file ---------------------------------------------------------------------------------
    def source(self) -> Generated:
        root = self.rendered[self.classes.of[""].uid]
        scheme = init_scheme(self.graph)
        init = INIT[scheme]
        if any(n.op == "layer_norm" and n.a.get("bias") is False for n in self.graph):  # layer_norm(bias=false)
            at = len(init) - 1 - init[::-1].index("        nn.init.zeros_(m.bias)")
            init = [*init[:at], "        if m.bias is not None:", "            nn.init.zeros_(m.bias)", *init[at + 1:]]
        tail = ["self.apply(self._init_weights)"]
        if scheme == "xavier":
            tail += ["for p in self.parameters():", "    if p.dim() > 1:", "        nn.init.xavier_uniform_(p)"]
        elif scheme == "normal" and _gpt2_like(self.graph):
            n = sum(1 for m in self.graph.modules.values() if m.cls == "Block")
            tail += [
                "for name, p in self.named_parameters():  # GPT-2 §2.3: residual projections scaled by 1/√N",
                '    if name.endswith(("attn.proj.weight", "mlp.fc2.weight")):',
                f"        nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * {n}))",
            ]
        buffers = any(c.buffer_resets for c in self.rendered.values())
        own = [ln for c in self.rendered.values() for ln in _reset_methods(c, c is root)]  # the root's own
        root.methods.append(_init_weights_method(own, tail, buffers))
        root.init.append("self.init_weights(reset_submodules=False)  # the submodules initialised themselves")
        root.init += _freeze_lines(self.graph)
        root.methods.append(init)
        unknown = set(self.helpers) - set(HELPER_ORDER)
        if unknown:
            raise CodegenError(f"torch templates name helpers that helpers.py.j2 lacks: {sorted(unknown)}")
        constants = _rope_constants(self.graph, self.rendered.values())  # LongRoPE's factor lists
        used = "\n".join(ln for c in self.rendered.values() for ln in c.init + c.body)
        need = {h for h in HELPER_ORDER if re.search(rf"\b{h}\(", used)}
        for h in list(need):
            need.update(HELPER_DEPS.get(h, ()))
        if re.search(r"\bapply_rotary\(.*\bscaling=", used):  # a rescaled RoPE (Llama 3.1, Gemma-3's global layers)
            need.add("rope_frequencies")
        module = _env().get_template("helpers.py.j2").make_module({"rope_scaling": "rope_frequencies" in need,
                                                                   "longrope": bool(constants),
                                                                   "weigh_input": 'weigh="input"' in used})
        helpers = [str(getattr(module, h)()).strip("\n") for h in HELPER_ORDER if h in need] + constants
        classes = [_layout(c) for c in self.rendered.values()]
        code_text = "\n".join(helpers) + "".join(c["init"] + c["body"] + "".join(c["methods"]) for c in classes)
        imports = ["import math", ""] if "math." in code_text else []
        if "torch." in code_text:
            imports += ["import torch"]
        if "F." in code_text:
            imports += ["import torch.nn.functional as F"]
        imports += ["from torch import nn"]
        text = _env().get_template("model.py.j2").render(
            title=_wrap_doc(docstring_text(self.title()), 0), header="\n".join(self.header()), imports="\n".join(imports),
            helpers=helpers, classes=classes)
        return Generated(text, root.name)

    def title(self) -> str:
        m = self.graph.meta
        paper = m.get("paper") or ""
        return f"{m.get('spec') or self.graph.name}" + (f": {paper}." if paper else ".")

    def header(self) -> list[str]:
        g = self.graph
        out = []
        if g.meta.get("repo"):
            out += [docstring_text(f"Reference implementation: {g.meta['repo']}"), ""]
        params, macs = analysis.param_count(g), analysis.macs(g)
        ins = ", ".join(f"{n.local} {tuple(n.shape)}" for n in g.inputs)
        out.append(docstring_text(f"Parameters: {_num(params)}. MACs: {_num(macs)} for inputs {ins}."))
        out.append("MACs are multiply-accumulates of linear, conv and attention matmuls (graphspec's count).")
        if g.meta.get("passes"):
            out.append(docstring_text(f"Passes: {', '.join(map(str, g.meta['passes']))}."))
        out += ["", "generated by graphspec — do not edit"]
        return out


def _num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else comment_text(str(v))


# NOTE: [Meta-device construction] A generated model builds under `with torch.device("meta")`
# without allocating (every tensor of `__init__` is a parameter or buffer made by a factory that
# the device context redirects; nothing reads tensor data), then `model.to_empty(device=...)` and
# `model.init_weights()` give it the constructor's initialisation: each module's
# `reset_parameters` touches its own parameters only (torch's modules have theirs), the model-wide
# scheme (`_init_weights`) runs over all, and each module's `reset_buffers` recomputes its
# non-persistent buffers (index tables, masks) on the parameters' device. Those statements come
# from the op templates: `nn.init.*(self.x, ...)` lines become `reset_parameters`, and each
# `register_buffer(..., persistent=False)` is also written as an assignment (codegen/emit.py).
INIT_LINE = re.compile(r"nn\.init\.\w+_\(self\.")


def _reset_methods(c: Rendered, root: bool) -> list[str]:
    """Move a class's own `nn.init` statements into `reset_parameters` (the root's into
    `init_weights`: returned), and write `reset_buffers` from its buffer assignments."""
    own = [ln for ln in c.init if INIT_LINE.match(ln)]
    if own:
        last = max(i for i, ln in enumerate(c.init) if INIT_LINE.match(ln))
        keep = [ln for i, ln in enumerate(c.init) if i > last or not INIT_LINE.match(ln)]
        if not root:
            keep.insert(last - len(own) + 1, "self.reset_parameters()")
            c.methods.append(["def reset_parameters(self):", '    """This module\'s own parameters, as constructed."""',
                              *("    " + ln for ln in own)])
        c.init[:] = keep
    if c.buffer_resets:
        c.methods.append(["def reset_buffers(self):",
                          '    """The non-persistent buffers again, on the current default device (after to_empty)."""',
                          *("    " + w for ln in c.buffer_resets for w in wrap(ln))])
    return own if root else []


def _init_weights_method(own: list[str], tail: list[str], buffers: bool) -> list[str]:
    """The model's `init_weights` (NOTE: [Meta-device construction])."""
    out = [
        "def init_weights(self, reset_submodules: bool = True):",
        '    """The default initialisation, in place: after `to_empty(device=...)` of a model built on',
        '    the meta device, every parameter as the constructor draws it and every buffer recomputed."""',
        "    if reset_submodules:",
        "        for m in self.modules():",
        '            if m is not self and hasattr(m, "reset_parameters"):',
        "                m.reset_parameters()",
        *("    " + ln for ln in own),
        *("    " + ln for ln in tail),
    ]
    if buffers:
        out += ["    if reset_submodules:",
                "        with torch.device(next(self.parameters()).device):",
                "            for m in self.modules():",
                '                if hasattr(m, "reset_buffers"):',
                "                    m.reset_buffers()"]
    return out


def _freeze_lines(graph: Graph) -> list[str]:
    """`requires_grad_(False)` on the largest modules all of whose parameters the IR marks frozen
    (DETR trains neither the stem nor layer1 of its backbone)."""
    frozen = analysis.frozen(graph)
    if not frozen:
        return []
    params = list(analysis.parameters(graph))
    roots: list[str] = []
    for name in sorted(frozen):
        parts = name.split(".")[:-1]
        for k in range(1, len(parts) + 1):
            path = ".".join(parts[:k])
            if all(q in frozen for q in params if q.startswith(path + ".")):
                if path not in roots:
                    roots.append(path)
                break
    attr = lambda p: "self" + "".join(f"[{c}]" if c.isdigit() else f".{c}" for c in p.split("."))  # noqa: E731
    return [f"for m in ({', '.join(attr(p) for p in roots)}{',' if len(roots) == 1 else ''}):"
            "  # not trained, as in the reference", "    m.requires_grad_(False)"]


def init_scheme(graph: Graph) -> str:
    """How the official code initializes this family: convolutional networks as torchvision's
    ResNet, other image models as timm/Swin, token models with one stack as BERT/GPT,
    encoder-decoders as torch.nn.Transformer."""
    inputs = graph.inputs
    if any(n.a.get("kind") == "image" for n in inputs):
        cnn = any(n.op == "conv2d" for n in graph) and not any(n.op == "layer_norm" for n in graph)
        return "kaiming" if cnn else "trunc_normal"
    return "xavier" if len(inputs) > 1 else "normal"


def _gpt2_like(graph: Graph) -> bool:
    blocks = [m for m in graph.modules.values() if m.cls == "Block"]
    return bool(blocks) and all(m.a.get("norm") == "pre" for m in blocks) and any(
        n.op == "causal_mask" or (n.op == "attention" and n.a.get("causal")) for n in graph) and any(
        n.name.endswith(("attn.proj", "mlp.fc2")) for n in graph if n.op == "linear")  # GPT-2's names


def _layout(c: Rendered) -> dict:
    sig = "self" + "".join(f", {a}" for a in c.signature)
    if len(f"    def __init__({sig}):") > WIDTH:
        sig = "\n" + "".join(f"        {a},\n" for a in ["self", *c.signature]) + "    "
    return {
        "name": c.name, "doc": _wrap_doc(c.doc, 4), "signature": sig, "forward_args": ", ".join(c.forward_args),
        "init": _indent([w for line in c.init for w in wrap(line)], 8),
        "body": _indent([w for line in c.body for w in wrap(line)], 8),
        "methods": [_indent(m, 4) for m in c.methods],
    }


def _wrap_doc(text: str, indent: int) -> str:
    import textwrap

    lines = textwrap.wrap(text, WIDTH - indent - 6, break_long_words=False, break_on_hyphens=False)
    return ("\n" + " " * indent).join(lines)


def _indent(lines: list[str], n: int) -> str:
    return "\n".join((" " * n + line) if line.strip() else "" for line in lines)


def wrap(line: str, width: int = WIDTH - 8) -> list[str]:
    """A long statement broken as black would break it: call arguments on their own lines,
    recursively, a trailing comment kept on the closing line."""
    if len(line) <= width or line.startswith(" ") or line.lstrip().startswith(("for ", "if ")):
        return [line]
    try:
        stmt = ast.parse(line).body[0]
    except SyntaxError:
        return [line]
    value = stmt.value if isinstance(stmt, ast.Assign | ast.Expr | ast.Return) else None
    if value is None or value.end_lineno != 1:
        return [line]
    head, text, tail = line[:value.col_offset], line[value.col_offset:value.end_col_offset], line[value.end_col_offset:]
    if isinstance(value, ast.IfExp) and not text.startswith("("):
        parts = ["("] + ["    " + x for x in _wrap(text, width - 4)] + [")"]
    else:
        parts = _wrap(text, width, first=len(head))
    if len(parts) == 1 and tail.strip().startswith("#") and len(head + text) <= width:
        return [tail.strip(), head + text]  # fits without its trailing comment: the comment goes above
    return [head + parts[0]] + parts[1:-1] + [parts[-1] + tail] if len(parts) > 1 else [line]


def _wrap(text: str, width: int, first: int = 0) -> list[str]:
    """`text` (one expression) as lines no wider than `width` where its structure allows
    (`first`: columns already taken on its first line)."""
    if len(text) + first <= width:
        return [text]
    kw = re.match(r"(\w+)=(?!=)", text)
    if kw:  # a keyword argument
        sub = _wrap(text[kw.end():], width - kw.end())
        return [kw.group(0) + sub[0]] + sub[1:]
    if text.startswith("*(") and text.endswith(")"):  # *(Block(...) for i in range(n))
        gen = ast.parse(text[1:], mode="eval").body
        if isinstance(gen, ast.GeneratorExp):
            body = text[1:]
            elt = ast.get_source_segment(body, gen.elt)
            rest = body[gen.elt.end_col_offset:-1].strip()
            return ["*("] + ["    " + x for x in _wrap(elt, width - 4)] + ["    " + rest, ")"]
    node = ast.parse(text, mode="eval").body
    seg = lambda n: ast.get_source_segment(text, n)  # noqa: E731
    if isinstance(node, ast.Call):
        open_ = text[:node.func.end_col_offset] + "("
        if len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.GeneratorExp):
            gen = node.args[0]
            rest = text[gen.elt.end_col_offset:node.end_col_offset - 1].strip()
            return [open_] + ["    " + x for x in _wrap(seg(gen.elt), width - 4)] + ["    " + rest, ")"]
        args = [seg(a) for a in node.args] + [f"{k.arg}={seg(k.value)}" if k.arg else f"**{seg(k.value)}"
                                               for k in node.keywords]
        if len("    " + ", ".join(args)) <= width:
            return [open_, "    " + ", ".join(args), ")"]
        out = [open_]
        for a in args:
            sub = _wrap(a, width - 4)
            out += ["    " + x for x in sub[:-1]] + ["    " + sub[-1] + ","]
        return out + [")"]
    if isinstance(node, ast.IfExp):
        return _wrap(seg(node.body), width) + [f"if {seg(node.test)}", f"else {seg(node.orelse)}"]
    if isinstance(node, ast.Tuple | ast.List):
        brackets = "[]" if isinstance(node, ast.List) else "()"
        out = [brackets[0]]
        for e in node.elts:
            sub = _wrap(seg(e), width - 4)
            out += ["    " + x for x in sub[:-1]] + ["    " + sub[-1] + ","]
        return out + [brackets[1]]
    return [text]


def generate(graph: Graph, spec=None) -> str:
    """The PyTorch source of `graph`: one file, deterministic, never importing graphspec."""
    return emit(graph, spec).source


def _rope_constants(graph: Graph, rendered) -> list[str]:
    """LongRoPE's scaling tuples (two lists of rotary_dim/2 factors) as module-level constants,
    ROPE_SCALING (_1, _2, ... when several), which the rendered lines name instead of the literal."""
    from graphspec.codegen.exprs import literal

    found = list(dict.fromkeys(n.a["scaling"] for n in graph if n.op == "rotary" and n.a.get("scaling")
                               and n.a["scaling"][0] == "longrope"))
    out = []
    for i, t in enumerate(found):
        name = "ROPE_SCALING" if len(found) == 1 else f"ROPE_SCALING_{i + 1}"
        for c in rendered:
            c.init[:] = [ln.replace(literal(t), name) for ln in c.init]
            c.body[:] = [ln.replace(literal(t), name) for ln in c.body]
        _, short, long, original, af = t
        lines = [f"# LongRoPE (Ding et al. 2024): rotary frequency i ÷ short_factor[i] up to {original} tokens",
                 f"# and ÷ long_factor[i] beyond; cos and sin × {af!r} (HF's rope_type \"longrope\")",
                 f"{name} = (", '    "longrope",']
        for what, xs in (("short_factor", short), ("long_factor", long)):
            lines.append(f"    (  # {what}")
            row = "       "
            for x in xs:
                if len(row) + len(repr(x)) + 2 > 100:
                    lines.append(row)
                    row = "       "
                row += f" {x!r},"
            lines += [row, "    ),"]
        lines += [f"    {original},  # original_max_position_embeddings", f"    {af!r},  # attention_factor", ")"]
        out.append("\n".join(lines))
    return out


def emit(graph: Graph, spec=None) -> Generated:
    if graph.meta.get("symbolic"):
        raise CodegenError("codegen needs concrete shapes; load the spec without symbolic=True")
    return Emitter(graph, spec).source()


def load(source: str, name: str | None = None) -> types.ModuleType:
    """Execute generated source as a fresh module (registered in sys.modules so that torch.fx,
    pickle and tracebacks can find its classes)."""
    import linecache

    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    modname = name or f"graphspec_generated_{digest}"
    filename = f"<graphspec-generated {modname}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(modname)
    mod.__file__ = filename
    sys.modules[modname] = mod
    exec(compile(source, filename, "exec"), mod.__dict__)  # noqa: S102 - our own generated code
    return mod
