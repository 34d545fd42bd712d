"""The shared test vectors (testdata/ttrpc-vectors.json), both directions."""
import socket

from orgd_client import wire


def test_encoding_each_request_gives_its_frame(vectors):
    for vector in vectors:
        request = vector["request"]
        frame = wire.encode_request(
            request["stream_id"], request["service"], request["method"], bytes.fromhex(request["payload_hex"]),
            request["timeout_nano"], [(m["key"], m["value"]) for m in request["metadata"]])
        assert frame.hex() == vector["request_frame_hex"], vector["name"]


def test_decoding_each_response_gives_its_fields(vectors):
    for vector in vectors:
        stream_id, response = wire.decode_response(bytes.fromhex(vector["response_frame_hex"]))
        expected = vector["response"]
        assert stream_id == expected["stream_id"]
        assert response.status.code == expected["status_code"]
        assert response.status.message == expected["status_message"]
        assert response.payload.hex() == expected["payload_hex"]


def test_encoding_each_response_gives_its_frame(vectors):
    from orgd_client._gen.ttrpc import ttrpc_pb2

    for vector in vectors:
        expected = vector["response"]
        response = ttrpc_pb2.Response(payload=bytes.fromhex(expected["payload_hex"]))
        response.status.code = expected["status_code"]
        response.status.message = expected["status_message"]
        frame = wire.encode_frame(expected["stream_id"], wire.TYPE_RESPONSE, response.SerializeToString())
        assert frame.hex() == vector["response_frame_hex"], vector["name"]


def test_a_fresh_daemon_answers_each_request_frame_exactly(daemon, vectors):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(10)
        raw.connect(daemon.socket)
        for vector in vectors:
            raw.sendall(bytes.fromhex(vector["request_frame_hex"]))
            header = _read(raw, wire.HEADER_SIZE)
            body = _read(raw, wire.decode_header(header)[0])
            assert (header + body).hex() == vector["response_frame_hex"], vector["name"]


def _read(raw, count):
    data = b""
    while len(data) < count:
        chunk = raw.recv(count - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data
