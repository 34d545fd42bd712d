"""The ttrpc frame codec: a 10-byte header (data length u32, stream id u32,
type u8, flags u8, big-endian), then a serialized Request or Response."""
from __future__ import annotations

import struct
from typing import Any, Sequence, Tuple

from ._gen.ttrpc import ttrpc_pb2

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size
TYPE_REQUEST = 0x01
TYPE_RESPONSE = 0x02
DEFAULT_MAX_FRAME = 4 << 20


def request_envelope(service: str, method: str, payload: bytes = b"", timeout_nano: int = 0,
                     metadata: Sequence[Tuple[str, str]] = ()) -> Any:
    """A ttrpc.Request for one call."""
    request = ttrpc_pb2.Request(service=service, method=method, payload=payload, timeout_nano=timeout_nano)
    for key, value in metadata:
        request.metadata.add(key=key.lower(), value=value)
    return request


def encode_frame(stream_id: int, frame_type: int, data: bytes) -> bytes:
    return HEADER.pack(len(data), stream_id, frame_type, 0) + data


def encode_request(stream_id: int, service: str, method: str, payload: bytes = b"", timeout_nano: int = 0,
                   metadata: Sequence[Tuple[str, str]] = ()) -> bytes:
    """The whole request frame."""
    body = request_envelope(service, method, payload, timeout_nano, metadata).SerializeToString()
    return encode_frame(stream_id, TYPE_REQUEST, body)


def decode_header(data: bytes) -> Tuple[int, int, int, int]:
    """(length, stream_id, type, flags) from the first 10 bytes."""
    return HEADER.unpack_from(data)


def decode_response(frame: bytes) -> Tuple[int, Any]:
    """(stream_id, ttrpc.Response) from a whole response frame."""
    length, stream_id, frame_type, _ = decode_header(frame)
    if frame_type != TYPE_RESPONSE or length != len(frame) - HEADER_SIZE:
        raise ValueError("not a whole response frame")
    response = ttrpc_pb2.Response()
    response.ParseFromString(frame[HEADER_SIZE:])
    return stream_id, response
