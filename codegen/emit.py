"""One class of the generated file: its arguments, `__init__` and `forward`.

`ClassEmitter` turns a `ClassDef` (instances of one module class, merged) into source lines:
op steps through the op's torch template (graphspec/ops), child calls as `self.attn(x)`, lists
of blocks as an `nn.ModuleList` built in a loop and run in a `for` loop. Values that differ
between instances become constructor arguments (see exprs.py); optional steps become guards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphspec.codegen.body import Body, Code
from graphspec.codegen.classes import ClassDef, MStep
from graphspec.codegen.exprs import DONT_CARE, Param, Params, literal, names_in, paren
from graphspec.codegen.fill import AttrExpr, fill
from graphspec.codegen.names import MODULE_ATTRS, Namespace, identifier
from graphspec.codegen.program import CodegenError, base_name

from graphspec.ops import CONSTANT, HAS_PARAMS, NORM, SOURCE, get

# Attribute values at which an op is the identity: where such a step is absent, this is its value.
IDENTITY = {"roll": {"shift": 0}, "shift_mask": {"shift": 0}, "dropout": {"p": 0.0}, "drop_path": {"p": 0.0},
            "sliding_mask": {"window": None},  # a global/causal layer among sliding ones (Gemma-2): window None
            "chunked_mask": {"chunk": None},  # Llama 4's global layers among its chunked ones
            "local_mask": {"window": None}}  # ModernBERT's global layers among its local ones
BUILT_AS_IDENTITY = frozenset({"dropout", "drop_path"})  # absent = constructed with p=0
GUARD_NAMES = {"roll": "shift", "shift_mask": "shift", "causal_mask": "causal", "add_window_mask": "mask",
               "sliding_mask": "sliding_window", "chunked_mask": "attention_chunk_size",
               "local_mask": "local_attention"}
HINTS = {("scale", "k"): "scale", ("attention", "scale"): "scale", ("attention", "dropout"): "attn_drop",
         ("sliding_mask", "window"): "sliding_window", ("attention", "sliding"): "sliding_window",
         ("chunked_mask", "chunk"): "attention_chunk_size", ("attention", "chunk"): "attention_chunk_size",
         ("local_mask", "window"): "local_attention", ("attention", "local"): "local_attention",
         ("attn_temperature", "floor"): "floor_scale", ("attn_temperature", "scale"): "attn_scale",
         ("rotary", "theta"): "rope_theta", ("rotary", "scaling"): "rope_scaling"}
TABLES = {"tokens": "vocab", "types": "types", "pos": "max_len"}  # an embedding's length, by its name
LOOP_VARS = {"blocks": "blk", "layers": "layer"}
# NOTE: [Optional inputs] A value the IR computes that a caller may give instead: the forward
# takes it as a keyword argument defaulting to None and computes the IR's value only then (BERT's
# token types are zeros unless given, as in Hugging Face's BertModel). Parents thread it down
# to a child called once; the IR, and so ONNX and TVM, keep the default.
OPTIONAL_INPUTS = {"token_type_ids": "zeros_like"}  # value name -> the op that computes its default
BUFFER = re.compile(r'self\.register_buffer\("(\w+)", (.*), persistent=False\)')


@dataclass
class Rendered:
    """A class ready for the template."""

    name: str
    doc: str
    signature: list[str]
    init: list[str]
    forward_args: list[str]
    body: list[str]
    params: list[Param]
    methods: list[str] = field(default_factory=list)
    optional: list[str] = field(default_factory=list)  # NOTE: [Optional inputs]
    buffer_resets: list[str] = field(default_factory=list)  # NOTE: [Meta-device construction]


class Attrs(Mapping):
    """A step's attributes as expressions, computed when a template reads them."""

    def __init__(self, ce: ClassEmitter, j: int, ctx: str, **extra: str):
        self.ce, self.j, self.ctx, self.extra = ce, j, ctx, extra

    def __getitem__(self, name: str) -> AttrExpr:
        if name in self.extra:
            return AttrExpr(self.extra[name])
        if all(name not in s.node.a for s in self.ce.d.steps[self.j].per.values()):
            raise KeyError(name)  # an attribute some instances lack is None there (a causal layer's `sliding`)
        return self.ce.attr(self.j, name, self.ctx)

    def __iter__(self):
        return iter(self.ce.d.steps[self.j].first.node.a)

    def __len__(self) -> int:
        return len(self.ce.d.steps[self.j].first.node.a)


class ClassEmitter:
    def __init__(self, em: Any, d: ClassDef):
        self.em, self.d, self.g = em, d, em.graph
        self.root = d.paths == [""]
        self.P = Params(list(d.paths), root=self.root)
        info = self.g.modules[d.paths[0]]
        for a in info.a:
            self.P.add(a, {q: self.g.modules[q].a.get(a, DONT_CARE) for q in d.paths}, source=a)
        self.attrs = Namespace(MODULE_ATTRS)
        self.stores: dict[str, str] = {}  # init-context expression -> attribute
        self.store_lines: list[str] = []
        self.pre: list[str] = []
        self.lines: list[str] = []
        self.buffers: dict[int, str] = {}  # step -> buffer attribute (optional ones)
        self.buffer_resets: list[str] = []  # `self.name = expr` recomputing each non-persistent buffer
        self.cache: dict[tuple, AttrExpr] = {}
        self.shared_modules: dict[str, str] = {}  # init text -> attribute (parameter-free modules)
        self.built: set[str] = set()
        for ms in d.steps:  # names that carry parameters are fixed by the IR: reserve them first
            s = ms.first
            if s.kind == "op" and get(s.node.op).has(HAS_PARAMS) and not s.node.a.get("weights"):
                self.attrs.reserve(identifier(s.node.local))
            elif s.kind != "op":
                self.attrs.reserve(identifier(s.attr))
        self.inputs = self._input_names()
        self.optional = self._optional_inputs()

    # -- attribute expressions --------------------------------------------------------------------
    def _values(self, j: int, name: str) -> dict[str, Any]:
        ms = self.d.steps[j]
        ident = IDENTITY.get(ms.first.node.op, {})
        return {q: (ms.per[q].node.a.get(name) if q in ms.per else ident.get(name, DONT_CARE)) for q in self.d.paths}

    def attr(self, j: int, name: str, ctx: str) -> AttrExpr:
        key = (j, name, ctx)
        if key in self.cache:
            return self.cache[key]
        node = self.d.steps[j].first.node
        vals = self._values(j, name)
        if name == "length" and ctx == "fwd" and get(node.op).has(SOURCE) and self._dynamic_length(j, vals):
            out = AttrExpr(f"{self.inputs[0]}.size(1)")
        else:
            if name in ("H", "W") and "H" in node.a and "W" in node.a:
                hv, wv = self._values(j, "H"), self._values(j, "W")
                pair = {q: (hv[q], wv[q]) if hv[q] is not DONT_CARE else DONT_CARE for q in self.d.paths}
                e = self.P.expr(pair, "grid")
                k = 0 if name == "H" else 1
                known = [v for v in vals.values() if v is not DONT_CARE]
                if not self._params_in(e):
                    e = literal(known[0])
                elif ctx == "init" and e in self._params_in(e):  # H, W = input_resolution
                    line = f"H, W = {e}"
                    if line not in self.pre:
                        self.pre.append(line)
                    e = name
                else:
                    e = f"{paren(e, 9)}[{k}]"
            elif node.op == "parameter" and name == "shape" and ctx == "init":
                out = self.shape_expr(j, vals, base_name(node.local))
                self.cache[key] = out
                return out
            else:
                hint = HINTS.get((node.op, name)) or (base_name(node.local) if name == "p" else name)
                if node.op == "embedding" and name == "num":
                    hint = TABLES.get(base_name(node.local), "num")
                e = self.P.expr(vals, hint)
            known = [v for v in vals.values() if v is not DONT_CARE]
            lit = not self._params_in(e)
            out = AttrExpr(e, known[0] if lit and known else None) if lit else AttrExpr(e)
            if ctx in ("fwd", "reset") and not lit:  # "reset": a method other than forward (reset_buffers)
                out = AttrExpr(self.fwd(e, name if name in ("H", "W") else
                                        HINTS.get((node.op, name)) or name))
        self.cache[key] = out
        return out

    def shape_expr(self, j: int, vals: dict[str, Any], local: str) -> AttrExpr:
        """A learned tensor's shape element by element, as timm writes `torch.zeros(1, 1, embed_dim)`:
        the last is a width (`dim`), a position table's middle one its length (`num_patches`)."""
        known = [v for v in vals.values() if v is not DONT_CARE]
        rank = len(known[0])
        if any(not isinstance(v, tuple | list) or len(v) != rank for v in known):
            raise CodegenError(f"the learned tensor {local!r} has shapes of different ranks in one class")
        parts = []
        for k in range(rank):
            hint = "dim" if k == rank - 1 else "num_patches" if "pos" in local and k == 1 else "size"
            e = self.P.expr({q: v if v is DONT_CARE else v[k] for q, v in vals.items()}, hint)
            parts.append(AttrExpr(e) if self._params_in(e) else AttrExpr(e, known[0][k]))
        if all(p.known for p in parts):
            return AttrExpr(literal(tuple(known[0])), tuple(known[0]))
        return AttrExpr("(" + ", ".join(p.text for p in parts) + ")", parts=parts)

    def _params_in(self, e: str) -> set[str]:
        return names_in(e) & {p.name for p in self.P.params}

    def _dynamic_length(self, j: int, vals: dict[str, Any]) -> bool:
        for q in self.d.steps[j].per:
            first = self.em.tree.program(q).inputs[:1]
            if not first or self.g[first[0]].shape[1:2] != (vals[q],):
                return False
        return True

    def fwd(self, e: str, hint: str) -> str:
        """An init-context expression as the forward pass reads it (stored on `self`)."""
        params = self._params_in(e)
        if not params:
            return e
        if e in params:
            return f"self.{self.store(e, e)}"
        if e.startswith("-") and e[1:] in params:
            return f"-self.{self.store(e[1:], e[1:])}"
        return f"self.{self.store(e, hint)}"

    def store(self, e: str, hint: str) -> str:
        if e not in self.stores:
            name = self.attrs.create(identifier(hint))
            self.stores[e] = name
            self.store_lines.append(f"self.{name} = {e}")
        return self.stores[e]

    def cond(self, j: int, present: dict[str, bool], hint: str) -> str:
        """An argument that says whether the optional step `j` runs (added if none does)."""
        name = self.P.truthy(present, hint)
        if name is None:
            p = self.P.add(hint, dict(present))
            p.used = True
            name = p.name
        return name

    # -- inputs ---------------------------------------------------------------------------------
    def _input_names(self) -> list[str]:
        prog = self.em.tree.program(self.d.paths[0])
        ns = Namespace(self.em.reserved)
        out = []
        for i, v in enumerate(prog.inputs):
            n = self.g[v]
            if self.root:
                out.append(ns.create(identifier(n.local)))
            elif n.dtype == "i64":
                out.append(ns.create("ids"))
            elif n.op == "relative_bucket_bias":  # Hugging Face's T5 name for the stack's shared bias
                out.append(ns.create("position_bias"))
            elif i > 0 and (n.module == "encoder" or n.module.startswith("encoder.")):
                out.append(ns.create("memory"))
            elif i > 0 and self.d.cls == "CrossAttention":  # what the queries attend over (SigLIP's probe: the tokens)
                out.append(ns.create("tokens"))
            else:
                out.append(ns.create("x"))
        return out

    def _optional(self, ms: MStep) -> str | None:
        """The argument name when step `ms` computes the default of an optional input."""
        s = ms.first
        if s.kind != "op" or len(ms.per) < len(self.d.paths):
            return None
        name = base_name(s.node.local)
        return name if OPTIONAL_INPUTS.get(name) == s.node.op and name not in self.inputs else None

    def _threaded(self, ms: MStep) -> list[str]:
        """The optional inputs of a child this class calls once (it passes them on)."""
        s = ms.first
        if s.kind != "call" or s.index is not None or len(ms.per) < len(self.d.paths):
            return []
        if any(self.em.tree.calls(ms.per[q].children[0]) != 1 for q in ms.per):
            return []
        kid = self.em.classes.of[s.children[0]]
        return [] if self.em.is_sequential(kid) else list(self.em.class_of(s.children[0]).optional)

    def _optional_inputs(self) -> list[str]:
        out: list[str] = []
        for ms in self.d.steps:
            names = [self._optional(ms)] + self._threaded(ms)
            out += [n for n in names if n and n not in out and n not in self.inputs]
        return out

    # -- steps ----------------------------------------------------------------------------------
    def codes(self) -> list[Code]:
        out = []
        for j, ms in enumerate(self.d.steps):
            kind = ms.first.kind
            out.append(self.op_code(j, ms) if kind == "op" else self.call_code(j, ms) if kind == "call"
                       else self.loop_code(j, ms))
        return out

    def op_code(self, j: int, ms: MStep) -> Code:
        node = ms.first.node
        d = get(node.op)
        t = d.torch
        if t is None:
            raise CodegenError(f"op {node.op!r} (%{node.name}) has no torch template")
        self.em.helpers.update(t.helpers)
        present = {q: q in ms.per for q in self.d.paths}
        optional = not all(present.values())
        code = Code("op", list(ms.refs), hint=base_name(node.local), is_add=node.op == "add",
                    stream=self._stream(ms, node.name))
        weights = node.a.get("weights")
        call = t.call
        owned = {self._owner(q, ms.per[q].node) for q in ms.per}
        if len(owned) != 1:
            raise CodegenError(f"{self.d.cls}: instances keep the parameters of %{node.name} as {sorted(owned)}")
        rel = owned.pop()
        tied = weights in self.g and self.g[weights].op != node.op  # a root-level table (`embed_tokens`)
        if weights and (("." in rel and not re.fullmatch(r"\w+\.\d+", rel)) or tied):  # another module's (a tied head)
            call = t.shared
            if call is None:
                raise CodegenError(f"op {node.op!r} (%{node.name}) shares {weights} but has no `shared` template")
            rels = {self._relative(q, ms.per[q].node.a["weights"]) for q in ms.per}
            if len(rels) != 1:
                raise CodegenError(f"%{node.name}: instances share different weights {sorted(rels)}")
            extra = {"weights": rels.pop()}
        elif d.has(SOURCE) and d.has(CONSTANT) and not node.inputs and isinstance(t.call, str) and "{ref}" not in t.call:
            name = self.attrs.create(identifier(base_name(node.local)))
            text = fill(t.call, [], Attrs(self, j, "init"))
            if optional:
                text = f"{text} if {self.cond(j, present, GUARD_NAMES.get(node.op, name))} else None"
                self.buffers[j] = name
            self.lines.append(f'self.register_buffer("{name}", {text}, persistent=False)')
            again = fill(t.call, [], Attrs(self, j, "reset"))  # NOTE: [Meta-device construction]
            if optional:
                again = f"{again} if {self.fwd(self.cond(j, present, GUARD_NAMES.get(node.op, name)), 'flag')} else None"
            self.buffer_resets.append(f"self.{name} = {again}")
            code.fn = lambda ops, name=name: f"self.{name}"
            return code
        else:
            extra = {}
            if t.init is not None or t.setup:
                identity = optional and get(node.op).has(NORM)  # a norm some blocks lack: nn.Identity() there
                extra["mod"] = self._module(j, ms, t, unless=(lambda: self.cond(j, present, code.hint)) if identity
                                            else None)
                optional = optional and not identity
        ref = self.inputs[0] if self.inputs else "x"
        code.uses_ref = isinstance(call, str) and "{ref}" in call
        code.fn = lambda ops, call=call, extra=extra, ref=ref: fill(call, ops, Attrs(self, j, "fwd", ref=ref, **extra))
        if t.comment:
            code.comment = t.comment(dict(node.a)) if callable(t.comment) else t.comment
            code.statement = True
        if node.op in ("chunk", "split"):  # split: GQA's uneven q|k|v widths (a tuple of sizes)
            code.chunk = (ms.refs[0], node.a["parts"] if node.op == "chunk" else tuple(node.a["sizes"]), node.a["index"])
        if self._optional(ms):
            code.default, code.statement = self._optional(ms), True
        if optional and node.op not in BUILT_AS_IDENTITY:
            bufs = [self.buffers[r[1]] for r in ms.refs[1:] if r and r[0] == "step" and r[1] in self.buffers]
            if bufs:
                code.guard = f"self.{bufs[0]} is not None"
            else:
                if node.op in ("sliding_mask", "local_mask"):  # the per-layer window (None: a global layer) guards it
                    self.attr(j, "window", "fwd")
                if node.op == "chunked_mask":  # likewise the chunk (None: Llama 4's global layers)
                    self.attr(j, "chunk", "fwd")
                code.guard = self.fwd(self.cond(j, present, GUARD_NAMES.get(node.op, code.hint)), "flag")
        return code

    def _stream(self, ms: MStep, value: str) -> bool:
        if ms.first.kind == "op" and not ms.first.node.inputs:
            return False  # a source (position ids, a mask) is never the residual stream
        q = next(iter(ms.per))
        prog = self.em.tree.program(q)
        ends = [self.g[v].shape for v in prog.inputs[:1] + prog.outputs[:1]]
        return self.root or self.g[value].shape in ends

    def _relative(self, q: str, weights: str) -> str:
        if q and not weights.startswith(q + "."):
            raise CodegenError(f"module {q!r} uses the weights of {weights!r}, outside itself")
        rel = weights[len(q) + 1:] if q else weights
        return "self" + "".join(f"[{p}]" if p.isdigit() else f".{identifier(p)}" for p in rel.split("."))

    def _owner(self, q: str, node) -> str:
        """Where the parameters of `node` live, relative to instance `q`: `q` for a submodule
        of its own, "" for the module itself (Swin's bias table), `embed.tokens` elsewhere."""
        owner = node.a.get("weights") or node.name
        if owner == q:
            return ""
        if q and not owner.startswith(q + "."):
            raise CodegenError(f"module {q!r} uses the parameters of {owner!r}, outside itself")
        return owner[len(q) + 1:] if q else owner

    def _module(self, j: int, ms: MStep, t, unless: Callable[[], str] | None = None) -> str:
        """The attribute holding the module of step `j` (built here at its first use); `unless()`
        names the argument without which it is built as nn.Identity() (HF's ModernBERT:
        `nn.Identity() if layer_id == 0 else nn.LayerNorm(...)`)."""
        node = ms.first.node
        has_params = get(node.op).has(HAS_PARAMS)
        if has_params:
            rel = self._owner(next(iter(ms.per)), node) or node.local
            if re.fullmatch(r"\w+\.\d+", rel):
                return self._module_list(rel)
            if "." in rel and t.init is not None and node.op == "parameter":  # DETR's query_embed.weight
                holder, leaf = rel.split(".", 1)
                mod = f"{identifier(holder)}.{identifier(leaf)}"
                if mod not in self.built:
                    self.built.add(mod)
                    init = fill(t.init, [], Attrs(self, j, "init"), init=True)
                    self.lines.append(f'self.{identifier(holder)} = nn.ParameterDict({{"{identifier(leaf)}": {init}}})')
                    for line in t.setup:
                        self._setup(line, j, mod)
                return mod
            mod = identifier(rel)
            if mod in self.built:  # the second call of a module (the Transformer's shared embedding)
                return mod
            self.built.add(mod)
        init = fill(t.init, [], Attrs(self, j, "init", mod="_mod_"), init=True) if t.init is not None else None
        if not has_params and init is not None and init in self.shared_modules:
            return self.shared_modules[init]
        if not has_params:
            mod = self.attrs.create(identifier(base_name(node.local)))
            if init is not None:
                self.shared_modules[init] = mod
        if init is not None:
            self.lines.append(f"self.{mod} = {init.replace('_mod_', mod)}"
                              + (f" if {unless()} else nn.Identity()" if unless else ""))
        for line in t.setup:
            self._setup(line, j, mod)
        return mod

    def _setup(self, line: str, j: int, mod: str) -> None:
        """One `__init__` statement of an op's template; a buffer it registers is also recomputed
        by `reset_buffers` (NOTE: [Meta-device construction])."""
        self.lines.append(fill(line, [], Attrs(self, j, "init", mod=mod)))
        m = BUFFER.fullmatch(fill(line, [], Attrs(self, j, "reset", mod=mod)))
        if m:
            self.buffer_resets.append(f"self.{m[1]} = {m[2]}")

    def _module_list(self, rel: str) -> str:
        """`layers[1]`: an element of a list of modules kept on this module (DETR's MLP); the
        list is built whole at its first use."""
        name, index = rel.split(".")
        attr = identifier(name)
        if attr not in self.built:
            self.built.add(attr)
            items: dict[int, str] = {}
            for j, ms in enumerate(self.d.steps):
                s = ms.first
                if s.kind != "op" or not get(s.node.op).has(HAS_PARAMS):
                    continue
                m = re.fullmatch(rf"{re.escape(name)}\.(\d+)", self._owner(next(iter(ms.per)), s.node))
                t = get(s.node.op).torch
                if m and int(m[1]) not in items and t.init is not None:
                    items[int(m[1])] = fill(t.init, [], Attrs(self, j, "init"), init=True)
            if sorted(items) != list(range(len(items))):
                raise CodegenError(f"{self.d.cls}: the list {name} has elements {sorted(items)}")
            self.lines.append(f"self.{attr} = nn.ModuleList([{', '.join(items[k] for k in sorted(items))}])")
        return f"{attr}[{index}]"

    def call_code(self, j: int, ms: MStep) -> Code:
        s = ms.first
        attr = identifier(s.attr)
        present = {q: q in ms.per for q in self.d.paths}
        if s.index is not None:  # one element of a list called on its own (SETR's MLA streams)
            text = self._list(s.attr, {q: ms.per[q].children[0] for q in ms.per})
            call = f"self.{attr}[{s.index}]"
        else:
            text = self._alternatives(j, ms) or self.construct(
                s.children[0], {q: (ms.per[q].children[0] if q in ms.per else DONT_CARE) for q in self.d.paths})
            call = f"self.{attr}"
        code = Code("call", list(ms.refs), nout=len(s.outs), hint="memory" if s.attr == "encoder" else "x",
                    stream=self._stream(ms, s.outs[0]))
        if not all(present.values()):
            if s.index is not None:
                raise CodegenError(f"{self.d.cls}: {s.attr}[{s.index}] is missing in some instances")
            text = f"{text} if {self.cond(j, present, s.attr)} else None"
            code.guard = f"self.{attr} is not None"
        if attr not in self.built:  # a module called twice (the Transformer's shared embedding)
            self.built.add(attr)
            self.lines += [f"self.{attr} = {text}"] if isinstance(text, str) else text
        passed = [n for n in self._threaded(ms) if n in self.optional]
        code.fn = lambda ops: f"{call}({', '.join(ops + passed)})"
        return code

    def _alternatives(self, j: int, ms: MStep) -> str | list[str] | None:
        """A child of one class in some instances and another in the rest (classes.py), as
        Hugging Face's DeepseekV2DecoderLayer builds it: `MoE(...) if moe else SwiGLU(...)`; with
        three classes or more, an if/elif chain on a string argument, as Qwen3-Next's decoder
        layer branches on its layer type: `if mlp_type == "swiglu": self.mlp = SwiGLU(...)`."""
        from graphspec.codegen.source import WIDTH, wrap

        by_class: dict[int, list[str]] = {}
        for q, st in ms.per.items():
            by_class.setdefault(self.em.classes.of[st.children[0]].uid, []).append(q)
        if len(by_class) == 1:
            return None
        if len(ms.per) < len(self.d.paths):
            raise CodegenError(f"{self.d.cls}: {ms.first.attr} is one of {len(by_class)} classes, in some "
                               "instances only; one class per attribute, or classes that cover every instance")
        groups = sorted(by_class.values(), key=lambda qs: self.d.paths.index(qs[0]))
        texts = [self.construct(ms.per[qs[0]].children[0], {q: (ms.per[q].children[0] if q in qs else DONT_CARE)
                                                            for q in self.d.paths}) for qs in groups]
        hints = [self._kind(ms.per[qs[0]].children[0]) for qs in groups]
        if len(groups) == 2:
            return f"{texts[1]} if {self.cond(j, {q: q in groups[1] for q in self.d.paths}, hints[1])} else {texts[0]}"
        if len(set(hints)) < len(hints):  # two classes named alike: number the kinds
            hints = [f"{h}{k}" for k, h in enumerate(hints)]
        attr = identifier(ms.first.attr)
        var = self.P.expr({q: h for qs, h in zip(groups, hints, strict=True) for q in qs}, f"{attr}_type")
        lines = []
        for k, (h, text) in enumerate(zip(hints, texts, strict=True)):
            lines += ["else:" if k == len(hints) - 1 else f"{'if' if k == 0 else 'elif'} {var} == {literal(h)}:",
                      *(f"    {w}" for w in wrap(f"self.{attr} = {text}", WIDTH - 12))]
        return lines

    def _kind(self, first_child: str) -> str:
        """A snake-case name of a child's class: GlobalAttention -> global_attention."""
        cls = self.em.class_of(first_child).name if not self.em.is_sequential(self.em.classes.of[first_child]) \
            else "sequential"
        return identifier(re.sub(r"(?<=[a-z])(?=[A-Z][a-z])", "_", cls).lower())

    def construct(self, first_child: str, child_of: dict[str, Any]) -> str:
        """The constructor call of a child module: `Mlp(dim)`, or an inline `nn.Sequential(...)`."""
        d = self.em.classes.of[first_child]
        if self.em.is_sequential(d):
            from graphspec.codegen.sequential import Sequential

            return Sequential(self, d, child_of).text()
        kid = self.em.class_of(first_child)
        return f"{kid.name}({self.child_args(kid, child_of)})"

    def _list(self, attr: str, one_child: dict[str, str]) -> str:
        """`nn.ModuleList(...)` of all the elements `attr.i` of every instance."""
        tree = self.em.tree
        kids = {q: tuple(sorted((c for c in tree.children[q] if tree.slot[c][0] == attr),
                                key=lambda c: tree.slot[c][1])) for q in self.d.paths}
        uids = {self.em.classes.of[c].uid for cs in kids.values() for c in cs}
        if any(self.em.is_sequential(self.em.classes.of[c]) for cs in kids.values() for c in cs):
            raise CodegenError(f"{self.d.cls}: a list of nn.Sequential modules ({attr}) is not supported")
        if len(uids) != 1:  # different classes: one constructor per element
            lengths = {len(cs) for cs in kids.values()}
            if len(lengths) != 1:
                raise CodegenError(f"{self.d.cls}: the list {attr} mixes module classes and lengths")
            items = [self.construct(next(iter(kids.values()))[i], {q: cs[i] for q, cs in kids.items()})
                     for i in range(lengths.pop())]
            return f"nn.ModuleList([{', '.join(items)}])"
        kid = self.em.class_of(next(iter(kids.values()))[0])
        count = self.P.expr({q: len(k) for q, k in kids.items()}, "depth")
        body = f"{kid.name}({self.em.loops.args(self, kid, kids)})"
        var = "i" if "i" in names_in(body) else "_"
        return f"nn.ModuleList({body} for {var} in range({count}))"

    def loop_code(self, j: int, ms: MStep) -> Code:
        s = ms.first
        if len(ms.per) < len(self.d.paths) and not s.tail:
            raise CodegenError(f"{self.d.cls}: the list {s.attr} is missing in some instances")
        attr = identifier(s.attr)
        if self.em.is_sequential(self.em.classes.of[s.children[0]]):
            raise CodegenError(f"{self.d.cls}: a list of nn.Sequential modules ({s.attr}) is not supported")
        lv = LOOP_VARS.get(s.attr, "m")
        if not s.whole:  # a slice of a list whose other elements run elsewhere
            if attr not in self.built:
                self.built.add(attr)
                self.lines.append(f"self.{attr} = {self._list(s.attr, {q: ms.per[q].children[0] for q in ms.per})}")
            ends = {ms.per[q].index + len(ms.per[q].children) for q in ms.per}
            open_end = s.tail and (len(ends) > 1 or len(ms.per) < len(self.d.paths))  # stages of different depths
            span = f"{s.index or ''}:" if open_end else f"{s.index or ''}:{s.index + len(s.children)}"
            return Code("loop", list(ms.refs), loop=(lv, f"self.{attr}[{span}]"))
        kid = self.em.class_of(s.children[0])
        kids = {q: ms.per[q].children for q in self.d.paths}
        count = self.P.expr({q: len(k) for q, k in kids.items()}, "depth")
        args = self.em.loops.args(self, kid, kids)
        body = f"{kid.name}({args})"
        var = "i" if "i" in names_in(body) else "_"
        self.lines.append(f"self.{attr} = nn.ModuleList({body} for {var} in range({count}))")
        return Code("loop", list(ms.refs), loop=(lv, f"self.{attr}"))

    def child_args(self, kid: Rendered, child_of: dict[str, Any]) -> str:
        pieces, positional = [], True
        for kp in kid.params:
            vals = {q: (kp.values.get(c, DONT_CARE) if c is not DONT_CARE else DONT_CARE) for q, c in child_of.items()}
            e = self.P.expr(vals, kp.name)
            positional = positional and e == kp.name
            pieces.append(e if positional else f"{kp.name}={e}")
        return ", ".join(pieces)

    # -- the class --------------------------------------------------------------------------------
    def render(self) -> Rendered:
        codes = self.codes()
        reserved = set(self.em.reserved) | set(self.optional)
        body = Body(codes, list(self.inputs), list(self.d.outputs), reserved).run()
        params = [p for p in self.P.params if p.used]
        if self.root:
            sig = [f"{p.name}={self.P.default(p)}" for p in params]
        else:
            sig = [p.name for p in params]
        init = self.store_lines + self.pre + self.lines
        fwd = self.inputs + [f"{n}=None" for n in self.optional]
        return Rendered(self.em.class_name(self.d), self.em.doc(self.d), sig, init, fwd, body, params,
                        optional=list(self.optional), buffer_resets=list(self.buffer_resets))
