"""How messages are cut out of a serial byte stream and put into it: text lines, or CRC-checked packets.

A framing turns a message into bytes (:meth:`encode`) and takes the complete messages off the front of a
receive buffer (:meth:`split`, which returns them with the bytes still incomplete). Serial drivers
(:mod:`drivers.serial_line`) and the protocol servers in ``sim/`` share these classes, so both ends of a
simulated link frame exactly as the device's manual says.
"""

from __future__ import annotations

import binascii

STX, ETX = 0x02, 0x03
#: a safe-mode packet that failed its checks; drivers report it as a garbled reply
BAD_PACKET = "<bad packet>"


class LineFraming:
    """Text lines: ``command + terminator`` out, replies cut at ``reply_terminator`` (ProScan, NE-1000 basic)."""

    def __init__(self, terminator: bytes = b"\r", reply_terminator: bytes | None = None) -> None:
        self.terminator = terminator
        self.reply_terminator = reply_terminator or terminator

    def encode(self, message: str) -> bytes:
        return message.encode("latin-1") + self.terminator

    def split(self, buffer: bytes) -> tuple[list[str], bytes]:
        messages = []
        while self.reply_terminator in buffer:
            raw, buffer = buffer.split(self.reply_terminator, 1)
            messages.append(raw.decode("latin-1").strip("\r\n "))
        return messages, buffer


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT as New Era pumps compute it (polynomial 0x1021, initial value 0; the manual's
    example ``SAF0`` gives 0x5543)."""
    return binascii.crc_hqx(data, 0)


class SafePacketFraming:
    """New Era "safe mode" packets: ``STX, length, data, CRC-16 (high, low), ETX``.

    ``length`` counts the bytes after STX including itself (data + 4). Binary CRC bytes may equal CR or
    ETX, so packets are cut by their length, never by a terminator. A packet with a wrong CRC, a missing
    ETX or an impossible length becomes :data:`BAD_PACKET`; bytes before an STX are skipped.
    """

    max_data = 250

    def encode(self, message: str) -> bytes:
        data = message.encode("latin-1")
        if len(data) > self.max_data:
            raise ValueError(f"safe-mode packet of {len(data)} bytes is too long (max {self.max_data})")
        crc = crc16_ccitt(data)
        return bytes([STX, len(data) + 4]) + data + bytes([crc >> 8, crc & 0xFF, ETX])

    def split(self, buffer: bytes) -> tuple[list[str], bytes]:
        messages: list[str] = []
        while True:
            start = buffer.find(bytes([STX]))
            if start < 0:
                if buffer:
                    messages.append(BAD_PACKET)
                return messages, b""
            if start > 0:
                messages.append(BAD_PACKET)
                buffer = buffer[start:]
            if len(buffer) < 2:
                return messages, buffer
            length = buffer[1]
            if length < 4:
                messages.append(BAD_PACKET)
                buffer = buffer[1:]
                continue
            if len(buffer) < 1 + length:
                return messages, buffer
            packet, rest = buffer[: 1 + length], buffer[1 + length :]
            data, crc, end = packet[2:-3], packet[-3:-1], packet[-1]
            if end != ETX or int.from_bytes(crc, "big") != crc16_ccitt(data):
                messages.append(BAD_PACKET)
                buffer = buffer[1:]  # resynchronise on the next STX
                continue
            messages.append(data.decode("latin-1"))
            buffer = rest
