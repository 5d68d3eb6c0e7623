"""Issue #14 §5: publishing a build is one atomic step, killed builds leave nothing that lasts,
and concurrent builds of one directory are serialized by a lock.

A build subprocess is SIGKILLed exactly at the publish step (a hook in graphspec.io pauses it
right before or right after the RENAME_EXCHANGE) and at random moments; afterwards the
directory must be the complete old build or the complete new one: a manifest that `load`
accepts and every artifact matching its sha256.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from graphspec.backends import manifest as mf
from graphspec.cli.main import main

from graphspec import io as gio

GPT = ["--set", "vocab=100", "--set", "d=32", "--set", "L=1", "--set", "h=2", "--set", "n_ctx=16",
       "--set", "seq_len=8"]
RUNNER = """
import os, sys, time
import graphspec.io as gio

def hook(stage):
    if stage == os.environ.get("PAUSE_AT"):
        open(os.environ["PAUSE_MARKER"], "w").write(str(os.getpid()))
        time.sleep(600)

gio._hook = hook
from graphspec.cli.main import main
main(sys.argv[1:], prog_name="graphspec")
"""


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def dotfiles(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def state(d: Path) -> str:
    """The cache key of the complete build in `d`; fails unless every artifact checks out."""
    m = mf.read(d)
    for role in m["artifacts"]:
        mf.artifact(d, m, role)
    return m["cache"]["key"]


def spawn(tmp_path: Path, out: Path, *extra: str, pause: str | None = None) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "PAUSE_AT": pause or "", "PAUSE_MARKER": str(tmp_path / "paused")}
    return subprocess.Popen([sys.executable, str(script), "build", "gpt2", "--target", "onnx",
                             "-o", str(out), *GPT, *extra], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_paused(tmp_path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    marker = tmp_path / "paused"
    t0 = time.monotonic()
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)
    marker.unlink()


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()  # reaped: its pid is dead, so its temporaries are stale


@pytest.fixture
def two_builds(tmp_path):
    """The old build in tmp_path/b (h=2) and the key a new one (h=4) will have."""
    out = tmp_path / "b"
    assert cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "new", *GPT, "--set", "h=4").exit_code == 0
    new_key = state(tmp_path / "new")
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT).exit_code == 0
    return out, state(out), new_key


def test_exchange_replaces_in_one_step(tmp_path):
    """renameat2(RENAME_EXCHANGE) is available here (ext4/tmpfs) and swaps the directories."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "old").write_text("old")
    with gio.atomic_dir(d) as tmp:
        (tmp / "new").write_text("new")
        assert gio._exchange(tmp, tmp)  # the syscall exists and accepts the flag
    assert sorted(p.name for p in d.iterdir()) == ["new"] and dotfiles(tmp_path) == []


def test_killed_right_before_the_exchange(tmp_path, two_builds):
    out, old, new = two_builds
    p = spawn(tmp_path, out, "--set", "h=4", pause="publish")
    wait_paused(tmp_path, p)
    assert len([n for n in dotfiles(tmp_path) if n.endswith(".tmp")]) == 1  # the finished new build
    kill(p)
    assert state(out) == old
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--set", "h=4").exit_code == 0
    assert state(out) == new and dotfiles(tmp_path) == []  # the killed build's temporary is gone


def test_killed_right_after_the_exchange(tmp_path, two_builds):
    out, old, new = two_builds
    p = spawn(tmp_path, out, "--set", "h=4", pause="published")
    wait_paused(tmp_path, p)
    kill(p)
    assert state(out) == new
    stale = dotfiles(tmp_path)
    assert len(stale) == 2 and any(n.endswith(".tmp") for n in stale)  # the old copy, the lock
    r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT)
    assert r.exit_code == 0, r.output
    assert state(out) == old and dotfiles(tmp_path) == []


def test_killed_at_random_moments(tmp_path, two_builds):
    """10 builds killed after 0-2.5 s (a whole build takes ~1.7 s here: interpreter start,
    loading, export, saving, publishing): the directory is always one complete build."""
    out, old, new = two_builds
    rng, killed = random.Random(14), 0
    for i in range(10):
        extra = ("--set", "h=4") if i % 2 == 0 else ()
        p = spawn(tmp_path, out, *extra, "--force")
        time.sleep(rng.uniform(0.0, 2.5))
        killed += p.poll() is None
        kill(p)
        assert state(out) in (old, new)
    assert killed >= 3  # most kills hit a running build
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--force").exit_code == 0
    assert state(out) == old and dotfiles(tmp_path) == []


def test_a_second_build_is_refused_while_one_runs(tmp_path, two_builds):
    out, old, new = two_builds
    p = spawn(tmp_path, out, "--set", "h=4", pause="publish")
    wait_paused(tmp_path, p)
    r = cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--force")
    assert r.exit_code == 2, r.output
    assert f"is being built by another process (pid {p.pid}" in r.stderr and "wait" in r.stderr
    kill(p)
    assert state(out) == old
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--force").exit_code == 0
    assert dotfiles(tmp_path) == []


def test_two_concurrent_builds(tmp_path, two_builds):
    """Started together: each ends with exit 0, or 2 with the lock message; one wins."""
    out, old, new = two_builds
    procs = [spawn(tmp_path, out, "--set", "h=4", "--force"), spawn(tmp_path, out, "--force")]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "is being built by another process" in err), err
    assert 0 in [rc for rc, _ in results]
    assert state(out) in (old, new) and dotfiles(tmp_path) == []


# -- without RENAME_EXCHANGE: the symlink scheme -------------------------------------------------
def test_fallback_symlink_scheme(tmp_path, monkeypatch, two_builds):
    out, old, new = two_builds
    monkeypatch.setattr(gio, "_exchange", lambda a, b: False)
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--set", "h=4").exit_code == 0
    assert out.is_symlink() and state(out) == new
    first = os.readlink(out)
    assert dotfiles(tmp_path) == [first]  # the directory the symlink points to, nothing else
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT).exit_code == 0
    assert state(out) == old and os.readlink(out) != first and dotfiles(tmp_path) == [os.readlink(out)]
    monkeypatch.undo()  # RENAME_EXCHANGE again: the symlink and its directory are replaced
    assert cli("build", "gpt2", "--target", "onnx", "-o", out, *GPT, "--force").exit_code == 0
    assert not out.is_symlink() and state(out) == old and dotfiles(tmp_path) == []


def test_kill_between_the_two_fallback_renames_is_restored(tmp_path, two_builds):
    """The one non-atomic step of the fallback: `b` moved to `.b.<pid>.<id>.old`, then killed."""
    out, old, new = two_builds
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    moved = tmp_path / f".b.{dead.pid}.abcdefgh.old"
    out.rename(moved)
    assert gio.clean_stale(gio.target_dir(out)) == [f"{moved.name} (restored as b)"]
    assert state(out) == old and dotfiles(tmp_path) == []


def test_stale_temporaries_of_live_processes_are_kept(tmp_path):
    d = tmp_path / "b"
    live = tmp_path / f".b.{os.getppid()}.abcdefgh.tmp"  # our parent is alive
    legacy = [tmp_path / ".b.k3j4h5g6.tmp", tmp_path / ".b.old"]  # an older graphspec's names
    other = tmp_path / ".b2.1.abcdefgh.tmp"  # another directory's
    for p in (live, *legacy, other):
        p.mkdir()
    with gio.atomic_dir(d) as tmp:
        (tmp / "x").write_text("x")
    assert dotfiles(tmp_path) == sorted([live.name, other.name])


def test_manifest_records_every_artifact(tmp_path):
    r = cli("build", "gpt2", "--target", "onnx", "-o", tmp_path / "o", *GPT)
    assert r.exit_code == 0
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert set(m["files"]) == set(m["artifacts"].values()) == {"model.onnx"}
    assert m["files"]["model.onnx"]["bytes"] == (tmp_path / "o" / "model.onnx").stat().st_size
