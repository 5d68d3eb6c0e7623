"""Reading spec text safely: bounded files, confined paths, YAML within limits.

Every way a spec's text gets in (the spec file, `extends:`, `backbone.spec`, `--set`) goes
through here, so each meets the same limits:

    read_spec_file(path)        a regular file of at most 1 MiB, valid UTF-8 (no /dev/zero, no FIFO)
    sibling(spec, name, loc)    `extends: base.yaml` inside the spec's folder (not /etc/passwd)
    compose(text, file)         YAML nested at most 64 deep, 100,000 values after aliases,
                                only the standard tags (str, int, float, bool, null, seq, map)
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from pathlib import Path

import yaml

from graphspec.spec.errors import Loc, SpecError

MAX_BYTES = 1 << 20  # a spec file (bundled ones are under 4 KiB)
MAX_NODES = 100_000  # after expanding YAML aliases ("billion laughs")
MAX_DEPTH = 64
MAX_NAME = 255  # characters of an `extends` / `backbone.spec` file name
SAFE_TAGS = {"!"} | {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


def display(path: Path) -> str:
    """`path` as messages print it: relative to the working directory, undecodable bytes escaped."""
    try:
        text = str(path.resolve().relative_to(Path.cwd()))
    except (ValueError, OSError, RuntimeError):
        text = str(path)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def mark(node: yaml.Node | yaml.Event, file: str) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


def read_spec_file(path: Path, at: Loc | None = None) -> str:
    """The text of a spec file; `at` locates errors (the `extends:` that names it), if any."""
    file = display(path)
    file = file if len(file) <= 120 else file[:120] + "..."
    fix = "name a spec file (YAML); bundled specs are listed by `graphspec specs`"
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero, a FIFO, a directory
            raise SpecError.at(at, f"{file} is not a regular file", fix)
        if st.st_size > MAX_BYTES:
            raise SpecError.at(at, f"{file} is {st.st_size:,} bytes; a spec may have at most {MAX_BYTES:,}",
                               "specs are small YAML files; check that this is the right file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # replaced since the stat
                raise SpecError.at(at, f"{file} is not a regular file", fix)
            data = f.read(MAX_BYTES + 1)
    except SpecError:
        raise
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise SpecError.at(at, f"cannot read spec {file}: {getattr(e, 'strerror', None) or e}",
                           _missing_fix(path) if at is None else fix) from None
    if len(data) > MAX_BYTES:
        raise SpecError.at(at, f"{file} is larger than {MAX_BYTES:,} bytes", "specs are small YAML files")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError.at(Loc(file, line, col), f"the file is not valid UTF-8 (byte 0x{data[e.start]:02x})",
                           "save the spec as UTF-8") from None


def _missing_fix(path: Path) -> str:
    """'did you mean' among the bundled spec names (`flops swin_tt`) and the files next to `path`."""
    import graphspec

    names = {p.stem: p.stem for p in Path(graphspec.SPECS_DIR).glob("*.yaml")} if path.parent == Path(".") else {}
    try:
        names.update({p.name: str(p) for p in path.parent.glob("*.yaml")} if path.parent.is_dir() else {})
    except OSError:
        pass
    key = path.name if path.name in names or path.suffix else path.stem
    close = difflib.get_close_matches(key, sorted(names), n=1) or difflib.get_close_matches(
        path.stem, sorted(names), n=1)
    hint = f"did you mean {names[close[0]]!r}? " if close else "check the path; "
    return hint + "bundled specs are listed by `graphspec specs`"


def sibling(spec: Path, name: str, loc: Loc | None, what: str) -> Path:
    """The file `name` (from `extends:` or `backbone.spec`) inside the folder of `spec`."""
    example = "extends: swin_t.yaml" if what == "extends" else "spec: resnet50.yaml"
    fix = f"name a spec in the same folder as {display(spec)}, e.g. `{example}` (copy the base spec there)"
    shown = name if len(name) <= 60 else name[:60] + "..."
    if "\0" in name or not name.strip():
        raise SpecError.at(loc, f"`{what}` must name a spec file, got {shown!r}", fix)
    if len(name) > MAX_NAME:
        raise SpecError.at(loc, f"`{what}` names a file of {len(name):,} characters (at most {MAX_NAME})", fix)
    folder = spec.parent
    try:
        inside = not Path(name).is_absolute() and ".." not in Path(name).parts and (
            (folder / name).resolve().is_relative_to(folder.resolve()))
        exists = inside and (folder / name).exists()
    except (OSError, ValueError, RuntimeError):  # a symlink loop, an over-long path
        inside, exists = True, False
    if not inside:
        raise SpecError.at(loc, f"`{what}: {shown}` is outside the spec's folder ({display(folder) or '.'})", fix)
    if not exists:
        names = sorted(p.name for p in folder.glob("*.yaml")) if folder.is_dir() else []
        close = difflib.get_close_matches(name, names, n=1)
        raise SpecError.at(loc, f"`{what}: {shown}`: no such file next to {display(spec)}",
                           f"did you mean {close[0]!r}?" if close else fix)
    return folder / name


def compose(text: str, file: str) -> yaml.Node | None:
    """The YAML node tree of `text` within the limits; `yaml.YAMLError` for invalid YAML."""
    _scan(text, file)
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None:
        _check_size(node, file)
    return node


_BRACKETS = re.compile(r"""[\[\]{}]|"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|(?:^|(?<=\s))#[^\n]*""", re.M)


def _check_brackets(text: str, file: str) -> None:
    """Flow brackets nested deeper than MAX_DEPTH, found in the text: PyYAML's scanner would
    take about a second over `[[[...` before its first event (strings and comments skipped)."""
    depth = 0
    for m in _BRACKETS.finditer(text):
        if m[0] in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, m.start()) + 1
                raise SpecError.at(Loc(file, line, m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1),
                                   f"the spec nests deeper than {MAX_DEPTH} levels", "flatten the structure")
        elif m[0] in "]}":
            depth = max(0, depth - 1)


def _scan(text: str, file: str) -> None:
    """Depth, size and tags from the YAML events, before the (recursive) composer sees them."""
    _check_brackets(text, file)
    depth, count = 0, 0
    try:
        for ev in yaml.parse(text, Loader=yaml.SafeLoader):
            count += 1
            if count > 2 * MAX_NODES:
                raise SpecError.at(mark(ev, file), f"the spec holds more than {MAX_NODES:,} values",
                                   "write a smaller spec; specs are small")
            tag = getattr(ev, "tag", None)
            if tag is not None and tag not in SAFE_TAGS:
                short = tag.replace("tag:yaml.org,2002:", "!!")
                raise SpecError.at(mark(ev, file), f"YAML tag {short[:60]} is not allowed in a spec",
                                   "remove the tag: write a plain number, string, list or mapping")
            if isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError.at(mark(ev, file), f"the spec nests deeper than {MAX_DEPTH} levels",
                                       "flatten the structure")
            elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # the composer reports it, with its mark


def _check_size(root: yaml.Node, file: str) -> None:
    """Refuse specs whose YAML aliases expand enormously or that nest absurdly deep."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecError.at(mark(node, file), f"the spec nests deeper than {MAX_DEPTH} levels",
                               "flatten the structure")
        kids = [c for kv in node.value for c in (kv if isinstance(kv, tuple) else (kv,))] if isinstance(
            node, yaml.MappingNode | yaml.SequenceNode) else []
        if done:
            size[id(node)] = 1 + sum(size[id(c)] for c in kids)
            if size[id(node)] > MAX_NODES:
                raise SpecError.at(mark(node, file), f"the spec expands to more than {MAX_NODES} values "
                                   "(YAML aliases?)", "write the values out; specs are small")
        elif id(node) not in size:
            stack.append((node, depth, True))
            stack.extend((c, depth + 1, False) for c in kids if id(c) not in size)


_BAD_CHARS = re.compile("[\ud800-\udfff\0]")


def bad_text(s: str) -> str | None:
    """Why the string `s` cannot be used (a lone surrogate, a NUL), or None."""
    m = _BAD_CHARS.search(s)
    if m is None:
        return None
    return "a NUL character" if m[0] == "\0" else f"a lone surrogate (\\u{ord(m[0]):04x}), which is not text"
