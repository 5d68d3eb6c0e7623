"""`graphspec build | run | verify`: build directories, the cache, errors with exit code 2.

Small GPT-2 / ViT variants keep every build to a few seconds.
"""

from __future__ import annotations

import shutil

import cli_builds  # tests/cli_builds.py
import numpy as np
import pytest

GPT, cli, manifest = cli_builds.GPT, cli_builds.cli, cli_builds.manifest
VIT = ["--set", "img_size=32", "--set", "patch=8", "--set", "D=32", "--set", "L=1", "--set", "h=2",
       "--set", "classes=10"]


def leftovers(parent):
    """Temporary build directories that a failed build would leave behind."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_build_onnx_manifest_and_cache(tmp_path):
    out = tmp_path / "gpt-onnx"
    r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT)
    assert r.exit_code == 0, r.output
    assert "built gpt2 for onnx" in r.stdout and "ONNX nodes" in r.stdout
    assert "[export] done" in r.stderr  # progress goes to stderr
    m = manifest(out)
    assert (out / "model.onnx").exists() and m["artifacts"] == {"model": "model.onnx"}
    assert m["target"] == "onnx" and m["spec"]["name"] == "gpt2" and len(m["spec"]["sha256"]) == 64
    assert m["params"] > 0 and m["macs"] > 0 and m["onnx"]["opset"] == 23
    assert {"graphspec", "torch", "tvm", "onnx"} <= set(m["versions"])
    assert {"load", "passes", "export", "save"} <= set(m["timings_s"])
    assert [row["name"] for row in m["passes"]["report"]][:2] == ["fuse_attention", "fuse_qkv"]
    assert m["cache"]["hit"] is False

    again = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT)
    assert again.exit_code == 0 and "cached:" in again.stdout and "nothing rebuilt" in again.stdout
    m2 = manifest(out)
    assert m2["cache"] == {**m2["cache"], "key": m["cache"]["key"], "hit": True, "hits": 1}
    assert m2["created"] == m["created"]

    changed = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--set", "h=4")
    assert changed.exit_code == 0 and "cached:" not in changed.stdout
    assert manifest(out)["cache"]["key"] != m["cache"]["key"]
    assert leftovers(tmp_path) == []


def test_run_random_and_file(tmp_path):
    out = tmp_path / "vit"
    assert cli("build", "vit_b16", "--target", "onnx", "-o", out, *VIT, "--batch", "dynamic").exit_code == 0
    assert manifest(out)["batch"] == "dynamic"
    r = cli("run", out, "--batch", "3")
    assert r.exit_code == 0, r.output
    assert "image [3, 3, 32, 32]" in r.stdout and "head: float32[3, 10]" in r.stdout and "latency" in r.stdout
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = cli("run", out, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "y.npy").shape == (2, 10)
    bad = cli("run", out, "--input", tmp_path / "missing.npy")
    assert bad.exit_code == 2 and "no such file" in bad.stderr
    assert cli("run", tmp_path / "nothing-here").exit_code == 2


def test_verify_prints_errors_and_latency():
    r = cli("verify", "vit_b16", "--targets", "torch,onnx,llvm", *VIT)
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines()[2:]}
    assert set(lines) == {"eager", "torch", "onnx", "llvm"}
    for t in ("torch", "onnx", "llvm"):
        err, rel = (float(v) for v in lines[t].split()[1:3])
        assert err <= 1e-4 and rel <= 1e-4 and lines[t].endswith("ok")
        assert "ms" in lines[t]


def test_bad_target_exit_2_nothing_written(tmp_path):
    out = tmp_path / "x"
    r = cli("build", "gpt2", "--target", "tpu", "-o", out, *GPT)
    assert r.exit_code == 2 and "tpu" in r.output
    r = cli("verify", "gpt2", "--targets", "onnx,tpu", *GPT)
    assert r.exit_code == 2 and "tpu" in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    # MetaSchedule measures kernels of one shape: a symbolic batch cannot be tuned
    r = cli("build", "gpt2", "--target", "llvm", "-o", out, *GPT, "--batch", "dynamic", "--tune", 8)
    assert r.exit_code == 2 and "--tune needs a static batch" in r.stderr
    assert not out.exists() and leftovers(tmp_path) == []


def test_unwritable_output_exit_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = cli("build", "gpt2", "--target", "onnx", "-o", blocker / "out", *GPT)
    assert r.exit_code == 2 and "cannot write" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failed_build_keeps_the_old_directory(tmp_path, monkeypatch):
    out = tmp_path / "b"
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT).exit_code == 0
    before = manifest(out)
    from graphspec.backends import onnx as gx

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(gx, "save", broken)
    r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--force")
    assert r.exit_code != 0
    assert manifest(out) == before and (out / "model.onnx").exists()
    assert leftovers(tmp_path) == []


def test_cuda_without_nvcc_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    r = cli("build", "gpt2", "--target", "cuda", "-o", tmp_path / "c", *GPT)
    assert r.exit_code == 2 and "nvcc" in r.stderr
    assert not (tmp_path / "c").exists() and leftovers(tmp_path) == []


def test_unknown_llvm_cpu_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHSPEC_LLVM_MCPU", "no-such-cpu")
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "l", *GPT)
    assert r.exit_code == 2 and "no-such-cpu" in r.stderr and "GRAPHSPEC_LLVM_MCPU" in r.stderr
    assert not (tmp_path / "l").exists() and leftovers(tmp_path) == []


def test_llvm_build_targets_this_cpu(tmp_path, monkeypatch):
    """The manifest names the LLVM CPU the library was built for (the host's unless overridden)."""
    from tvm.target import codegen

    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "l", *GPT)
    assert r.exit_code == 0, r.output
    assert manifest(tmp_path / "l")["tvm"]["mcpu"] == codegen.llvm_get_system_cpu()
    monkeypatch.setenv("GRAPHSPEC_LLVM_MCPU", "x86-64")  # same dir, another CPU: not a cache hit
    assert cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "l", *GPT).exit_code == 0
    m = manifest(tmp_path / "l")
    assert m["tvm"]["mcpu"] == "x86-64" and m["cache"]["hit"] is False


def _gpu() -> bool:
    from graphspec.backends.tvm import has_cuda_device

    return has_cuda_device()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc (the CUDA toolkit) to build")
def test_cuda_build_and_run(tmp_path):
    out = tmp_path / "cuda"
    r = cli("build", "gpt2", "--target", "cuda", "-o", out, *GPT)
    assert r.exit_code == 0, r.output
    m = manifest(out)
    assert m["tvm"]["cuda_kernels"] > 0 and (out / "model.so").exists()
    r = cli("run", out)
    if _gpu():
        assert r.exit_code == 0, r.output
    else:  # builds here, cannot run here
        assert r.exit_code == 2 and "no CUDA GPU" in r.stderr
        v = cli("verify", "gpt2", "--targets", "onnx,cuda", *GPT)
        assert v.exit_code == 2 and "GPU" in v.stderr


@pytest.mark.slow
def test_tuned_build_matches_untuned_and_reuses_database(tmp_path):
    """MetaSchedule on a tiny GPT-2: tuned == untuned numerically; light kernels (norms,
    softmax, transposes) get schedules too; a rebuild (forced build) runs no new trial and says
    so in the manifest, with what the tuning that made the database cost."""
    plain, tuned = tmp_path / "plain", tmp_path / "tuned"
    assert cli("build", "gpt2", "--target", "llvm", "-o", plain, *GPT).exit_code == 0
    r = cli("build", "gpt2", "--target", "llvm", "-o", tuned, *GPT, "--tune", 32)
    assert r.exit_code == 0, r.output
    t = manifest(tuned)["tuning"]
    assert t["reused"] is False and t["new_trials"] > 0 and t["applied"] >= 1
    assert t["light_kernels_tuned"] > 0 and t["trials_per_light_kernel"] >= 1
    assert t["applied"] > t["heavy_kernels"]  # more than the matmuls got a schedule
    # weights a schedule reads in a blocked layout are repacked once at load, not per call
    assert t["prepacked_weights"] >= 1
    assert t["work_dir"] == str(tuned / "tuning") and (tuned / "tuning" / "database_tuning_record.json").exists()

    untuned_out, tuned_out = cli_builds.run_outputs(tmp_path, plain, tuned)
    np.testing.assert_allclose(tuned_out, untuned_out, rtol=1e-5, atol=1e-5)

    r = cli("build", "gpt2", "--target", "llvm", "-o", tuned, *GPT, "--tune", 32, "--force")
    assert r.exit_code == 0 and "no new trials" in r.stdout
    t2 = manifest(tuned)["tuning"]
    assert t2["tuned_by"]["new_trials"] == t["new_trials"] and t2["tuned_by"]["seconds"] > 0
    assert t2["reused"] is True and t2["new_trials"] == 0 and t2["records"] == t["records"]
    assert t2["applied"] == t["applied"]

    # A spec whose kernels partly differ (another vocabulary: the embedding gather and the LM
    # head change, the blocks do not) sharing the database: only the kernels it lacks are tuned.
    shared = tuned / "tuning"
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "vocab", *GPT, "--set", "vocab=120",
            "--tune", 32, "--tune-dir", shared)
    assert r.exit_code == 0, r.output
    t3 = manifest(tmp_path / "vocab")["tuning"]
    assert t3["reused"] is True and 0 < t3["kernels_in_db"] < t3["kernels"]
    assert 0 < t3["new_trials"] < t["new_trials"] and t3["records"] == t["records"] + t3["new_trials"]
    assert t3["applied"] == t["applied"] and t3["tuned_by"]["incremental_runs"] == 1
