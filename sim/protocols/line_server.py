"""A serial device as seen from the driver's side: a pseudo-terminal that speaks the device's protocol.

The driver opens :attr:`LineServer.port` with pyserial exactly as it opens ``/dev/ttyUSB0``: same
framing, same timing, the same failure modes. The server side cuts the received bytes into messages with
a framing from :mod:`drivers.framing` (text lines, or New Era's CRC packets), hands each to a protocol
handler and writes its replies back framed the same way, from a writer thread of its own (so a reply
held back by a delay does not hold back the next command). :class:`Faults` injects what real links
and devices do: lost replies, delays, garbage bytes, line noise (a flipped bit), a cable pulled out, a
device that refuses every command or hangs (:mod:`sim.protocols.faults` names them for
:meth:`LineServer.inject`). Every message received is logged with its arrival time (:attr:`received`),
so a test can tell when a stop reached the device.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import select
import threading
import time
import tty
from dataclasses import dataclass
from typing import Callable

from drivers.framing import LineFraming, SafePacketFraming
from sim.protocols.faults import ALWAYS, DELAY_S, check_fault

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Faults applied to the next replies. Tests set them; each counter counts down as it fires."""

    drop_replies: int = 0  # swallow the next N replies
    delay_s: float = 0.0  # every reply goes out this much later (commands are still obeyed at once)
    garbage_replies: int = 0  # replace the next N replies with unparseable bytes
    flip_bits: int = 0  # flip one bit in the middle of each of the next N framed replies (line noise)
    disconnect_after_lines: int | None = None  # drop the link after receiving this many more lines
    refusing: bool = False  # every command but a stop is answered with the device's error code, not obeyed
    stalled: bool = False  # the device hangs: it answers nothing and obeys nothing but a stop


class LineServer:
    """Serves ``handler(message) -> replies`` on a pseudo-terminal until :meth:`close`.

    ``framing`` is seen from the device's side: it cuts the driver's commands and frames the replies
    (``LineFraming(reply_terminator, command_terminator)``). It may be swapped while serving (a pump
    switched to safe mode). ``handler`` runs on the server thread; :meth:`send` may be called from any
    thread for unsolicited messages (a stage's end-of-move ``R``).
    """

    def __init__(self, handler: Callable[[str], list[str]], name: str,
                 framing: LineFraming | SafePacketFraming | None = None, immediate: bytes = b"",
                 is_stop: Callable[[str], bool] = lambda line: False,
                 refusal: Callable[[str], list[str]] = lambda line: []) -> None:
        self.handler = handler
        self.immediate = immediate  # single-byte commands that need no terminator (PI's #5, #7, #24)
        self.is_stop = is_stop  # the device's stop commands: obeyed under every fault but a pulled cable
        self.refusal = refusal  # the device's error answer to a command it refuses (fault ``error_code``)
        self.name = name
        self.framing = framing or LineFraming(b"\r")
        self.faults = Faults()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as on a real UART
        self.port = os.ttyname(self._slave)
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self.lines_received = 0
        self.received: collections.deque[tuple[float, str]] = collections.deque(maxlen=2000)  # (monotonic s, message)
        self._outbox: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, name=f"{name}-server", daemon=True)
        self._writer = threading.Thread(target=self._write_out, name=f"{name}-writer", daemon=True)
        self._thread.start()
        self._writer.start()

    def inject(self, fault: str) -> None:
        """Inject one of :data:`sim.protocols.faults.FAULTS` from now on."""
        f = self.faults
        match check_fault(fault):
            case "drop_reply":
                f.drop_replies = ALWAYS
            case "garbage":
                f.garbage_replies = ALWAYS
            case "error_code":
                f.refusing = True
            case "delay":
                f.delay_s = DELAY_S
            case "disconnect":
                self.disconnect()
            case "stall":
                f.stalled = True
        log.warning("%s: fault injected: %s", self.name, fault)

    # ----- server thread ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        buffer = b""
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(self._master, 4096)
            except OSError:
                break
            for byte in self.immediate:
                while bytes([byte]) in chunk:
                    chunk = chunk.replace(bytes([byte]), b"", 1)
                    self._on_line(chr(byte))
            messages, buffer = self.framing.split(buffer + chunk)
            for message in messages:
                self._on_line(message)
                if self._closed.is_set():
                    return

    def _on_line(self, line: str) -> None:
        self.lines_received += 1
        self.received.append((time.monotonic(), line))
        f = self.faults
        if f.disconnect_after_lines is not None:
            if f.disconnect_after_lines <= 0:
                self.disconnect()
                return
            f.disconnect_after_lines -= 1
        if not line.strip("\r\n "):
            return
        if (f.stalled or f.refusing) and not self.is_stop(line):
            for reply in ([] if f.stalled else self.refusal(line)):
                self.send(reply)
            return
        try:
            replies = self.handler(line)
        except Exception:  # a protocol bug must not kill the link silently
            log.exception("%s: handler failed on %r", self.name, line)
            replies = []
        for reply in replies:
            self.send(reply)

    def _write_out(self) -> None:
        """The writer thread: each framed reply goes out when it is due (replies keep their order)."""
        while (item := self._outbox.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0 and self._closed.wait(wait):
                return
            with self._write_lock:
                if self._closed.is_set():
                    return
                try:
                    os.write(self._master, data)
                except OSError:
                    pass

    # ----- any thread ------------------------------------------------------------------------------------
    def send(self, reply: str) -> None:
        """Queue one reply for the driver (after the configured faults); it goes out in order."""
        f = self.faults
        if f.stalled or self._closed.is_set():
            return
        if f.drop_replies > 0:
            f.drop_replies -= 1
            return
        if f.garbage_replies > 0:
            f.garbage_replies -= 1
            reply = "\x8f#?" + reply[::-1] + "\xff"
        data = bytearray(self.framing.encode(reply))
        if f.flip_bits > 0:
            f.flip_bits -= 1
            data[len(data) // 2] ^= 0x10
        self._outbox.put((time.monotonic() + f.delay_s, bytes(data)))

    def disconnect(self) -> None:
        """Pull the cable: the driver's next read or write fails."""
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._outbox.put(None)
        with self._write_lock:
            for fd in (self._master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        for thread in (self._thread, self._writer):
            if threading.current_thread() is not thread:
                thread.join(timeout=1.0)

    def __enter__(self) -> LineServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
