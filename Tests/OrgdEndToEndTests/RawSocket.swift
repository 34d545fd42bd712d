#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import OrgdProto
import OrgdWire
import SwiftProtobuf

/// A plain blocking socket for sending arbitrary bytes to the server and
/// reading whole frames back: what a misbehaving client looks like.
/// Every blocking call runs on a thread of its own, never on Swift's small
/// cooperative pool, which the server under test needs for its calls.
final class RawSocket: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32

    /// How long a read waits before the test fails instead of hanging: a
    /// guard, not a measurement. Generous, because under ThreadSanitizer on a
    /// loaded 2-core machine, with the whole suite running at once, an answer
    /// has taken more than 10 s.
    static let receiveTimeout = 60

    /// Runs a blocking operation on a fresh thread.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread { continuation.resume(with: Result { try body() }) }
            thread.start()
        }
    }

    init(unixPath path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect(\(path)) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: Self.receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// A TCP connection to `host:port` (an IPv4 address).
    init(tcpHost host: String = "127.0.0.1", port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &address.sin_addr)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(fd)
            throw Failure(description: "connect(\(host):\(port)) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: Self.receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Shuts the write side (a half-close): the server sees end of input and
    /// may still answer.
    func shutdownWrite() {
        _ = shutdown(fd, Int32(SHUT_WR))
    }

    /// Bytes this socket sent that the server has not read yet (Linux's
    /// SIOCOUTQ): more than zero while the server holds its reads back.
    var unreadByPeer: Int {
        var count: Int32 = 0
        return ioctl(fd, UInt(TIOCOUTQ), &count) == 0 ? Int(count) : 0
    }

    func send(_ bytes: [UInt8]) async throws {
        try await Self.offPool { try self.sendBlocking(bytes) }
    }

    /// Sends each piece in turn, pausing between them, from one thread of its
    /// own (so a busy task pool cannot stretch the pauses).
    func send(pieces: [[UInt8]], pausing seconds: Double) async throws {
        try await Self.offPool {
            for (index, piece) in pieces.enumerated() {
                if index > 0 { Thread.sleep(forTimeInterval: seconds) }
                try self.sendBlocking(piece)
            }
        }
    }

    private func sendBlocking(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Sends a request frame with this envelope.
    func sendRequest(streamID: UInt32, service: String, method: String, payload: [UInt8] = [], type: MessageType = .request) async throws {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = Data(payload)
        try await sendFrame(streamID: streamID, type: type, body: try request.serializedBytes())
    }

    func sendFrame(streamID: UInt32, type: MessageType = .request, body: [UInt8]) async throws {
        try await send(Self.frame(streamID: streamID, type: type, body: body))
    }

    /// A whole request frame for `service/method` with `payload`, and a
    /// bearer token when one is given.
    static func requestFrame(streamID: UInt32, service: String, method: String, payload: some SwiftProtobuf.Message, token: String? = nil) throws -> [UInt8] {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = try payload.serializedData()
        if let token {
            var authorization = Ttrpc_KeyValue()
            authorization.key = "authorization"
            authorization.value = "Bearer \(token)"
            request.metadata = [authorization]
        }
        return frame(streamID: streamID, body: try request.serializedBytes())
    }

    /// The bytes of one whole frame (header and body).
    static func frame(streamID: UInt32, type: MessageType = .request, body: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeFrame(streamID: streamID, type: type, payload: body)
        return Array(buffer.readableBytesView)
    }

    private func receiveBlocking(exactly count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let received = bytes[offset...].withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard received > 0 else { throw Failure(description: "connection closed or timed out after \(offset) of \(count) bytes") }
            offset += received
        }
        return bytes
    }

    /// Everything the server sends until it closes (or the receive timeout passes), as text.
    func receiveAll() async throws -> String {
        try await Self.offPool {
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let received = chunk.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
                guard received > 0 else { break }
                bytes += chunk[..<received]
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Whether the server has closed the connection (waits up to `seconds`).
    func closedByServer(within seconds: Int) async throws -> Bool {
        try await Self.offPool {
            var timeout = timeval(tv_sec: seconds, tv_usec: 0)
            setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var byte: UInt8 = 0
            let received = recv(self.fd, &byte, 1, 0)
            // A close with unread data in the server's buffer arrives as a reset.
            return received == 0 || (received < 0 && errno == ECONNRESET)
        }
    }

    private func receiveFrameBlocking() throws -> (header: FrameHeader, data: [UInt8]) {
        var header = ByteBuffer(bytes: try receiveBlocking(exactly: FrameHeader.size))
        let parsed = header.readFrameHeader()!
        return (parsed, try receiveBlocking(exactly: Int(parsed.length)))
    }

    /// Reads one whole frame and returns its header and raw data.
    func receiveFrame() async throws -> (header: FrameHeader, data: [UInt8]) {
        try await Self.offPool { try self.receiveFrameBlocking() }
    }

    /// Reads `count` response frames on one thread and returns their status codes.
    func receiveResponseCodes(_ count: Int) async throws -> [Int32] {
        try await Self.offPool {
            try (0..<count).map { _ in try Ttrpc_Response(serializedBytes: try self.receiveFrameBlocking().data).status.code }
        }
    }

    /// Reads one response frame and decodes its envelope.
    func receiveResponse() async throws -> (streamID: UInt32, response: Ttrpc_Response) {
        let (header, data) = try await receiveFrame()
        guard header.type == .response else { throw Failure(description: "expected a response frame, got \(header.type)") }
        return (header.streamID, try Ttrpc_Response(serializedBytes: data))
    }
}
