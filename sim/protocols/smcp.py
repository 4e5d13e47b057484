"""A Sensapex uMp manipulator as it speaks SMCP v1 over UDP, moving a digital-twin manipulator.

Frames follow the public umsdk header ``smcp1.h``: a 16-byte big-endian header (version 0x10, receiver,
sender, message id, option bits, type, sub-block count) and sub-blocks of INT32 arrays. Positions travel
in nm. The device answers a request that asks for it with an ACK (header only) and, for queries, a
response carrying the same type and message id; it announces positions (type 101) and status (102) as
notifications to all PCs, and the end of a ``GOTO_POS`` drive with notification 104 (0 = reached).

libum, when pointed at a 127.x address, binds its own socket to port-2 (55553) so that this server can
own 55555 on the same host; replies go to the address the request came from, notifications to every
PC that has talked to the device (a driver's separate stop link is one more PC).
"""

from __future__ import annotations

import collections
import logging
import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from drivers.errors import MicromanipError
from drivers.interfaces import Manipulator
from sim.protocols.faults import ALWAYS, DELAY_S, check_fault

log = logging.getLogger(__name__)

VERSION = 0x10
HEADER = struct.Struct(">BBHHHIHH")
SUB_HEADER = struct.Struct(">HH")
INT32, UINT32 = 6, 5
ARG_UNDEF = 2**31 - 1
ALL_MANIPULATORS, ALL_PCS = 0x00FF, 0x02FF

OPT_REQ, OPT_ACK, OPT_NOTIFY, OPT_ERROR = 0x01, 0x02, 0x04, 0x08
OPT_REQ_ACK, OPT_REQ_RESP, OPT_REQ_NOTIFY = 0x10, 0x20, 0x40

PING, STOP, GET_POSITIONS, GET_PARAMETER, GET_VERSION, GOTO_POS, TAKE_STEP = 0, 1, 14, 16, 23, 33, 34
NOTIFY_POSITION, NOTIFY_STATUS, NOTIFY_GOTO_DONE = 101, 102, 104
PARAM_AXIS_COUNT = 0x105
STATUS_IDLE, STATUS_BUSY, STATUS_MOVING_XYZ = 0x0, 0x1, 0x70


@dataclass
class UdpFaults:
    """Faults for the next datagrams. Tests set them; counters count down as they fire."""

    drop_replies: int = 0  # swallow the next N replies (ACKs, responses)
    garbage_replies: int = 0  # send N unparseable datagrams instead of replies
    delay_s: float = 0.0  # every reply goes out this much later (requests are still obeyed at once)
    stall_drives: int = 0  # the next N drives stop halfway and report failure
    silent: bool = False  # the device is gone: no replies, no notifications, nothing obeyed
    mute: bool = False  # requests are obeyed, nothing comes back (replies nor notifications)
    refusing: bool = False  # every drive fails at once, without moving
    stalled: bool = False  # the device hangs: nothing comes back, nothing but STOP is obeyed


def pack(receiver: int, sender: int, message_id: int, options: int, kind: int,
         *blocks: tuple[int, list[int]]) -> bytes:
    frame = HEADER.pack(VERSION, 0, receiver, sender, message_id, options, kind, len(blocks))
    for data_type, values in blocks:
        fmt = ">" + ("I" if data_type == UINT32 else "i") * len(values)
        frame += SUB_HEADER.pack(data_type, len(values)) + struct.pack(fmt, *values)
    return frame


def unpack(data: bytes) -> tuple[tuple[int, ...], list[list[int]]]:
    head = HEADER.unpack_from(data)
    blocks, offset = [], HEADER.size
    for _ in range(head[7]):
        _data_type, size = SUB_HEADER.unpack_from(data, offset)
        offset += SUB_HEADER.size
        blocks.append(list(struct.unpack_from(f">{size}i", data, offset)))
        offset += 4 * size
    return head, blocks


class SmcpServer:
    """One uMp (``dev_id``) on UDP ``host:port`` driving ``manipulator`` (a twin device, um)."""

    def __init__(self, manipulator: Manipulator, dev_id: int = 1, host: str = "127.0.0.1",
                 port: int = 55555, notify_interval_s: float = 0.02) -> None:
        self.manipulator = manipulator
        self.dev_id = dev_id
        self.faults = UdpFaults()
        self.notify_interval_s = notify_interval_s
        self.requests_received: list[int] = []  # message types, in order (also while silent)
        self.received: collections.deque[tuple[float, int]] = collections.deque(maxlen=2000)  # (monotonic s, type)
        self._peers: set[tuple[str, int]] = set()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.settimeout(0.05)
        self.address = (host, port)
        self._peer: tuple[str, int] | None = None
        self._message_id = 0
        self._drive_generation = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._threads = [threading.Thread(target=self._serve, name="ump-server", daemon=True),
                         threading.Thread(target=self._notify_loop, name="ump-notify", daemon=True)]
        for t in self._threads:
            t.start()

    def inject(self, fault: str) -> None:
        """A fault of :mod:`sim.protocols.faults` from now on."""
        f = self.faults
        match check_fault(fault):
            case "drop_reply":
                f.mute = True
            case "garbage":
                f.garbage_replies = ALWAYS
            case "error_code":
                f.refusing = True
            case "delay":
                f.delay_s = DELAY_S
            case "disconnect":
                f.silent = True
            case "stall":
                f.stalled = True
        log.warning("ump server: fault injected: %s", fault)

    # ----- sending ---------------------------------------------------------------------------------------
    def _next_id(self) -> int:
        with self._lock:
            self._message_id = (self._message_id + 1) % 0x10000
            return self._message_id

    def _send(self, frame: bytes, reply: bool) -> None:
        """A reply goes to the PC that asked, a notification to every PC that has talked to the device."""
        f = self.faults
        if self._peer is None or f.silent or f.mute or f.stalled or self._closed.is_set():
            return
        if reply:
            if f.drop_replies > 0:
                f.drop_replies -= 1
                return
            if f.garbage_replies > 0:
                f.garbage_replies -= 1
                frame = b"\x7f\x00garbage"
        elif f.garbage_replies > 0:
            frame = b"\x7f\x00garbage"
        peers = [self._peer] if reply else list(self._peers)
        if f.delay_s:
            threading.Timer(f.delay_s, self._sendto, args=(frame, peers)).start()
        else:
            self._sendto(frame, peers)

    def _sendto(self, frame: bytes, peers: list[tuple[str, int]]) -> None:
        for peer in peers:
            try:
                self._sock.sendto(frame, peer)
            except OSError:
                pass

    def _positions_nm(self) -> list[int]:
        return [int(round(v * 1000)) for v in self.manipulator.position_um()]

    def _notify(self, kind: int, data_type: int, values: list[int]) -> None:
        self._send(pack(ALL_PCS, self.dev_id, self._next_id(), OPT_NOTIFY, kind, (data_type, values)), reply=False)

    def _status(self) -> int:
        return STATUS_BUSY | STATUS_MOVING_XYZ if self.manipulator.is_moving() else STATUS_IDLE

    # ----- serving ---------------------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                data, peer = self._sock.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            try:
                head, blocks = unpack(data)
            except struct.error:
                continue
            version, _extra, receiver, sender, message_id, options, kind, _n = head
            if version != VERSION or receiver not in (self.dev_id, ALL_MANIPULATORS) or not options & OPT_REQ:
                continue
            self.requests_received.append(kind)
            self.received.append((time.monotonic(), kind))
            if self.faults.silent or (self.faults.stalled and kind != STOP):
                continue
            self._peer = peer
            self._peers.add(peer)
            try:
                self._handle(sender, message_id, options, kind, blocks)
            except Exception:
                log.exception("ump server: request %d failed", kind)

    def _handle(self, sender: int, message_id: int, options: int, kind: int, blocks: list[list[int]]) -> None:
        def answer(data_type: int, values: list[int]) -> None:
            self._send(pack(sender, self.dev_id, message_id, 0, kind, (data_type, values)), reply=True)

        if options & OPT_REQ_ACK or kind == PING:
            self._send(pack(sender, self.dev_id, message_id, OPT_ACK, kind), reply=True)
        if kind == GET_POSITIONS:
            answer(INT32, self._positions_nm())
        elif kind == GET_PARAMETER and blocks and blocks[0]:
            if blocks[0][0] == PARAM_AXIS_COUNT:
                answer(INT32, [PARAM_AXIS_COUNT, 3])
            else:
                answer(INT32, [blocks[0][0], 0])
        elif kind == GET_VERSION:
            answer(INT32, [1, 2, 3, 0, 0])
        elif kind == STOP:
            with self._lock:
                self._drive_generation += 1
            self.manipulator.stop()
            self._notify(NOTIFY_STATUS, UINT32, [STATUS_IDLE])
        elif kind == GOTO_POS and blocks:
            self._goto(blocks)
        elif kind == TAKE_STEP and blocks:
            steps_nm = blocks[0][:3]
            speed = max(1, max(blocks[1][:3]) if len(blocks) > 1 else 10)
            target = self.manipulator.position_um() + np.array(steps_nm + [0] * (3 - len(steps_nm))) / 1000.0
            self._start(target, float(speed))

    def _goto(self, blocks: list[list[int]]) -> None:
        args = blocks[0]
        current = self.manipulator.position_um()
        target = np.array([current[i] if args[i] == ARG_UNDEF else args[i] / 1000.0 for i in range(3)])
        speeds = [s for s in (blocks[1] if len(blocks) > 1 else args[4:5]) if s > 0] or [1000]
        self._start(target, float(max(speeds)))

    def _start(self, target: np.ndarray, speed_um_s: float) -> None:
        if self.faults.refusing:  # the drive fails at once: status busy, then done with failure
            self._notify(NOTIFY_GOTO_DONE, UINT32, [1])
            return
        speed = min(speed_um_s, self.manipulator.max_speed_um_s)
        failed = self.faults.stall_drives > 0
        if failed:
            self.faults.stall_drives -= 1
            current = self.manipulator.position_um()
            target = current + (target - current) / 2
        with self._lock:
            self._drive_generation += 1
            generation = self._drive_generation
        try:
            handle = self.manipulator.move_to_um(target, speed)
        except MicromanipError:
            self._notify(NOTIFY_GOTO_DONE, UINT32, [1])
            return
        self._notify(NOTIFY_STATUS, UINT32, [self._status()])
        threading.Thread(target=self._report_end, args=(handle, generation, failed), daemon=True).start()

    def _report_end(self, handle, generation: int, failed: bool) -> None:
        self.manipulator.clock.wait_until(lambda: handle.done or self._drive_generation != generation, 600.0, 0.002)
        if self._drive_generation == generation:
            self._notify(NOTIFY_POSITION, INT32, self._positions_nm())
            self._notify(NOTIFY_STATUS, UINT32, [STATUS_IDLE])
            self._notify(NOTIFY_GOTO_DONE, UINT32, [1 if failed else 0])

    def _notify_loop(self) -> None:
        """Positions while moving at ``notify_interval_s``, and a heartbeat every 0.5 s when idle."""
        last = 0.0
        while not self._closed.wait(self.notify_interval_s):
            now = time.monotonic()
            if self.manipulator.is_moving() or now - last > 0.5:
                self._notify(NOTIFY_POSITION, INT32, self._positions_nm())
                last = now

    def close(self) -> None:
        self._closed.set()
        for t in self._threads:
            t.join(timeout=1.0)
        self._sock.close()
