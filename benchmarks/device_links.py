"""Device links against the protocol servers of the digital twin: command round-trip latency and the
achievable position-update rate of each real driver (serial links on pseudo-terminals, so no UART
baud-rate delay: on hardware add ~1 ms per 10 characters at 9600 baud; the uMp over loopback UDP).
Prints a table. For the uMp the query is a ping (a request and its ACK): position reads are answered
from libum's cache of the device's notifications, which arrive every ``notify_interval_s`` while moving.

    .venv/bin/python benchmarks/device_links.py [--n 300]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

from app.config import parse_rig_config
from app.rig import build_rig
from drivers.context import DeviceContext
from drivers.newera import NewEraPump
from drivers.pi_piezo import PiezoFocus
from drivers.prior import ProScanStage
from drivers.sensapex_ump import SensapexManipulator
from sim.protocols.newera import NewEraServer
from sim.protocols.pi_gcs import GcsServer
from sim.protocols.proscan import ProScanServer
from sim.protocols.smcp import SmcpServer

ROOT = Path(__file__).resolve().parent.parent


def round_trips(call, n: int) -> np.ndarray:
    for _ in range(10):
        call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return np.array(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    data = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    data.update(clock="real", scene={"n_sperm": 0, "n_debris": 0})
    rows = []
    with build_rig(parse_rig_config(data)) as twin:
        ctx = DeviceContext(clock=twin.clock, objective=twin.config.objective)
        links = [
            ("Prior ProScan (pyserial)", "P", ProScanServer(twin.stage),
             lambda port: ProScanStage("stage", ProScanStage.Settings(port=port), ctx), lambda d: d.position_um()),
            ("PI GCS 2 (pipython)", "POS?", GcsServer(twin.focus),
             lambda port: PiezoFocus("focus", PiezoFocus.Settings(port=port), ctx), lambda d: d.z_um()),
            ("New Era NE-1000 (pyserial)", "DIS", NewEraServer(twin.pump),
             lambda port: NewEraPump("pump", NewEraPump.Settings(port=port), ctx), lambda d: d.volume_nl()),
            ("New Era NE-1000 safe mode (CRC packets)", "DIS", NewEraServer(twin.pump, safe_timeout_s=3),
             lambda port: NewEraPump("pump", NewEraPump.Settings(port=port, framing="safe"), ctx),
             lambda d: d.volume_nl()),
            ("Sensapex uMp (libum, SMCP v1/UDP)", "PING", SmcpServer(twin.manipulator),
             lambda _port: SensapexManipulator("manipulator", SensapexManipulator.Settings(address="127.0.0.1"), ctx),
             lambda d: d.ping()),
        ]
        for label, command, server, open_driver, call in links:
            device = open_driver(getattr(server, "port", None))
            try:
                ms = round_trips(lambda: call(device), args.n)
            finally:
                device.close()
                server.close()
            rows.append((label, command, np.median(ms), np.percentile(ms, 99), 1000 / ms.mean()))
    print("| link | query | median round trip (ms) | p99 (ms) | position updates/s |")
    print("|---|---|---|---|---|")
    for label, command, med, p99, rate in rows:
        print(f"| {label} | `{command}` | {med:.2f} | {p99:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
