"""A real Ray cluster on this machine for the tests: a head node and one worker node, each started by
``ray start`` as processes of its own (its own process group), every node on 127.0.0.1, no dashboard, no
usage reporting, token authentication with a token of the test's own.

``ray start`` on Linux replaces a loopback ``--node-ip-address`` (and a loopback ``--address``) by the
machine's outward address, so that nodes on other machines can reach it; a test cluster must not listen
there. The launcher below runs Ray's own ``ray start`` command with that one replacement turned off
(``ray._private.services.resolve_ip_for_localhost``); the rest is Ray as installed.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHER = """
import sys
import ray._private.services as services
services.resolve_ip_for_localhost = lambda host: host  # keep 127.0.0.1 as given
from ray.scripts.scripts import main
sys.argv = ["ray", *sys.argv[1:]]
main()
"""


# Ends the cluster when the test process is gone without its teardown (pytest killed by a CI timeout or
# by hand): polls the test process, then takes down the process groups listed in the cluster's ``groups``
# file (one per node, written as each starts) and removes the cluster's files.
REAPER = """
import os, shutil, signal, sys, time
owner, temp = int(sys.argv[1]), sys.argv[2]
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
while alive(owner):
    time.sleep(1.0)
try:
    groups = [int(g) for g in open(os.path.join(temp, "groups")).read().split()]
except OSError:
    groups = []
for sig in (signal.SIGTERM, signal.SIGKILL):
    for g in groups:
        try:
            os.killpg(g, sig)
        except ProcessLookupError:
            pass
    time.sleep(3.0)
shutil.rmtree(temp, ignore_errors=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalCluster:
    address: str
    env: dict[str, str]  # what a driver needs to join (the token)
    temp_dir: Path
    node_tmp: list[Path]  # each node's TMPDIR: where its workers keep their node-local files
    groups: list[int] = field(default_factory=list)
    reaper: subprocess.Popen | None = None

    def stop(self) -> None:
        """End every process of the nodes (their process groups), then remove the cluster's files."""
        if self.reaper is not None:
            self.reaper.kill()
            self.reaper.wait()
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            alive = [g for g in self.groups if _group_alive(g)]
            for g in alive:
                try:
                    os.killpg(g, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while any(_group_alive(g) for g in alive) and time.monotonic() < deadline:
                time.sleep(0.1)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # zombies (exited, not yet reaped by init) still count for killpg: look at their state
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def start_cluster(cpus_per_node: int = 1) -> tuple[LocalCluster | None, str]:
    """(cluster, "") or (None, why Ray cannot start here)."""
    if importlib.util.find_spec("ray") is None:
        return None, "Ray is not installed (pip install -e '.[cluster]')"
    temp = Path(tempfile.mkdtemp(prefix="mmray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    cluster = LocalCluster(f"127.0.0.1:{port}", {k: env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                                                                       "RAY_USAGE_STATS_ENABLED")}, temp, [])
    cluster.reaper = subprocess.Popen([sys.executable, "-c", REAPER, str(os.getpid()), str(temp)],
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    common = [f"--num-cpus={cpus_per_node}", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    nodes = [["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}"],
             [f"--address=127.0.0.1:{port}"]]
    for i, args in enumerate(nodes):
        node_tmp = temp / f"node{i}"
        node_tmp.mkdir()
        cluster.node_tmp.append(node_tmp)
        ports = [f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                 f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}"]
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "start", *args, *common, *ports],
                                env={**env, "TMPDIR": str(node_tmp)}, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        cluster.groups.append(proc.pid)
        with open(temp / "groups", "a") as f:
            f.write(f"{proc.pid}\n")
        try:
            out, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            cluster.stop()
            return None, f"`ray start` ({'head' if i == 0 else 'worker'}) did not finish in 180 s"
        if proc.returncode != 0:
            cluster.stop()
            last = [line for line in out.strip().splitlines() if line.strip()][-1:] or ["no output"]
            return None, f"`ray start` ({'head' if i == 0 else 'worker'}) failed: {last[0][:300]}"
    return cluster, ""


def ray_processes(prefix: str) -> dict[int, str]:
    """pid -> process title of every live process whose title starts with ``prefix`` (Ray names a worker
    process after the task it runs: ``ray::<task name>``)."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip()
        except OSError:
            continue
        if title.startswith(prefix):
            out[int(pid)] = title
    return out
