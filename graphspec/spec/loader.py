"""Reading spec files: YAML (safe), `extends`, repetition keys, `--set` overrides, `vars`.

The YAML is composed with the safe loader and walked by hand, so every value keeps its mark
(file, line, column). The result is a plain tree plus a `locs` map from key paths to `Loc`.

    encoder×6: {...}      ->  encoder: {layers: 6, ...}      (also `encoderx6`, `encoder*6`, `encoder×N`)
    vars: d_model=512, h=8 ->  vars: {d_model: 512, h: 8}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphspec.spec.errors import Diagnostics, Loc, SpecError
from graphspec.spec.expr import MAX_BITS
from graphspec.spec.source import MAX_BYTES, bad_text, compose, display, read_spec_file, sibling
from graphspec.spec.source import mark as _mark

REPEAT = re.compile(r"^(?P<name>[A-Za-z_]\w*?)\s*(?:×|\*|\s+x\s+|x(?=\d))\s*(?P<count>\w+)$")
VAR_ITEM = re.compile(r"\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<value>[^,]+?)\s*(?:,|$)")

Path_ = tuple  # a key path into the tree: ("encoder", "heads")


@dataclass
class RawSpec:
    """A spec after `extends` and overrides: the tree and where each value came from."""

    tree: dict[str, Any]
    locs: dict[Path_, Loc] = field(default_factory=dict)
    file: str = "<spec>"
    files: list[str] = field(default_factory=list)  # this file and every base it extends

    def loc(self, *path: Any) -> Loc | None:
        """The location of `path`, or of its nearest located parent."""
        p = tuple(path)
        while p:
            if p in self.locs:
                return self.locs[p]
            p = p[:-1]
        return None


def _walk(node: yaml.Node, file: str, path: Path_, locs: dict, diags: Diagnostics) -> Any:
    locs[path] = _mark(node, file)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        pairs = _rejoin_flow(node, file, diags) if node.flow_style else node.value
        for knode, vnode in pairs:
            key = str(_scalar(knode, file))
            m = REPEAT.match(key)
            if m and not isinstance(vnode, yaml.SequenceNode):
                key = m["name"]
            if key in out:
                diags.add(_mark(knode, file), f"duplicate key {key!r}",
                          "remove one of the two entries")
                continue
            value = _walk(vnode, file, path + (key,), locs, diags)
            locs[path + (key, "$key")] = _mark(knode, file)
            if m and isinstance(value, dict):
                count = m["count"]
                value = {"layers": int(count) if count.isdigit() else count, **value}
                locs[path + (key, "layers")] = _mark(knode, file)
            elif m and value is None:
                count = m["count"]
                value = {"layers": int(count) if count.isdigit() else count}
                locs[path + (key, "layers")] = _mark(knode, file)
            out[key] = value
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(v, file, path + (i,), locs, diags) for i, v in enumerate(node.value)]
    return _scalar(node, file)


def _rejoin_flow(node: yaml.MappingNode, file: str, diags: Diagnostics) -> list:
    """The pairs of a flow mapping, with a call form that YAML split at a comma put back together.

    `{attention: windowed(7, shift=true)}` reads as `attention: "windowed(7"` and a key
    `shift=true)` without a value: say so, once, at the value, instead of two baffling errors.
    """
    pairs, out, i = node.value, [], 0
    while i < len(pairs):
        knode, vnode = pairs[i]
        i += 1
        plain = isinstance(knode, yaml.ScalarNode) and isinstance(vnode, yaml.ScalarNode) and vnode.style is None
        text = vnode.value if plain else ""
        if text.count("(") > text.count(")"):
            parts, j = [text], i
            while j < len(pairs) and _fragment(pairs[j]) and "".join(parts).count("(") > "".join(parts).count(")"):
                parts.append(pairs[j][0].value)
                j += 1
            if j > i:
                whole = ", ".join(parts)
                diags.add(_mark(vnode, file), f"YAML split `{knode.value}: {whole}` at the comma (inside "
                          "`{...}` a comma ends an entry)", f'quote the value: `{knode.value}: "{whole}"`, '
                          "or write this mapping in block style (one `key: value` per line)")
                vnode = yaml.ScalarNode("tag:yaml.org,2002:str", whole, vnode.start_mark, vnode.end_mark)
                i = j
        out.append((knode, vnode))
    return out


def _fragment(pair: tuple) -> bool:
    """A key without a value, such as `shift=true)` left over from a split call form."""
    knode, vnode = pair
    return (isinstance(knode, yaml.ScalarNode) and knode.style is None and isinstance(vnode, yaml.ScalarNode)
            and vnode.value == "" and vnode.tag.endswith(":null"))


_SAFE = yaml.SafeLoader("")
_INT_TAG = "tag:yaml.org,2002:int"


def _scalar(node: yaml.Node, file: str = "<spec>") -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _INT_TAG and len(node.value) > 100:  # Python refuses over 4,300 digits, slowly
            raise SpecError.at(_mark(node, file), f"integer of {len(node.value):,} digits is too large "
                               f"(graphspec allows integers below 2**{MAX_BITS})", "write a smaller number")
        try:
            v = _SAFE.construct_object(node, deep=True)
        except Exception as e:  # noqa: BLE001 - 2001-02-30, `!!bool maybe`, an empty `!!int`: the user's value
            problem = getattr(e, "problem", None) or (f"not a {node.tag.rsplit(':', 1)[-1]}"
                                                       if isinstance(e, KeyError | IndexError) else e)
            raise SpecError.at(_mark(node, file), f"cannot read this value: {problem}",
                               "write a plain number, string or boolean") from None
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > MAX_BITS:
            raise SpecError.at(_mark(node, file), f"integer {node.value[:30]}... is too large (graphspec "
                               f"allows integers below 2**{MAX_BITS})", "write a smaller number")
        why = bad_text(v) if isinstance(v, str) else None
        if why:
            raise SpecError.at(_mark(node, file), f"this text holds {why}",
                               "remove it (a \\u escape must name a whole character)")
        return v
    raise SpecError.at(_mark(node, file), "expected a plain value here, not a list or mapping",
                       "a mapping key must be a name")


def parse_vars(value: Any, path: Path_, locs: dict, diags: Diagnostics) -> dict[str, Any]:
    """`vars:` as a mapping or the compact string `d_model=512, h=8, d_ff=4*d_model`."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        base = locs.get(path)
        out: dict[str, Any] = {}
        pos = 0
        for m in VAR_ITEM.finditer(value):
            if m.start() != pos:
                break
            out[m["name"]] = m["value"]
            if base:
                locs[path + (m["name"],)] = Loc(base.file, base.line, base.col + m.start("value"))
            pos = m.end()
        if pos == len(value.rstrip()) or pos >= len(value):
            return out
        diags.add(locs.get(path), f"cannot read `vars: {value}`",
                  "write `vars: name=value, name2=value2` or a mapping")
        return out
    diags.add(locs.get(path), f"`vars` must be a mapping or `name=value, ...`, not {type(value).__name__}")
    return {}


def read_file(path: Path, diags: Diagnostics, locs: dict, at: Loc | None = None) -> dict[str, Any]:
    """The tree of one spec file; `at` locates errors in opening it (the `extends:` naming it)."""
    file = _display(path)
    text = read_spec_file(path, at)
    try:
        node = compose(text, file)
    except yaml.reader.ReaderError as e:  # a control character
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise SpecError.at(Loc(file, line, col), f"invalid YAML: the character #x{e.character if isinstance(e.character, int) else ord(e.character):04x} is not "
                           "allowed", "remove it (or write it as an escape inside double quotes)") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = Loc(file, mark.line + 1, mark.column + 1) if mark else Loc(file, 1, 1)
        raise SpecError.at(loc, f"invalid YAML: {getattr(e, 'problem', None) or e}",
                           "check indentation, colons and quotes at this line") from None
    except SpecError:
        raise
    except Exception as e:  # noqa: BLE001 - still the user's file
        raise SpecError.at(Loc(file, 1, 1), f"cannot parse YAML: {e}") from None
    if node is None:
        raise SpecError.at(Loc(file, 1, 1), "the spec is empty", "see README.md, 'Spec DSL'")
    if not isinstance(node, yaml.MappingNode):
        raise SpecError.at(_mark(node, file), "a spec must be a mapping of sections",
                           "start with `name: ...`, `vars: ...`, `encoder×N: {...}`")
    tree = _walk(node, file, (), locs, diags)
    tree["vars"] = parse_vars(tree.get("vars"), ("vars",), locs, diags)
    return tree


def _display(path: Path) -> str:
    return display(path)


def merge(base: dict, child: dict) -> dict:
    """Deep merge: mappings merge key by key, anything else in `child` replaces `base`."""
    out = dict(base)
    for k, v in child.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load_raw(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RawSpec:
    """Read a spec with its `extends` chain and apply `--set key=value` overrides."""
    diags = Diagnostics()
    locs: dict[Path_, Loc] = {}
    files: list[str] = []
    tree = _load_chain(Path(path), diags, locs, files, [])
    diags.raise_if_any()
    raw = RawSpec(tree, locs, _display(Path(path)), files)
    apply_overrides(raw, overrides)
    return raw


def _load_chain(path: Path, diags: Diagnostics, locs: dict, files: list, stack: list[Path],
                at: Loc | None = None) -> dict:
    real = path.resolve()
    if real in stack:
        chain = " -> ".join(_display(p) for p in [*stack, real])
        raise SpecError.at(locs.get(("extends",)), f"cycle in `extends`: {chain}",
                           "remove the `extends` that points back to a spec already in the chain")
    own_locs: dict[Path_, Loc] = {}
    tree = read_file(path, diags, own_locs, at)
    files.append(_display(path))
    base_name = tree.pop("extends", None)
    if base_name is not None:
        if not isinstance(base_name, str):
            raise SpecError.at(own_locs.get(("extends",)), "`extends` must name a spec file",
                               "write `extends: swin_t.yaml`")
        base_path = sibling(path, base_name, own_locs.get(("extends",)), "extends")
        if base_path.resolve() in (*stack, real):  # located at the `extends` that closes the cycle
            chain = " -> ".join(_display(p) for p in [*stack, real, base_path.resolve()])
            raise SpecError.at(own_locs.get(("extends",)), f"cycle in `extends`: {chain}",
                               "remove the `extends` that points back to a spec already in the chain")
        locs_base: dict[Path_, Loc] = {}
        base = _load_chain(base_path, diags, locs_base, files, [*stack, real], own_locs.get(("extends",)))
        base.pop("expect", None)  # a variant's figures are its own: never inherited
        locs.update(locs_base)
        tree = merge(base, tree)
    locs.update(own_locs)
    return tree


def apply_overrides(raw: RawSpec, overrides: list[str] | tuple[str, ...]) -> None:
    """`--set img_size=384`, `--set M=12`, `--set encoder.attention=global`, `--set head=none`."""
    diags = Diagnostics()
    for item in overrides:
        why = bad_text(item)
        # a line break or tab in the value would split the location from its message: escaped too
        plain = len(item) <= 60 and not why and item.isprintable()
        shown = item if plain else ascii(item[:60])[1:-1] + ("..." if len(item) > 60 else "")
        loc = Loc(f"--set {shown}", 1, 1)
        if why or len(item) > MAX_BYTES:
            diags.add(loc, f"override holds {why}" if why else f"override is {len(item):,} characters long "
                      f"(at most {MAX_BYTES:,})", "write --set key=value with a short, plain value")
            continue
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            diags.add(loc, f"override {item!r} is not of the form key=value", "write --set M=12")
            continue
        try:
            value = _set_value(text, loc.file, diags)
        except SpecError as e:  # the same limits as a spec file: aliases, nesting, tags
            diags.extend(e)
            continue
        if key in raw.tree.get("vars", {}):
            raw.tree["vars"][key] = value
            _relocate(raw, ("vars", key), loc)
            continue
        parts = key.split(".")
        if len(parts) == 2 and isinstance(raw.tree.get(parts[0]), str):  # `--set embed.cls_token=false`
            try:
                call = _set_call_argument(raw.tree[parts[0]], parts[1], value)
            except ValueError:
                diags.add(loc, f"the value of {key} is not an expression graphspec can read",
                          f"write e.g. --set {key}=false or a short arithmetic expression")
                continue
            if call is not None:
                raw.tree[parts[0]] = call
                raw.locs[(parts[0],)] = loc  # an error in the call is most likely the new argument
                continue
        node = raw.tree
        ok = True
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node or not isinstance(node[p], dict):
                ok = False
                break
            node = node[p]
        if not ok or (len(parts) == 1 and parts[0] not in _TOP_LEVEL_SETTABLE):
            import difflib

            known = list(raw.tree.get("vars", {})) + [k for k in raw.tree if k != "vars"]
            close = [c for c in difflib.get_close_matches(parts[0], known, n=2) if c != parts[0]][:1]
            fix = f"did you mean {close[0]!r}?" if close else (
                "set a variable from `vars:` (" + ", ".join(raw.tree.get("vars", {})) + ") or a section "
                "field such as encoder.attention")
            diags.add(loc, f"override {key!r} names no variable or spec field", fix)
            continue
        node[parts[-1]] = value
        _relocate(raw, tuple(parts), loc)
    diags.raise_if_any()


def _relocate(raw: RawSpec, path: Path_, loc: Loc) -> None:
    """`path` and everything under it now come from `loc` (the spec file's marks are stale)."""
    for p in [p for p in raw.locs if p[:len(path)] == path]:
        del raw.locs[p]
    raw.locs[path] = loc


def _set_value(text: str, file: str, diags: Diagnostics) -> Any:
    """The YAML value of `--set key=TEXT`, read like a spec file's values; TEXT itself if not YAML."""
    if not text.strip():
        return None
    try:
        node = compose(text, file)
    except yaml.YAMLError:
        return text
    return None if node is None else _walk(node, file, (), {}, diags)


def _set_call_argument(text: str, name: str, value: Any) -> str | None:
    """`patches(16, dim=D, cls_token=true)` with argument `name` set to `value`, or None when
    `text` is not a call form (`--set embed.cls_token=false`, `--set head.classes=10`);
    ValueError when `value` cannot be written into the call."""
    import ast

    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if isinstance(tree.body, ast.Name):  # a bare construct name: `pooler`, `sinusoidal`
        tree.body = ast.Call(func=tree.body, args=[], keywords=[])
    if not (isinstance(tree.body, ast.Call) and isinstance(tree.body.func, ast.Name)):
        return None
    expr = {True: "true", False: "false", None: "none"}.get(value, value) if isinstance(value, bool | None) else value
    try:  # the value is checked when the call is evaluated; here it only has to parse
        new = ast.parse(str(expr), mode="eval").body
        kws = [k for k in tree.body.keywords if k.arg != name]
        tree.body.keywords = [*kws, ast.keyword(arg=name, value=new)]
        return ast.unparse(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # `---...1` nests past the parser
        raise ValueError(name) from None


_TOP_LEVEL_SETTABLE = {"input", "embed", "encoder", "decoder", "head", "name", "dtype", "names"}
