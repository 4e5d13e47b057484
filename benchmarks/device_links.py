"""Device links against the protocol servers of the digital twin: command round-trip latency, the
achievable position-update rate of each real driver, and the CPU an idle link costs (serial links on
pseudo-terminals, so no UART baud-rate delay: on hardware add ~1 ms per 10 characters at 9600 baud; the
uMp over loopback UDP). For the uMp the query is a ping (a request and its ACK): position reads are
answered from libum's cache of the device's notifications.

Idle CPU is the CPU time of the driver's own threads (the serial reader, the keepalive) per second of
wall time while the program asks nothing, measured per thread (``pthread_getcpuclockid``), so the
protocol servers running in the same process do not count. The NE-1000's and the uMp's keepalives (a
status request every 0.3 s, a ping every 0.25 s) are part of an idle link by design.

    .venv/bin/python benchmarks/device_links.py [--n 300] [--idle-s 5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import parse_rig_config  # noqa: E402
from app.rig import build_rig  # noqa: E402
from benchmarks.result_store import Headline, Result, Table, save_result  # noqa: E402
from drivers.context import DeviceContext  # noqa: E402
from drivers.newera import NewEraPump  # noqa: E402
from drivers.pi_piezo import PiezoFocus  # noqa: E402
from drivers.prior import ProScanStage  # noqa: E402
from sim.protocols.newera import NewEraServer  # noqa: E402
from sim.protocols.pi_gcs import GcsServer  # noqa: E402
from sim.protocols.proscan import ProScanServer  # noqa: E402

#: goals of the serial-link rewrite (pyserial's ReaderThread instead of a 0.5 ms polling loop)
GOAL_ROUND_TRIP_MS = 0.15
GOAL_IDLE_CPU = 0.005  # of one core, for the serial links together


def round_trips(call, n: int) -> np.ndarray:
    for _ in range(10):
        call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000


def thread_cpu_s(names: tuple[str, ...]) -> float:
    """CPU seconds so far of the live threads whose name starts with one of ``names``."""
    total = 0.0
    for thread in threading.enumerate():
        if thread.ident is not None and thread.name.startswith(names):
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, ProcessLookupError):
                pass
    return total


def idle_cpu(devices: list, idle_s: float) -> float:
    """Fraction of one core the drivers' own threads use while nothing is asked of them."""
    names = tuple(f"{d.name}-" for d in devices)
    time.sleep(0.5)
    cpu0, t0 = thread_cpu_s(names), time.perf_counter()
    time.sleep(idle_s)
    return (thread_cpu_s(names) - cpu0) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="round trips per link")
    ap.add_argument("--idle-s", type=float, default=5.0, help="seconds of idle links to measure CPU over")
    args = ap.parse_args()
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data.update(clock="real", scene={"n_sperm": 0, "n_debris": 0})
    rows = []
    with build_rig(parse_rig_config(data)) as twin:
        ctx = DeviceContext(clock=twin.clock, objective=twin.config.objective)
        links = [
            ("Prior ProScan (pyserial ReaderThread)", "P", lambda: ProScanServer(twin.stage),
             lambda port: ProScanStage("stage", ProScanStage.Settings(port=port), ctx), lambda d: d.position_um()),
            ("PI GCS 2 (pipython)", "POS?", lambda: GcsServer(twin.focus),
             lambda port: PiezoFocus("focus", PiezoFocus.Settings(port=port), ctx), lambda d: d.z_um()),
            ("New Era NE-1000 basic mode (pyserial ReaderThread)", "DIS", lambda: NewEraServer(twin.pump),
             lambda port: NewEraPump("pump", NewEraPump.Settings(port=port, framing="basic"), ctx),
             lambda d: d.volume_nl()),
            ("New Era NE-1000 safe mode (CRC packets)", "DIS", lambda: NewEraServer(twin.pump, safe_timeout_s=1),
             lambda port: NewEraPump("pump", NewEraPump.Settings(port=port), ctx), lambda d: d.volume_nl()),
        ]
        try:
            from drivers.sensapex_ump import SensapexManipulator
            from sim.protocols.smcp import SmcpServer

            links.append(("Sensapex uMp (libum, SMCP v1/UDP)", "PING", lambda: SmcpServer(twin.manipulator),
                          lambda _port: SensapexManipulator("manipulator",
                                                            SensapexManipulator.Settings(address="127.0.0.1"), ctx),
                          lambda d: d.ping()))
        except ImportError:
            print("sensapex is not installed: the uMp link is left out")
        for label, command, make_server, open_driver, call in links:
            server = make_server()
            device = open_driver(getattr(server, "port", None))
            try:
                ms = round_trips(lambda: call(device), args.n)
                cpu = idle_cpu([device], args.idle_s)
            finally:
                device.close()
                server.close()
            rows.append((label, command, float(np.median(ms)), float(np.percentile(ms, 99)), 1000 / ms.mean(), cpu))
            print(f"{label}: median {np.median(ms):.3f} ms, idle {100 * cpu:.2f}% of a core", flush=True)
        # the three serial links of the reference rig open together, idle
        servers = [ProScanServer(twin.stage), NewEraServer(twin.pump, safe_timeout_s=1), GcsServer(twin.focus)]
        devices = [ProScanStage("stage", ProScanStage.Settings(port=servers[0].port), ctx),
                   NewEraPump("pump", NewEraPump.Settings(port=servers[1].port), ctx),
                   PiezoFocus("focus", PiezoFocus.Settings(port=servers[2].port), ctx)]
        try:
            serial_idle = idle_cpu(devices, args.idle_s)
        finally:
            for thing in [*devices, *servers]:
                thing.close()
    print("| link | query | median round trip (ms) | p99 (ms) | position updates/s | idle CPU (% of a core) |")
    print("|---|---|---|---|---|---|")
    table_rows = []
    for label, command, med, p99, rate, cpu in rows:
        row = [label, f"`{command}`", f"{med:.3f}", f"{p99:.3f}", f"{rate:.0f}", f"{100 * cpu:.2f}"]
        table_rows.append(row)
        print("| " + " | ".join(row) + " |")
    print(f"three serial links (ProScan, NE-1000 safe mode, PI) open and idle: {100 * serial_idle:.2f}% of a core")
    pyserial = [r for r in rows if "ReaderThread" in r[0]]
    worst_median = max(r[2] for r in pyserial)
    save_result(Result(
        name="device_links", title="Device links: round trip, update rate, idle CPU", section="devices", order=10,
        tables=[Table("Each real driver against its protocol server (pseudo-terminals, loopback UDP)",
                      ["link", "query", "median round trip (ms)", "p99 (ms)", "position updates/s",
                       "idle CPU (% of a core)"], table_rows,
                      notes=f"Three serial links (ProScan, NE-1000 safe mode, PI) open and idle together: "
                            f"{100 * serial_idle:.2f}% of a core (their drivers' threads; keepalives included). "
                            "Pseudo-terminals have no UART delay: at 9600 baud add about 1 ms per 10 characters.")],
        headlines=[Headline("serial links (pyserial ReaderThread): round trip on a pseudo-terminal; three idle links",
                            f"{worst_median:.3f} ms median (worst link); {100 * serial_idle:.2f}% of a core",
                            f"<= {GOAL_ROUND_TRIP_MS} ms; < {100 * GOAL_IDLE_CPU:.1f}%")],
        data={"links": [dict(zip(["link", "query", "median_ms", "p99_ms", "updates_per_s", "idle_cpu_fraction"], r))
                        for r in rows], "serial_idle_cpu_fraction": serial_idle, "n": args.n, "idle_s": args.idle_s}))


if __name__ == "__main__":
    main()
