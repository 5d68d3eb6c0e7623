"""Measuring MetaSchedule candidates on TVM RPC servers registered with a tracker.

    python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190           # one tracker
    python -m tvm.exec.rpc_server --tracker HOST:9190 --key xeon        # a server per machine
    graphspec build swin_t --target llvm --tune 1100 --rpc HOST:9190:xeon

Candidates are still compiled here (metaschedule's builder); the runner uploads each one to a
server the tracker hands out, which loads it (linking it with its own C compiler) and times
it. The address is checked before any work (`parse`) and the tracker is probed before the
first trial (`probe`): an unreachable tracker, something else on the port, no server for the
key or none free within a few seconds is an `RPCError` (exit 2) naming host:port and the key,
never a hang. `probe` also opens one session, so that a server registered under an address
this machine cannot reach fails here and not in every trial.

NB: TVM 0.27 has the tracker and the server at `tvm.exec.rpc_tracker` / `tvm.exec.rpc_server`
(the tracker needs `tornado`, in graphspec's `tvm` extra); `tvm.exec.query_rpc_tracker`
prints a tracker's queue. The tracker binds the first free port in [--port, --port-end),
`--port-end` defaulting to 9199: give both when the port is above that.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


class RPCError(Exception):
    """A user-facing RPC problem: a malformed address, an unreachable tracker, no server."""


@dataclass(frozen=True)
class RPCAddress:
    """HOST:PORT:KEY of a tracker and the key its servers registered under."""

    host: str
    port: int
    key: str

    @property
    def tracker(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.tracker}:{self.key}"


_ADDR = re.compile(r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>[0-9]+):(?P<key>[A-Za-z0-9_.-]+)")


def parse(value: str) -> RPCAddress:
    """'host:9190:key' (or '[::1]:9190:key') -> RPCAddress; RPCError saying what is wrong."""
    m = _ADDR.fullmatch(value.strip())
    if not m:
        raise RPCError(f"{value!r} is not HOST:PORT:KEY (e.g. 127.0.0.1:9190:xeon; an IPv6 host in "
                       "brackets, [::1]:9190:xeon; the key of letters, digits, '.', '_', '-')")
    port = int(m["port"])
    if not 0 < port < 65536:
        raise RPCError(f"{value!r}: port {port} is not in 1..65535")
    return RPCAddress(m["ip6"] or m["host"], port, m["key"])


def _tracker_summary(addr: RPCAddress, timeout_s: float) -> dict:
    """The tracker's summary (queue and servers), through one socket with a timeout.
    NB: tvm.rpc.connect_tracker retries a refused connection for 60 s and blocks without a
    timeout on a peer that never answers: this speaks the tracker protocol itself. NB: the
    host name's lookup is the system resolver's, not bounded by `timeout_s`."""
    from tvm.rpc import base

    where = f"the RPC tracker at {addr.tracker}"
    try:
        with socket.create_connection((addr.host, addr.port), timeout=timeout_s) as s:
            s.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            if struct.unpack("<i", base.recvall(s, 4))[0] != base.RPC_TRACKER_MAGIC:
                raise RPCError(f"{addr.tracker} answers but is not a TVM RPC tracker (key {addr.key!r}); "
                               "check the port of `python -m tvm.exec.rpc_tracker`")
            base.sendjson(s, [base.TrackerCode.SUMMARY])
            code, summary = base.recvjson(s)
    except socket.timeout:
        raise RPCError(f"{where} did not answer within {timeout_s:g} s (key {addr.key!r}); is it a tracker, "
                       "and reachable from here?") from None
    except OSError as e:  # refused, unknown host, unreachable network, reset
        raise RPCError(f"cannot reach {where} (key {addr.key!r}): {e.strerror or e}; start one with "
                       f"`python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port {addr.port}`") from None
    except (ValueError, struct.error, RuntimeError) as e:  # a peer that speaks something else
        raise RPCError(f"{addr.tracker} is not a TVM RPC tracker (key {addr.key!r}): {e}") from None
    if code != base.TrackerCode.SUCCESS or not isinstance(summary, dict):
        raise RPCError(f"{where} refused a summary request (key {addr.key!r}): {summary!r}")
    return summary


def _servers(summary: dict) -> dict[str, int]:
    """Servers registered per key (the tracker lists them as 'server:KEY')."""
    out: dict[str, int] = {}
    for s in summary.get("server_info", []):
        key = str(s.get("key", "")).partition(":")[2]
        out[key] = out.get(key, 0) + 1
    return out


def probe(addr: RPCAddress, kind: str = "llvm", timeout_s: float = 5.0) -> dict[str, Any]:
    """Check that the tracker answers and has a free server for `addr.key` whose `kind` device
    (cpu for llvm, cuda) exists, within about `timeout_s` per step. Returns {'servers': n,
    'free': n, 'seconds': s}; raises RPCError naming host:port and the key."""
    t0 = time.monotonic()
    summary = _tracker_summary(addr, timeout_s)
    servers = _servers(summary)
    n = servers.get(addr.key, 0)
    if not n:
        others = ", ".join(f"{k} ({v})" for k, v in sorted(servers.items())) or "none"
        raise RPCError(f"no RPC server is registered with key {addr.key!r} at the tracker {addr.tracker} "
                       f"(keys there: {others}); start one with `python -m tvm.exec.rpc_server "
                       f"--tracker {addr.tracker} --key {addr.key}`")
    free = summary.get("queue_info", {}).get(addr.key, {}).get("free", 0)
    while not free and time.monotonic() - t0 < timeout_s:  # busy with another client: wait a little
        time.sleep(0.5)
        free = _tracker_summary(addr, timeout_s).get("queue_info", {}).get(addr.key, {}).get("free", 0)
    if not free:
        raise RPCError(f"all {n} RPC server(s) with key {addr.key!r} at the tracker {addr.tracker} stayed "
                       f"busy for {timeout_s:g} s; retry when they are free, or add servers")
    _check_session(addr, kind, timeout_s)
    return {"servers": n, "free": int(free), "seconds": round(time.monotonic() - t0, 2)}


def _check_session(addr: RPCAddress, kind: str, timeout_s: float) -> None:
    """Open one session through the tracker and look for the device, in a thread with a timeout
    (the session's connect is TVM's C++ and has none of its own)."""
    result: list[Any] = []

    def connect():
        try:
            from tvm import rpc

            sess = rpc.connect_tracker(addr.host, addr.port).request(
                addr.key, priority=1, session_timeout=max(int(timeout_s), 1), max_retry=1)
            result.append(sess.device("cuda" if kind == "cuda" else "cpu", 0).exist)
        except Exception as e:  # reported below with the address
            result.append(e)

    t = threading.Thread(target=connect, daemon=True, name="graphspec-rpc-probe")
    t.start()
    t.join(timeout_s)
    if not result:
        raise RPCError(f"a server with key {addr.key!r} from the tracker {addr.tracker} did not open a session "
                       f"within {timeout_s:g} s (is the address it registered reachable from here? see "
                       "`python -m tvm.exec.rpc_server --custom-addr`)")
    if isinstance(result[0], Exception):
        msg = str(result[0]).strip().splitlines()[-1][:300] if str(result[0]).strip() else type(result[0]).__name__
        raise RPCError(f"cannot open a session on a server with key {addr.key!r} from the tracker "
                       f"{addr.tracker}: {msg}")
    if result[0] is not True:
        raise RPCError(f"the server with key {addr.key!r} from the tracker {addr.tracker} has no "
                       f"{'CUDA GPU' if kind == 'cuda' else 'CPU device'}; register {kind} servers under their own key")


# The tracker that tune() measures on when it is given none: set by the CLI around a build.
_current: ContextVar[RPCAddress | None] = ContextVar("graphspec_rpc", default=None)


def current() -> RPCAddress | None:
    return _current.get()


@contextmanager
def measured_on(addr: RPCAddress | None):
    """Within the block, metaschedule.tune() measures on `addr`'s servers (None: locally)."""
    token = _current.set(addr)
    try:
        yield
    finally:
        _current.reset(token)
