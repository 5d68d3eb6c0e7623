"""The half of the GPU check that runs here: build, pack, check the size (see README.md).

    python benchmarks/gpu/prepare.py     # Swin-T, ViT-B/16; fp32, fp16, bf16 (+ bf16-cc); batch 64 and 1 -> build/gpu_pack
    python benchmarks/gpu/prepare.py --models swin_t --dtypes bf16 --set C=48 --out DIR   # smaller

For each model, dtype and batch (64, 1) it builds `--target cuda:ARCH --batch B` (static: DLight
schedules fp16 matmuls on tensor cores only with static shapes, and its tensor-core rule fails on
a symbolic batch), writes the generated PyTorch module (graphspec codegen, the device's
reference) and the parameter names and shapes in the order graphspec.backends.weights draws
them (the weights are generated on the device from the seed: none are carried), and packs

    build/gpu_pack/
        index.json                      # builds, MACs per image, arch, versions, sizes
        tvm_runtime/tvm/                # the apache-tvm package without libtvm_compiler.so
        apache_tvm_ffi-...-cp312-...whl # installed there with pip --no-index
        libcudart.so.13                 # what libtvm_runtime_cuda.so links, if the device lacks it
        <model>-<dtype>-b<batch>/model.so.xz, model.cubin, model.ptx.xz, model.py, build.json

and refuses (exit 2) a pack of 64 MiB or more. `bf16` builds put their large matmuls on tensor
cores (graphspec's bf16 wmma schedule, backends/tensor_cores.py); `bf16-cc` is the same build
with `--no-tensor-cores` (DLight's CUDA-core loops), measured beside it as "tvm (CUDA cores)". The run tool carries the folder to the device.
"""

from __future__ import annotations

import argparse
import json
import lzma
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

LIMIT = 64 << 20
ROOT = Path(__file__).resolve().parents[2]
FFI_WHEEL = "apache-tvm-ffi==0.1.14.post0"
# what the device's TVM runtime needs of the apache-tvm package: everything but the compiler
# library (259 MB) and the sources, headers and bundled CUTLASS the runtime never reads
TVM_SKIP = ("lib/libtvm_compiler.so", "3rdparty", "include", "src", "lib64", "web")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


VARIANTS = {"bf16-cc": ("bf16", ["--no-tensor-cores"], "tvm (CUDA cores)")}  # name: (dtype, flags, row label)


def build_one(spec: str, dtype: str, arch: str, sets: list[str], work: Path, force: bool,
              batch: str = "dynamic") -> Path:
    """`graphspec build SPEC --target cuda:ARCH --dtype D --batch B` into work/<spec>-<dtype>-b<B>;
    SystemExit with the build's message if it fails."""
    out = work / f"{spec}-{dtype}-b{batch}"
    dtype, flags, _ = VARIANTS.get(dtype, (dtype, [], "tvm"))
    cmd = [sys.executable, "-c", "from graphspec.cli.main import main; main()", "build", spec,
           "--target", f"cuda:{arch}", "--dtype", dtype, "--batch", str(batch), "-o", str(out), *flags]
    for s in sets:
        cmd += ["--set", s]
    if force:
        cmd.append("--force")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"error: building {spec} {dtype} batch {batch} failed: "
                         f"{(r.stderr.strip().splitlines() or ['?'])[-1][:600]}")
    log(f"built {spec} {dtype} batch {batch} for {arch} in {time.perf_counter() - t0:.1f}s: {r.stdout.strip()}")
    return out


def model_files(spec: str, dtype: str, sets: list[str], build: Path, dest: Path) -> dict:
    """The generated reference module, the weight recipe, and the library (compressed)."""
    from graphspec.codegen import emit

    import graphspec
    from graphspec.analysis import tensors
    from graphspec.passes import run_pipeline

    dtype, _, label = VARIANTS.get(dtype, (dtype, [], "tvm"))
    m1 = graphspec.load(spec, [*sets, "batch=1"])
    graph, _ = run_pipeline(m1.graph, "default", echo=lambda s: None)
    gen = emit(graph, m1.spec)
    manifest = json.loads((build / "manifest.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.py").write_text(gen.source)
    for name in ("model.so", "model.ptx"):  # an llvm build (the dry run's) has no ptx/cubin
        if (build / name).exists():
            (dest / f"{name}.xz").write_bytes(lzma.compress((build / name).read_bytes(), preset=6))
    if (build / "model.cubin").exists():
        shutil.copyfile(build / "model.cubin", dest / "model.cubin")
    info = {"spec": spec, "overrides": sets, "dtype": dtype, "label": label, "arch": manifest["arch"],
            "batch": manifest["batch"],
            "class": gen.class_name, "macs_per_image": int(m1.macs()), "params": int(m1.params()),
            "seed": manifest["weights"]["seed"],
            "weights": [[n, [int(d) for d in s]] for n, s in tensors(graph).items()],
            "inputs": [{"name": i["name"], "shape": i["shape"][1:]} for i in manifest["inputs"]],
            "tvm": {k: manifest["tvm"].get(k) for k in ("inputs", "params", "dtype", "kernel_sources",
                                                        "cuda_kernels", "ptx_targets", "attention",
                                                        "bf16_tensor_core_matmuls")},
            "timings_s": manifest["timings_s"], "versions": manifest["versions"]}
    ptx = (build / "model.ptx").read_text() if (build / "model.ptx").exists() else ""
    info["tensor_core_instructions"] = len(re.findall(r"\b(?:wmma|mma\.sync|wgmma)\.", ptx))
    (dest / "build.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def pack_tvm(dest: Path) -> Path:
    """The apache-tvm package as the runtime needs it (16 MiB): dest/tvm_runtime/tvm."""
    import tvm

    pkg = Path(tvm.__file__).parent
    skip = {pkg / s for s in TVM_SKIP}

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if Path(folder, n) in skip or n == "__pycache__"}

    shutil.copytree(pkg, dest / "tvm_runtime" / "tvm", ignore=ignore)
    return dest / "tvm_runtime"


def ffi_wheel(dest: Path, cache: Path) -> Path:
    """The cp312 apache-tvm-ffi wheel (the device runs Python 3.12), downloaded once into `cache`."""
    have = sorted(cache.glob("apache_tvm_ffi-0.1.14.post0-cp312-*.whl"))
    if not have:
        cache.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--python-version", "3.12",
                            "--only-binary=:all:", "--no-deps", FFI_WHEEL, "-d", str(cache)],
                           capture_output=True, text=True)
        have = sorted(cache.glob("apache_tvm_ffi-0.1.14.post0-cp312-*.whl"))
        if r.returncode or not have:
            raise SystemExit(f"error: pip could not download {FFI_WHEEL} for cp312: {r.stderr[-500:]}\n"
                             f"  fix: put the wheel into {cache}")
    shutil.copyfile(have[0], dest / have[0].name)
    return dest / have[0].name


def cudart(dest: Path) -> str | None:
    """Carry the CUDA 13 runtime libtvm_runtime_cuda.so links (where ldd finds it here), for a
    device whose torch ships another one."""
    import tvm

    lib = Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"
    try:
        found = re.search(r"libcudart\.so\.13 => (\S+)", subprocess.run(["ldd", str(lib)], capture_output=True,
                                                                       text=True).stdout)
    except OSError:
        found = None
    if not found or not Path(found.group(1)).exists():
        return None
    shutil.copyfile(Path(found.group(1)).resolve(), dest / "libcudart.so.13")
    return found.group(1)


def size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="swin_t,vit_b16")
    ap.add_argument("--dtypes", default="fp32,fp16,bf16,bf16-cc", help="bf16-cc: bf16 with --no-tensor-cores")
    ap.add_argument("--batches", default="64,1", help="one library per batch ('dynamic': one for all; "
                    "DLight's fp16 tensor-core matmuls need a static batch in TVM 0.27)")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(ROOT / "build" / "gpu_pack"))
    ap.add_argument("--work", default=str(ROOT / "build" / "gpu_builds"), help="where the builds live (cached)")
    ap.add_argument("--wheels", default=str(ROOT / "build" / "wheels"), help="cache of the cp312 tvm-ffi wheel")
    ap.add_argument("--force", action="store_true", help="rebuild even when the builds are cached")
    a = ap.parse_args(argv)
    out, work = Path(a.out), Path(a.work)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    index = {"arch": a.arch, "builds": {}, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    index["failed"] = {}
    for spec in a.models.split(","):
        for dtype in a.dtypes.split(","):
            for batch in a.batches.split(","):
                key = f"{spec}-{dtype}-b{batch}"
                try:
                    b = build_one(spec, dtype, a.arch, a.sets, work, a.force, batch)
                except SystemExit as e:  # one failed build leaves the others measurable
                    log(str(e))
                    index["failed"][key] = str(e)
                    continue
                info = model_files(spec, dtype, a.sets, b, out / key)
                index["builds"][key] = {"spec": spec, "dtype": info["dtype"], "label": info["label"],
                                        "batch": info["batch"],
                                        "compile_s": info["timings_s"].get("compile"),
                                        "kernels": info["tvm"]["cuda_kernels"],
                                        "tensor_core_instructions": info["tensor_core_instructions"],
                                        "bf16_tensor_core_matmuls": info["tvm"]["bf16_tensor_core_matmuls"]}
    pack_tvm(out)
    index["ffi_wheel"] = ffi_wheel(out, Path(a.wheels)).name
    index["cudart"] = cudart(out)
    index["bytes"] = size(out)
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total = size(out)
    log(f"packed {out}: {total / 2**20:.1f} MiB in {time.perf_counter() - t0:.0f}s")
    if total >= LIMIT:
        print(f"error: {out} is {total / 2**20:.1f} MiB, over the 64 MiB the run tool carries", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
