"""A serial device as seen from the driver's side: a pseudo-terminal that speaks the device's protocol.

The driver opens :attr:`LineServer.port` with pyserial exactly as it opens ``/dev/ttyUSB0``: same
framing, same timing, the same failure modes. The server side cuts the received bytes into messages with
a framing from :mod:`drivers.framing` (text lines, or New Era's CRC packets), hands each to a protocol
handler and writes its replies back framed the same way. :class:`Faults` injects what real links do:
lost replies, delays, garbage bytes, line noise (a flipped bit) and a cable pulled out.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from typing import Callable

from drivers.framing import LineFraming, SafePacketFraming

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Faults applied to the next replies. Tests set them; each counter counts down as it fires."""

    drop_replies: int = 0  # swallow the next N replies
    delay_s: float = 0.0  # wait this long before every reply
    garbage_replies: int = 0  # replace the next N replies with unparseable bytes
    flip_bits: int = 0  # flip one bit in the middle of each of the next N framed replies (line noise)
    disconnect_after_lines: int | None = None  # drop the link after receiving this many more lines


class LineServer:
    """Serves ``handler(message) -> replies`` on a pseudo-terminal until :meth:`close`.

    ``framing`` is seen from the device's side: it cuts the driver's commands and frames the replies
    (``LineFraming(reply_terminator, command_terminator)``). It may be swapped while serving (a pump
    switched to safe mode). ``handler`` runs on the server thread; :meth:`send` may be called from any
    thread for unsolicited messages (a stage's end-of-move ``R``).
    """

    def __init__(self, handler: Callable[[str], list[str]], name: str,
                 framing: LineFraming | SafePacketFraming | None = None, immediate: bytes = b"") -> None:
        self.handler = handler
        self.immediate = immediate  # single-byte commands that need no terminator (PI's #5, #7, #24)
        self.name = name
        self.framing = framing or LineFraming(b"\r")
        self.faults = Faults()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as on a real UART
        self.port = os.ttyname(self._slave)
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self.lines_received = 0
        self._thread = threading.Thread(target=self._serve, name=f"{name}-server", daemon=True)
        self._thread.start()

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
        f = self.faults
        if f.disconnect_after_lines is not None:
            if f.disconnect_after_lines <= 0:
                self.disconnect()
                return
            f.disconnect_after_lines -= 1
        if not line.strip("\r\n "):
            return
        try:
            replies = self.handler(line)
        except Exception:  # a protocol bug must not kill the link silently
            log.exception("%s: handler failed on %r", self.name, line)
            replies = []
        for reply in replies:
            self.send(reply)

    # ----- any thread ------------------------------------------------------------------------------------
    def send(self, reply: str) -> None:
        """Write one reply line to the driver (after the configured faults)."""
        f = self.faults
        if f.drop_replies > 0:
            f.drop_replies -= 1
            return
        if f.delay_s:
            time.sleep(f.delay_s)
        if f.garbage_replies > 0:
            f.garbage_replies -= 1
            reply = "\x8f#?" + reply[::-1] + "\xff"
        data = bytearray(self.framing.encode(reply))
        if f.flip_bits > 0:
            f.flip_bits -= 1
            data[len(data) // 2] ^= 0x10
        with self._write_lock:
            if self._closed.is_set():
                return
            try:
                os.write(self._master, bytes(data))
            except OSError:
                pass

    def disconnect(self) -> None:
        """Pull the cable: the driver's next read or write fails."""
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._write_lock:
            for fd in (self._master, self._slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> LineServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
