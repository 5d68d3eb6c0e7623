"""Reading a build directory without trusting it: the manifest's shape, artifact paths, sha256.

NOTE: [Build directories are code] A torch build runs its `model.py` and a TVM build loads its
`model.so` into the process: run only build directories you trust. What graphspec checks
before it loads anything is that the directory is what graphspec wrote: `manifest.json` has the
expected fields and types; every artifact it names is a regular file inside the directory (no
absolute path, no `..`, no symlink out of it, no FIFO or device) of at most MAX_ARTIFACT bytes;
and its bytes have the sha256 recorded at build time. Each artifact is read once, hashed and
loaded from those same bytes (a TVM library from a private copy of them), so a file truncated
or swapped after the build is an error and never a SIGBUS, and nothing changes between the
check and the load. Weights are safetensors (no pickle) and load strictly.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = 2  # 2: safetensors weights and a sha256 per artifact
MAX_MANIFEST = 16 << 20
MAX_ARTIFACT = 64 << 30
TARGETS = ("torch", "onnx", "llvm", "cuda")
DTYPES = ("fp32", "fp16", "bf16")  # `dtype`: weights and activations (backends/targets.py)
REBUILD = "rebuild it with `graphspec build SPEC --target ... -o DIR`"


class ManifestError(Exception):
    """A build directory that is not one, or is damaged (a user error: exit code 2)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_record(path: Path) -> dict:
    data = path.read_bytes()
    return {"sha256": sha256(data), "bytes": len(data)}


def _regular(path: Path, limit: int, what: str, most: int | None = None) -> bytes:
    """The bytes of `path` (the first `most` + 1 of them), refusing FIFOs, devices, directories
    and files over `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise ManifestError(f"{what} {path}: {e.strerror or e}; {REBUILD}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{what} {path} is not a regular file; {REBUILD}")
        if st.st_size > limit:
            raise ManifestError(f"{what} {path} is {st.st_size:,} bytes, over the {limit:,} "
                                f"that graphspec reads; {REBUILD}")
        with os.fdopen(os.dup(fd), "rb") as f:
            n = st.st_size if most is None else max(0, min(st.st_size, most))
            return f.read(n + 1)  # +1: a file that grew shows as a checksum error
    finally:
        os.close(fd)


def read(build_dir: Path) -> dict:
    """The manifest of `build_dir`, checked field by field."""
    path = build_dir / MANIFEST
    if not build_dir.is_dir() or not os.path.lexists(path):
        raise ManifestError(f"{build_dir} is not a graphspec build directory (no {MANIFEST}); "
                            "make one with `graphspec build SPEC --target ... -o DIR`")
    raw = _regular(path, MAX_MANIFEST, "the manifest")
    try:
        m = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path} is not valid JSON ({e}); {REBUILD}") from None
    problems = problems_of(m)
    if problems:
        raise ManifestError(f"{path} is damaged: {'; '.join(problems[:4])}; {REBUILD}")
    return m


def _is(v, t) -> bool:
    return isinstance(v, t) and not (t is int and isinstance(v, bool))


def problems_of(m) -> list[str]:
    """What is wrong with a manifest (empty when it is one that `load` can use)."""
    if not isinstance(m, dict):
        return [f"it holds a JSON {type(m).__name__}, not an object"]
    if m.get("format") != FORMAT:
        return [f"manifest format {m.get('format')!r}, this graphspec reads format {FORMAT} "
                "(safetensors weights, checksummed artifacts)"]
    out = []
    if m.get("target") not in TARGETS:
        out.append(f"target {m.get('target')!r} is not one of {', '.join(TARGETS)}")
    for key, t in (("spec", dict), ("artifacts", dict), ("files", dict), ("inputs", list),
                   ("outputs", list), ("params", int)):
        if not _is(m.get(key), t):
            out.append(f"`{key}` is missing or not a JSON {t.__name__}")
    if out:
        return out
    if not _is(m["spec"].get("name"), str):
        out.append("`spec.name` is missing")
    if not all(_is(k, str) and _is(v, str) for k, v in m["artifacts"].items()):
        out.append("`artifacts` must map roles to file names")
    for name in m["artifacts"].values():
        rec = m["files"].get(name)
        if not (isinstance(rec, dict) and _is(rec.get("sha256"), str) and len(rec["sha256"]) == 64):
            out.append(f"no sha256 recorded for artifact {name!r}")
    for i, x in enumerate(m["inputs"]):
        if not (isinstance(x, dict) and _is(x.get("name"), str) and x.get("dtype") in ("f32", "i64")
                and _is(x.get("shape"), list) and x["shape"]
                and all(_is(d, int) and 0 < d < 1 << 31 for d in x["shape"])):
            out.append(f"inputs[{i}] needs a name, a dtype f32|i64 and a shape of positive ints")
        elif x["dtype"] == "i64" and not (_is(x.get("vocab", 1), int) and x.get("vocab", 1) > 0):
            out.append(f"inputs[{i}].vocab must be a positive integer")
    if not m["inputs"]:
        out.append("`inputs` is empty")
    if not all(_is(o, str) for o in m["outputs"]):
        out.append("`outputs` must be a list of names")
    if m.get("dtype", "fp32") not in DTYPES:  # absent in builds made before --dtype: fp32
        out.append(f"`dtype` must be one of {', '.join(DTYPES)}")
    if not (m.get("arch") is None or (_is(m["arch"], str) and m["target"] == "cuda")):
        out.append("`arch` names the CUDA architecture of a cuda build (else null)")
    b = m.get("batch")
    if not (b == "dynamic" or (_is(b, int) and b > 0)):
        out.append("`batch` must be a positive integer or 'dynamic'")
    need = {"torch": ("model", "weights"), "onnx": ("model",), "llvm": ("library", "weights"),
            "cuda": ("library", "weights")}[m["target"]]
    out += [f"`artifacts.{r}` is missing" for r in need if r not in m["artifacts"]]
    if m["target"] in ("llvm", "cuda"):
        tvm = m.get("tvm")
        if not (isinstance(tvm, dict) and _is(tvm.get("inputs"), list) and _is(tvm.get("params"), list)
                and all(_is(n, str) for n in tvm["inputs"] + tvm["params"])):
            out.append("`tvm.inputs` and `tvm.params` must be lists of names")
        elif sorted(tvm["inputs"]) != sorted(x.get("name") for x in m["inputs"] if isinstance(x, dict)):
            out.append("`tvm.inputs` differ from `inputs`")
    return out


def artifact(build_dir: Path, m: Mapping, role: str) -> bytes:
    """The bytes of artifact `role`, confined to `build_dir` and checked against its sha256."""
    name = m["artifacts"][role]
    root = build_dir.resolve()
    p = build_dir / name
    if Path(name).is_absolute() or ".." in Path(name).parts or not name or \
            not p.resolve().is_relative_to(root) or p.resolve() == root:
        raise ManifestError(f"{build_dir / MANIFEST}: artifact {role} = {name!r} is outside the "
                            f"build directory; graphspec loads only files inside it; {REBUILD}")
    size = m["files"][name].get("bytes")
    # at most the size the build wrote (+1): a larger file swapped in is not read whole
    data = _regular(p, MAX_ARTIFACT, f"artifact {role}", size if _is(size, int) else None)
    want = m["files"][name]["sha256"]
    if sha256(data) != want:
        raise ManifestError(f"{p} is not the file this build wrote: its sha256 differs from the "
                            f"manifest's ({p.stat().st_size:,} bytes"
                            + (f", the build wrote {size:,}" if _is(size, int) else "")
                            + f"; truncated, damaged or replaced); {REBUILD}")
    return data
