"""Find where a Thrift message ends, without building it, within a work budget.

Unframed binary Thrift has no length prefix: a message's end is known only by
walking it.  These scanners walk the binary and compact encodings on raw
bytes, keep their place between calls (a message trickling in is walked once,
not once per chunk), and refuse a message that nests deeper than
:data:`MAX_DEPTH`, holds more than its budget of values, or claims a string
or a container larger than the request cap.  Containers are charged for the
elements they *claim* before any is read, so a ``list<VOID>`` of 2**31
elements (which thriftpy2 would skip for minutes, reading nothing) costs one
step.  thriftpy2 then decodes only messages that passed.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod

__all__ = ["MAX_DEPTH", "MAX_VALUES", "BinaryScanner", "CompactScanner", "ScanError"]

MAX_DEPTH = 32  # structs and containers nested in one message (thriftpy2's own limit is 64)
MAX_VALUES = 100_000  # values (fields, elements, keys) in one message; a full multicall uses ~10,000
MAX_NAME = 256  # bytes of a method name

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
# Binary protocol: bytes of each fixed-size type (BOOL, BYTE, DOUBLE, I16, I32, I64).
_FIXED = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8}
_STRING, _STRUCT, _MAP, _SET, _LIST = 11, 12, 13, 14, 15


class ScanError(Exception):
    """The bytes are not an acceptable Thrift message (malformed, or over a bound); the reason says which."""


class _Scanner(ABC):
    """Shared state: where the current message started, the place reached, the open containers, the budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reset()

    def reset(self) -> None:
        """Start a new message at the beginning of the buffer."""
        self.pos = 0
        self.stack: list[list[int]] = []  # frames: [kind, ...]; kind 0 = struct, 1 = value of a type, 2 = elements
        self.values = MAX_VALUES
        self.header = False
        self.name = b""
        self.seqid = 0

    def _charge(self, count: int) -> None:
        if count < 0:
            raise ScanError("negative size")
        self.values -= count
        if self.values < 0:
            raise ScanError("too many values")

    def _push(self, frame: list[int]) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise ScanError("nested too deeply")
        self.stack.append(frame)

    def scan(self, buf: bytes | bytearray) -> int | None:
        """The length of the complete message at the start of ``buf``, or None if more bytes are needed."""
        if not self.header:
            if not self._header(buf):
                return None
            self.header = True
            self.stack = [[0]]
        while self.stack:
            if self.pos > self.limit:
                raise ScanError("message larger than the request cap")
            if not self._step(buf):
                return None
        if self.pos > self.limit:
            raise ScanError("message larger than the request cap")
        return self.pos

    @abstractmethod
    def _header(self, buf: bytes | bytearray) -> bool:
        """Read the message header (name, sequence id); False if more bytes are needed."""

    @abstractmethod
    def _step(self, buf: bytes | bytearray) -> bool:
        """Advance by one value or header; False if more bytes are needed."""


class BinaryScanner(_Scanner):
    """The binary protocol (strict or old-style message headers)."""

    def _header(self, buf: bytes | bytearray) -> bool:
        if len(buf) < 4:
            return False
        (first,) = _I32.unpack_from(buf, 0)
        if first < 0:  # strict: version and type, then the name
            if first & 0xFFFF0000 != 0x80010000:
                raise ScanError("bad protocol version")
            name_at = 4
        else:
            name_at = 0
        if len(buf) < name_at + 4:
            return False
        (size,) = _I32.unpack_from(buf, name_at)
        if not 0 <= size <= MAX_NAME:
            raise ScanError("bad method name")
        end = name_at + 4 + size + (4 if first < 0 else 5)
        if len(buf) < end:
            return False
        self.name = bytes(buf[name_at + 4 : name_at + 4 + size])
        self.seqid = _I32.unpack_from(buf, end - 4)[0]
        self.pos = end
        return True

    def _value(self, kind: int) -> None:
        if kind in _FIXED or kind == _STRING:
            self._push([1, kind])
        elif kind == _STRUCT:
            self._push([0])
        elif kind in (_MAP, _SET, _LIST):
            self._push([3, kind])  # a container whose header is still to be read
        else:
            raise ScanError("unknown type")

    def _step(self, buf: bytes | bytearray) -> bool:
        frame, pos, have = self.stack[-1], self.pos, len(buf)
        if frame[0] == 0:  # struct: a field header or STOP
            if have < pos + 1:
                return False
            kind = buf[pos]
            if kind == 0:
                self.pos += 1
                self.stack.pop()
                return True
            if have < pos + 3:
                return False
            self._charge(1)
            self.pos += 3
            self._value(kind)
            return True
        if frame[0] == 1:  # one value of a fixed size or a string
            kind = frame[1]
            if kind == _STRING:
                if have < pos + 4:
                    return False
                (size,) = _I32.unpack_from(buf, pos)
                if not 0 <= size <= self.limit:
                    raise ScanError("string larger than the request cap")
                if have < pos + 4 + size:
                    return False
                self.pos += 4 + size
            else:
                if have < pos + _FIXED[kind]:
                    return False
                self.pos += _FIXED[kind]
            self.stack.pop()
            return True
        if frame[0] == 3:  # a container's header
            kind = frame[1]
            size = 6 if kind == _MAP else 5
            if have < pos + size:
                return False
            (count,) = _I32.unpack_from(buf, pos + size - 4)
            types = [buf[pos], buf[pos + 1]] if kind == _MAP else [buf[pos]]
            self._charge(count * len(types))
            self.pos += size
            self.stack[-1] = [2, count * len(types), *types]
            return True
        # elements left to read
        if frame[1] == 0:
            self.stack.pop()
            return True
        frame[1] -= 1
        types = frame[2:]
        self._value(types[frame[1] % 2 ^ 1] if len(types) == 2 else types[0])
        return True


# Compact protocol types (as in its field and element headers).
_C_TRUE, _C_FALSE, _C_BYTE, _C_I16, _C_I32, _C_I64, _C_DOUBLE, _C_BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_C_LIST, _C_SET, _C_MAP, _C_STRUCT = 9, 10, 11, 12


class CompactScanner(_Scanner):
    """The compact protocol."""

    def _varint(self, buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
        result = shift = 0
        for i in range(pos, min(len(buf), pos + 10)):
            byte = buf[i]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, i + 1
            shift += 7
        if len(buf) >= pos + 10:
            raise ScanError("bad varint")
        return None

    def _header(self, buf: bytes | bytearray) -> bool:
        if len(buf) < 2:
            return False
        if buf[0] != 0x82 or buf[1] & 0x1F != 1:
            raise ScanError("bad protocol id or version")
        seq = self._varint(buf, 2)
        if seq is None:
            return False
        size = self._varint(buf, seq[1])
        if size is None:
            return False
        if size[0] > MAX_NAME:
            raise ScanError("bad method name")
        if len(buf) < size[1] + size[0]:
            return False
        self.name, self.seqid = bytes(buf[size[1] : size[1] + size[0]]), seq[0]
        self.pos = size[1] + size[0]
        return True

    def _value(self, kind: int, in_container: bool) -> None:
        if kind in (_C_TRUE, _C_FALSE) and not in_container:
            return  # a field's boolean lives in its header
        if kind in (_C_TRUE, _C_FALSE, _C_BYTE, _C_I16, _C_I32, _C_I64, _C_DOUBLE, _C_BINARY):
            self._push([1, kind])
        elif kind == _C_STRUCT:
            self._push([0])
        elif kind in (_C_LIST, _C_SET, _C_MAP):
            self._push([3, kind])
        else:
            raise ScanError("unknown type")

    def _step(self, buf: bytes | bytearray) -> bool:
        frame, pos, have = self.stack[-1], self.pos, len(buf)
        if frame[0] == 0:
            if have < pos + 1:
                return False
            byte = buf[pos]
            if byte == 0:
                self.pos += 1
                self.stack.pop()
                return True
            end = pos + 1
            if byte >> 4 == 0:  # a full field id follows
                field_id = self._varint(buf, end)
                if field_id is None:
                    return False
                end = field_id[1]
            self._charge(1)
            self.pos = end
            self._value(byte & 0x0F, False)
            return True
        if frame[0] == 1:
            kind = frame[1]
            if kind in (_C_TRUE, _C_FALSE, _C_BYTE):
                if have < pos + 1:
                    return False
                self.pos += 1
            elif kind == _C_DOUBLE:
                if have < pos + 8:
                    return False
                self.pos += 8
            else:
                number = self._varint(buf, pos)
                if number is None:
                    return False
                end = number[1]
                if kind == _C_BINARY:
                    if number[0] > self.limit:
                        raise ScanError("string larger than the request cap")
                    end += number[0]
                    if have < end:
                        return False
                self.pos = end
            self.stack.pop()
            return True
        if frame[0] == 3:
            if frame[1] == _C_MAP:
                count = self._varint(buf, pos)
                if count is None:
                    return False
                end, types = count[1], []
                if count[0]:
                    if have < end + 1:
                        return False
                    types = [buf[end] >> 4, buf[end] & 0x0F]
                    end += 1
                n = count[0] * 2
            else:
                if have < pos + 1:
                    return False
                byte, end = buf[pos], pos + 1
                n = byte >> 4
                if n == 15:
                    count = self._varint(buf, end)
                    if count is None:
                        return False
                    n, end = count
                types = [byte & 0x0F]
            self._charge(n)
            self.pos = end
            self.stack[-1] = [2, n, *types] if n else [2, 0]
            return True
        if frame[1] == 0:
            self.stack.pop()
            return True
        frame[1] -= 1
        types = frame[2:]
        self._value(types[frame[1] % 2 ^ 1] if len(types) == 2 else types[0], True)
        return True
