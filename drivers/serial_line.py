"""A serial link shared by the serial drivers (ProScan, NE-1000), framed by :mod:`drivers.framing`.

pyserial's :class:`serial.threaded.ReaderThread` owns the port's input: it blocks in the port's read
(``select`` on POSIX, woken by ``cancel_read`` on close), so an idle link costs no CPU and a reply is
handed on the moment it arrives. :class:`_Packetizer` (pyserial's ``Packetizer`` with our framings, so
CRC packets cut by their length work too) turns the byte stream into messages.

Replies are matched to what waits for them in the order the commands went out: each :meth:`query` (one
at a time) and each :meth:`urgent` command that wants its reply registers an expectation, and a message
goes to the first expectation that accepts it, else to the driver's ``on_unsolicited`` callback (a
stage's end-of-move ``R``). :meth:`urgent` writes at once, without waiting for a query in flight: the
stop path of every serial driver, so an emergency stop is never queued behind a stalled query. A broken
link (unplugged adapter, closed port) is reported once through ``on_link_lost`` and fails every later
call.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

import serial
import serial.threaded

from drivers.framing import LineFraming, SafePacketFraming

log = logging.getLogger(__name__)


class LinkError(Exception):
    """The link failed: no reply in time, or the port is gone. The text says which."""


@dataclass(eq=False)
class Expectation:
    """A reply some caller waits for; :attr:`reply` is set (and :attr:`arrived` fired) when it comes."""

    command: str
    accept: Callable[[str], bool]
    reply: str | None = None
    arrived: threading.Event = field(default_factory=threading.Event)


class _Packetizer(serial.threaded.Protocol):
    """Cuts the received bytes into messages with the link's framing and hands each to the link."""

    def __init__(self, line: SerialLine) -> None:
        self.line = line
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        messages, self.buffer = self.line.framing.split(self.buffer + data)
        for message in messages:
            self.line._dispatch(message)

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is not None:
            self.line._lose(f"serial link lost ({exc.__class__.__name__}: {exc})")


class SerialLine:
    def __init__(self, port: str, baud: int, framing: LineFraming | SafePacketFraming,
                 on_unsolicited: Callable[[str], None], on_link_lost: Callable[[str], None], name: str) -> None:
        self.name = name
        self.framing = framing
        self._on_unsolicited = on_unsolicited
        self._on_link_lost = on_link_lost
        try:
            # timeout=None: the reader blocks until bytes arrive (cancel_read wakes it on close)
            port_ = serial.serial_for_url(port, baudrate=baud, timeout=None, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open serial port {port!r}: {exc}") from None
        port_.reset_input_buffer()
        self._query_lock = threading.Lock()
        self._expected: list[Expectation] = []
        self._expected_lock = threading.Lock()
        self.lost: str | None = None
        self._closing = False
        self._reader = serial.threaded.ReaderThread(port_, lambda: _Packetizer(self))
        self._reader.name = f"{name}-reader"
        self._reader.start()
        self._reader._connection_made.wait()

    # ----- reader thread ---------------------------------------------------------------------------------
    def _dispatch(self, message: str) -> None:
        with self._expected_lock:
            for expectation in self._expected:
                if expectation.accept(message):
                    self._expected.remove(expectation)
                    expectation.reply = message
                    expectation.arrived.set()
                    return
        self._on_unsolicited(message)

    def _lose(self, why: str) -> None:
        if self.lost or self._closing:
            return
        self.lost = why
        with self._expected_lock:
            waiting, self._expected = self._expected, []
        for expectation in waiting:  # wake every caller; their reply stays None
            expectation.arrived.set()
        self._on_link_lost(why)

    # ----- callers ---------------------------------------------------------------------------------------
    def _write(self, command: str) -> None:
        if self.lost:
            raise LinkError(self.lost)
        try:
            self._reader.write(self.framing.encode(command))
        except (serial.SerialException, OSError) as exc:
            self._lose(f"serial link lost ({exc.__class__.__name__}: {exc})")
            raise LinkError(self.lost) from None

    def write(self, command: str) -> None:
        """Send a command that gets no immediate reply (never waits for a query in flight)."""
        self._write(command)

    def urgent(self, command: str, accept: Callable[[str], bool] | None = None) -> Expectation | None:
        """Send ``command`` now, even while a query waits for its reply; with ``accept``, return the
        expectation of its reply, to :meth:`wait_for` or to :meth:`forget`."""
        expectation = None
        if accept is not None:
            expectation = Expectation(command, accept)
            with self._expected_lock:
                self._expected.append(expectation)
        try:
            self._write(command)
        except LinkError:
            if expectation is not None:
                self.forget(expectation)
            raise
        return expectation

    def wait_for(self, expectation: Expectation, timeout_s: float) -> str:
        """The reply of an :meth:`urgent` command; LinkError when the link is lost or it does not come."""
        if not expectation.arrived.wait(timeout_s):
            self.forget(expectation)
        if expectation.reply is None:
            raise LinkError(self.lost or f"no reply to {expectation.command!r} within {timeout_s:g} s")
        return expectation.reply

    def forget(self, expectation: Expectation) -> None:
        with self._expected_lock:
            if expectation in self._expected:
                self._expected.remove(expectation)

    def query(self, command: str, timeout_s: float, accept: Callable[[str], bool] = lambda line: True) -> str:
        """Send ``command`` and return the first reply that ``accept`` takes (one query at a time)."""
        if self.lost:
            raise LinkError(self.lost)
        if not self._query_lock.acquire(timeout=timeout_s):
            raise LinkError(f"link busy for {timeout_s:g} s")
        try:
            expectation = Expectation(command, accept)
            with self._expected_lock:
                self._expected.append(expectation)
            try:
                self._write(command)
            except LinkError:
                self.forget(expectation)
                raise
            return self.wait_for(expectation, timeout_s)
        finally:
            self._query_lock.release()

    def close(self) -> None:
        self._closing = True
        try:
            self._reader.close()
        except (serial.SerialException, OSError):
            pass
