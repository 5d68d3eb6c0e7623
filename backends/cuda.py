"""CUDA builds: the architecture, kernels compiled ahead of time, and loading them without nvcc.

    graphspec build swin_t --target cuda:sm_90 --dtype bf16     # or --target cuda --arch sm_90

The arch is `--arch`/`cuda:ARCH`, else GRAPHSPEC_CUDA_ARCH, else the local GPU's (nvidia-smi),
else sm_90 (H100/H200). NOTE: [CUDA kernels ahead of time] TVM 0.27's cuda codegen embeds CUDA
*source* in the library (the module's format is "cuda") and compiles it when the library is
loaded, through the Python callback `tvm_callback_cuda_compile` (NVRTC from the cuda-bindings
package, or nvcc). A GPU machine with the TVM runtime only has neither, so a graphspec cuda
build compiles every kernel source with nvcc at build time, for the build's arch, into
`model.cubin` (SASS) and `model.ptx`, and `use_kernels` registers a callback that hands TVM
those bytes for the source they were compiled from (looked up by sha256), falling back to
TVM's own compiler for any other source.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphspec.backends.tvm import ToolchainError, check_cuda_toolchain, cuda_source_modules

# sm_XX codes nvcc 13 compiles for (`nvcc --list-gpu-code`; it dropped sm_5x-sm_70), and the
# arch-specific "a" variants of Hopper and Blackwell
CUDA_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_87", "sm_88", "sm_89", "sm_90", "sm_90a", "sm_100",
              "sm_100a", "sm_103", "sm_110", "sm_120", "sm_121")
DEFAULT_CUDA_ARCH = "sm_90"  # H100 / H200, when neither the user nor a local GPU says otherwise


def local_cuda_arch() -> str | None:
    """The arch of this machine's first NVIDIA GPU (nvidia-smi's compute_cap), else None."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"sm_{out[0].replace('.', '')}" if out and re.fullmatch(r"\d+\.\d+", out[0]) else None


def cuda_arch(arch: str | None = None) -> str:
    """The arch a cuda build targets: `arch`, else GRAPHSPEC_CUDA_ARCH, else the local GPU's,
    else DEFAULT_CUDA_ARCH. ToolchainError for an arch nvcc does not know."""
    arch = arch or os.environ.get("GRAPHSPEC_CUDA_ARCH") or local_cuda_arch() or DEFAULT_CUDA_ARCH
    check_arch(arch)
    return arch


def check_arch(arch: str) -> str:
    if arch not in CUDA_ARCHS:
        near = [a for a in CUDA_ARCHS if a[:4] == arch[:4]] or list(CUDA_ARCHS)
        raise ToolchainError(f"unknown CUDA architecture {arch!r}; use one of {', '.join(near)} "
                             "(H100/H200: sm_90, A100: sm_80, L4/RTX 40xx: sm_89)")
    return arch


def _gencode(arch: str, code: str) -> list[str]:
    num = arch[3:]
    return ["-gencode", f"arch=compute_{num},code={code}_{num}"]


def compile_kernels(executable: Any, arch: str) -> dict[str, dict[str, bytes]]:
    """{sha256 of a CUDA source: {"ptx": its PTX for `arch`, "cubin": that PTX assembled to SASS}}
    for every cuda module of a built executable: nvcc with TVM's own flags makes the PTX, ptxas
    (with TVM's ptxas options) the cubin, so the front end runs once per source."""
    import tempfile

    import tvm
    from tvm.support import nvcc

    ptxas = Path(check_cuda_toolchain()).with_name("ptxas")
    flags = [f for f in nvcc._ptxas_option_flags() if f != "-v"]
    out: dict[str, dict[str, bytes]] = {}
    for src in cuda_source_modules(executable):
        key = source_key(src)
        try:
            with tvm.target.Target({"kind": "cuda", "arch": arch}):  # nvcc.py reads the current target
                ptx = bytes(nvcc.compile_cuda(src, "ptx", _gencode(arch, "compute"), compiler="nvcc"))
            with tempfile.TemporaryDirectory(prefix="graphspec-ptxas-") as d:
                (Path(d) / "k.ptx").write_bytes(ptx)
                r = subprocess.run([str(ptxas), f"-arch={arch}", "-O3", *flags, str(Path(d) / "k.ptx"),
                                    "-o", str(Path(d) / "k.cubin")], capture_output=True, text=True)
                if r.returncode:
                    raise RuntimeError(r.stderr.strip() or "ptxas failed")
                out[key] = {"ptx": ptx, "cubin": (Path(d) / "k.cubin").read_bytes()}
        except (RuntimeError, OSError) as e:  # nvcc's / ptxas' error text
            raise ToolchainError(f"nvcc could not compile the CUDA kernels for {arch}: "
                                 f"{str(e).strip().splitlines()[-1][:300]}") from None
    return out


def source_key(src: str) -> str:
    return hashlib.sha256(src.encode()).hexdigest()


def ptx_target(ptx: bytes) -> str | None:
    """The `.target` of a PTX file (sm_90), or None."""
    m = re.search(rb"^\s*\.target\s+(\w+)", ptx, re.M)
    return m.group(1).decode() if m else None


_KERNELS: dict[str, bytes] = {}
_REGISTERED: list[bool] = []


def use_kernels(kernels: Mapping[str, bytes]) -> None:
    """Make TVM load these precompiled kernels (sha256 of source -> cubin or PTX bytes) instead of
    compiling CUDA source when a cuda library is loaded ([CUDA kernels ahead of time])."""
    import tvm_ffi

    _KERNELS.update(kernels)
    if _REGISTERED:
        return
    previous = tvm_ffi.get_global_func("tvm_callback_cuda_compile", allow_missing=True)

    def compile_or_lookup(code: str, *rest):
        found = _KERNELS.get(source_key(str(code)))
        if found is not None:
            return found
        if previous is None:
            raise RuntimeError("this CUDA source was not compiled ahead of time and there is no CUDA "
                               "compiler here (tvm_callback_cuda_compile); rebuild the library")
        return previous(code, *rest)

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", compile_or_lookup, override=True)
    _REGISTERED.append(True)
