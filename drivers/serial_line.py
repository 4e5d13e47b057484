"""A serial link shared by the serial drivers (ProScan, NE-1000), framed by :mod:`drivers.framing`.

One reader thread owns the port's input. It polls ``in_waiting`` and reads only what is there: a
blocking read with a timeout would cost the whole timeout on every query. Each message goes either to
the query waiting for it or, if the query's ``accept`` test refuses it (or none waits), to the
driver's ``on_unsolicited`` callback -- a stage's end-of-move ``R`` arrives that way. A broken link
(unplugged adapter, closed port) is reported once through ``on_link_lost`` and fails every later call.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import serial

from drivers.framing import LineFraming, SafePacketFraming

log = logging.getLogger(__name__)


class LinkError(Exception):
    """The link failed: no reply in time, or the port is gone. The text says which."""


class SerialLine:
    def __init__(self, port: str, baud: int, framing: LineFraming | SafePacketFraming,
                 on_unsolicited: Callable[[str], None], on_link_lost: Callable[[str], None], name: str) -> None:
        self.name = name
        self.framing = framing
        self._on_unsolicited = on_unsolicited
        self._on_link_lost = on_link_lost
        try:
            self._port = serial.serial_for_url(port, baudrate=baud, timeout=0, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open serial port {port!r}: {exc}") from None
        self._port.reset_input_buffer()
        self._query_lock = threading.Lock()
        self._replies: queue.Queue[str] = queue.Queue()
        self._accept: Callable[[str], bool] | None = None
        self._accept_lock = threading.Lock()
        self.lost: str | None = None
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-reader", daemon=True)
        self._reader.start()

    # ----- reader thread ---------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buffer = b""
        while not self._closing.is_set():
            try:
                waiting = self._port.in_waiting
                chunk = self._port.read(waiting) if waiting else b""
            except (serial.SerialException, OSError) as exc:
                if not self._closing.is_set():
                    self._lose(f"serial link lost ({exc.__class__.__name__}: {exc})")
                return
            if not chunk:
                time.sleep(0.0005)
                continue
            messages, buffer = self.framing.split(buffer + chunk)
            for message in messages:
                self._dispatch(message)

    def _dispatch(self, line: str) -> None:
        with self._accept_lock:
            accept = self._accept
            if accept is not None and accept(line):
                self._accept = None
                self._replies.put(line)
                return
        self._on_unsolicited(line)

    def _lose(self, why: str) -> None:
        self.lost = why
        self._replies.put("")  # wake a waiting query
        self._on_link_lost(why)

    # ----- callers ---------------------------------------------------------------------------------------
    def write(self, command: str) -> None:
        """Send a command that gets no immediate reply."""
        if self.lost:
            raise LinkError(self.lost)
        with self._query_lock:
            self._write(command)

    def _write(self, command: str) -> None:
        try:
            self._port.write(self.framing.encode(command))
        except (serial.SerialException, OSError) as exc:
            self._lose(f"serial link lost ({exc})")
            raise LinkError(self.lost) from None

    def query(self, command: str, timeout_s: float, accept: Callable[[str], bool] = lambda line: True) -> str:
        """Send ``command`` and return the first reply line that ``accept`` takes."""
        if self.lost:
            raise LinkError(self.lost)
        if not self._query_lock.acquire(timeout=timeout_s):
            raise LinkError(f"link busy for {timeout_s:g} s")
        try:
            while not self._replies.empty():  # a reply that arrived after its query timed out
                self._replies.get_nowait()
            with self._accept_lock:
                self._accept = accept
            self._write(command)
            try:
                reply = self._replies.get(timeout=timeout_s)
            except queue.Empty:
                raise LinkError(f"no reply to {command!r} within {timeout_s:g} s") from None
            finally:
                with self._accept_lock:
                    self._accept = None
            if self.lost:
                raise LinkError(self.lost)
            return reply
        finally:
            self._query_lock.release()

    def close(self) -> None:
        self._closing.set()
        self._reader.join(timeout=1.0)
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass
