"""`graphspec build --tune N --rpc HOST:PORT:KEY`: MetaSchedule measured on TVM RPC servers.

A real tracker and two servers (`python -m tvm.exec.rpc_tracker`, `python -m tvm.exec.rpc_server`)
run on 127.0.0.1 as subprocesses for this module; each server's log shows the sessions it
served (one per measured candidate, plus the probe's), which is how the tests tell that the
records came from the RPC runner and not from a local one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("tornado")  # TVM's tracker needs it (graphspec's tvm extra)

import cli_builds  # tests/cli_builds.py
from graphspec.backends import rpc  # noqa: E402

GPT, cli, manifest = cli_builds.GPT, cli_builds.cli, cli_builds.manifest

KEY = "graphspec-test"
FAR = "graphspec-test-far"  # a server registered at an address nobody can reach (TEST-NET-1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args, log, env):
    # own process group: the tracker and the servers fork workers, killed with them
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)


def _register_far(addr: rpc.RPCAddress, key: str):
    """Register a server under `key` at 192.0.2.1 (TEST-NET-1: nobody answers there) the way
    tvm.rpc.server does (UPDATE_INFO, then PUT); it stays registered while the socket is open.
    Cheaper than a third `rpc_server --custom-addr 192.0.2.1` process (two tvm imports)."""
    import struct

    from tvm.rpc import base

    s = socket.create_connection((addr.host, addr.port), timeout=10)
    s.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
    assert struct.unpack("<i", base.recvall(s, 4))[0] == base.RPC_TRACKER_MAGIC
    for msg in ([base.TrackerCode.UPDATE_INFO, {"key": "server:" + key, "addr": ["192.0.2.1", 9]}],
                [base.TrackerCode.PUT, key, (9, base.random_key(key)), "192.0.2.1"]):
        base.sendjson(s, msg)
        assert base.recvjson(s) == base.TrackerCode.SUCCESS
    return s


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A tracker and two servers registered under KEY (subprocesses), and an unreachable one
    under FAR; yields (address, the KEY servers' log paths)."""
    d = tmp_path_factory.mktemp("rpc")
    env = {**os.environ, "TVM_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # 2 servers on 2 cores
    port = free_port()
    addr = rpc.parse(f"127.0.0.1:{port}:{KEY}")
    procs, far = [], None
    logs = [d / "server0.log", d / "server1.log"]
    try:
        with open(d / "tracker.log", "w") as log:
            procs.append(_start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                                 "--port-end", str(port + 1)], log, env))
        # started at once: each retries a tracker that is not up yet every 5 s
        for path in logs:
            sp = free_port()
            with open(path, "w") as log:
                procs.append(_start(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(sp),
                                     "--port-end", str(sp + 20), "--tracker", addr.tracker, "--key", KEY],
                                    log, env))
        deadline = time.monotonic() + 90  # each process imports tvm twice (~10 s each when loaded)
        while True:
            try:
                if rpc._servers(rpc._tracker_summary(addr, 2.0)).get(KEY, 0) >= 2:
                    break
            except rpc.RPCError:
                pass  # the tracker is not up yet
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                pytest.fail("the RPC tracker and servers did not come up: " + " | ".join(
                    p.read_text()[-500:] for p in [d / "tracker.log", *logs]))
            time.sleep(0.5)
        far = _register_far(addr, FAR)
        yield addr, logs
    finally:
        if far is not None:
            far.close()
        for p in procs:
            _stop(p)


def sessions(logs) -> list[int]:
    """Sessions each server has served (one line per session in its log)."""
    return [p.read_text().count("start serving") for p in logs]


@pytest.mark.slow
def test_tuning_measured_on_rpc_servers_and_reused(cluster, tmp_path):
    """--tune 4 --rpc: the 4 records are measured on the two servers (their logs show the
    sessions), the manifest says so, the tuned library equals the untuned one to 1e-5, and a
    rebuild reuses the database: no new trial and no new session on any server."""
    addr, logs = cluster
    plain, tuned = tmp_path / "plain", tmp_path / "tuned"
    assert cli("build", "gpt2", "--target", "llvm", "-o", plain, *GPT).exit_code == 0
    before = sessions(logs)
    r = cli("build", "gpt2", "--target", "llvm", "-o", tuned, *GPT, "--tune", 4, "--rpc", addr)
    assert r.exit_code == 0, r.output
    m = manifest(tuned)
    t = m["tuning"]
    assert t["runner"] == {**t["runner"], "kind": "rpc", "tracker": addr.tracker, "key": KEY, "servers": 2}
    assert t["reused"] is False and t["new_trials"] == 4 and t["records"] == 4 and t["applied"] >= 1
    served = [a - b for a, b in zip(sessions(logs), before, strict=True)]
    # one session per measured candidate, plus the probe's; both servers took part
    assert sum(served) == t["new_trials"] + 1, served
    assert all(n > 0 for n in served), served
    assert f"measured on 2 RPC server(s) with key '{KEY}'" in r.stdout
    summary = json.loads((tuned / "tuning" / "graphspec_tuning.json").read_text())
    assert summary["runners"] == [f"rpc {addr}"] and summary["new_trials"] == 4

    untuned_out, tuned_out = cli_builds.run_outputs(tmp_path, plain, tuned)
    np.testing.assert_allclose(tuned_out, untuned_out, rtol=1e-5, atol=1e-5)

    before = sessions(logs)
    r = cli("build", "gpt2", "--target", "llvm", "-o", tuned, *GPT, "--tune", 4, "--rpc", addr, "--force")
    assert r.exit_code == 0, r.output
    assert "reusing 4 records" in r.stderr and "no new trials" in r.stdout
    t2 = manifest(tuned)["tuning"]
    assert t2["reused"] is True and t2["new_trials"] == 0 and t2["applied"] == t["applied"]
    assert t2["tuned_by"]["runners"] == [f"rpc {addr}"]
    assert sessions(logs) == before  # nothing to measure: not even the probe ran
    # the reused build does no MetaSchedule search at all (only task extraction): 4 measured
    # trials took 10-30 s here
    assert manifest(tuned)["timings_s"]["tune"] < m["timings_s"]["tune"] / 2


def test_probe_reports_servers_and_refuses_an_unknown_key(cluster):
    addr, _ = cluster
    p = rpc.probe(addr, "llvm", timeout_s=10)
    assert p["servers"] == 2 and 1 <= p["free"] <= 2
    other = rpc.RPCAddress(addr.host, addr.port, "no-such-key")
    t0 = time.monotonic()
    with pytest.raises(rpc.RPCError) as e:
        rpc.probe(other, "llvm", timeout_s=2)
    assert time.monotonic() - t0 < 5
    msg = str(e.value)
    assert "no RPC server is registered with key 'no-such-key'" in msg and addr.tracker in msg
    assert f"{KEY} (2)" in msg and f"--tracker {addr.tracker} --key no-such-key" in msg

    # registered, free, but at an address this machine cannot connect to: the probe's session fails
    far = rpc.RPCAddress(addr.host, addr.port, FAR)
    t0 = time.monotonic()
    with pytest.raises(rpc.RPCError, match=f"key '{FAR}' from the tracker {addr.tracker}"):
        rpc.probe(far, "llvm", timeout_s=2)
    assert time.monotonic() - t0 < 5


def test_unreachable_tracker_exits_2_quickly(tmp_path):
    """Nothing on the port: exit 2 naming host:port and the key, no output directory; the probe
    itself takes well under a second (the rest is loading and lowering the spec)."""
    port = free_port()  # closed again: connections are refused
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = cli("build", "gpt2", "--target", "llvm", "-o", out, *GPT, "--tune", 8, "--rpc", f"127.0.0.1:{port}:k1")
    assert time.monotonic() - t0 < 60
    assert r.exit_code == 2, r.output
    assert f"cannot reach the RPC tracker at 127.0.0.1:{port} (key 'k1')" in r.stderr
    assert "Traceback" not in r.output and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary build directory left

    t0 = time.monotonic()
    with pytest.raises(rpc.RPCError, match=f"127.0.0.1:{port}"):
        rpc.probe(rpc.parse(f"127.0.0.1:{port}:k1"), timeout_s=3)
    assert time.monotonic() - t0 < 1


def test_silent_peer_times_out():
    """A port that accepts and never answers (not a tracker): RPCError after the timeout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        conns = []
        threading.Thread(target=lambda: conns.append(srv.accept()), daemon=True).start()
        addr = rpc.parse(f"127.0.0.1:{srv.getsockname()[1]}:k")
        t0 = time.monotonic()
        with pytest.raises(rpc.RPCError, match="did not answer within 1 s"):
            rpc.probe(addr, timeout_s=1)
        assert time.monotonic() - t0 < 4
        for c, _ in conns:
            c.close()


@pytest.mark.parametrize("value, why", [
    ("localhost", "is not HOST:PORT:KEY"),
    ("localhost:9190", "is not HOST:PORT:KEY"),
    ("localhost:port:key", "is not HOST:PORT:KEY"),
    ("localhost:9190:", "is not HOST:PORT:KEY"),
    ("localhost:9190:a b", "is not HOST:PORT:KEY"),
    ("::1:9190:k", "is not HOST:PORT:KEY"),
    ("localhost:0:k", "port 0 is not in 1..65535"),
    ("localhost:70000:k", "port 70000 is not in 1..65535"),
])
def test_malformed_rpc_exits_2(tmp_path, value, why):
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "o", *GPT, "--tune", 8, "--rpc", value)
    assert r.exit_code == 2 and "Invalid value for '--rpc'" in r.output and why in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "o").exists()


def test_parse_and_rpc_without_tune(tmp_path):
    assert rpc.parse("10.0.0.5:9190:xeon") == rpc.RPCAddress("10.0.0.5", 9190, "xeon")
    a = rpc.parse("[::1]:9190:gpu.a100")
    assert (a.host, a.port, a.key, str(a)) == ("::1", 9190, "gpu.a100", "[::1]:9190:gpu.a100")
    r = cli("build", "gpt2", "--target", "llvm", "-o", tmp_path / "o", *GPT, "--rpc", "127.0.0.1:9190:k")
    assert r.exit_code == 2 and "give --tune N too" in r.output and not (tmp_path / "o").exists()
