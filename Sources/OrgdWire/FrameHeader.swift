import NIOCore

/// The 10-byte header in front of every ttrpc frame: data length (excluding
/// the header), stream id, message type and flags, integers big-endian.
public struct FrameHeader: Sendable, Hashable {
    /// Header size on the wire.
    public static let size = 10

    public var length: UInt32
    public var streamID: UInt32
    public var type: MessageType
    public var flags: UInt8

    public init(length: UInt32, streamID: UInt32, type: MessageType, flags: UInt8 = 0) {
        self.length = length
        self.streamID = streamID
        self.type = type
        self.flags = flags
    }
}

/// A ttrpc message type. Unknown values are kept, so that a receiver can skip
/// them (forward compatibility) instead of failing the connection.
public struct MessageType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A call from client to server.
    public static let request = MessageType(rawValue: 0x01)
    /// The answer to a request, on the request's stream id.
    public static let response = MessageType(rawValue: 0x02)
    /// Streaming data (ttrpc 1.2); orgd's unary calls never send it.
    public static let data = MessageType(rawValue: 0x03)

    public var description: String {
        switch self {
        case .request: "request"
        case .response: "response"
        case .data: "data"
        default: "type(\(rawValue))"
        }
    }
}

extension ByteBuffer {
    /// Reads a frame header, or returns nil (reader index untouched) when fewer
    /// than 10 bytes are readable.
    public mutating func readFrameHeader() -> FrameHeader? {
        guard let (length, streamID, type, flags) = readMultipleIntegers(as: (UInt32, UInt32, UInt8, UInt8).self) else {
            return nil
        }
        return FrameHeader(length: length, streamID: streamID, type: MessageType(rawValue: type), flags: flags)
    }

    /// Writes a frame header alone. Whole frames go through `writeFrame`;
    /// this is for a header whose data never follows (tests of frames cut
    /// short or declared too large).
    public mutating func writeFrameHeader(_ header: FrameHeader) {
        writeMultipleIntegers(header.length, header.streamID, header.type.rawValue, header.flags)
    }

    /// Writes one whole frame: the header, with `payload`'s length, then
    /// `payload`. The one way orgd writes a frame — the server's answers, the
    /// client's requests, the tests' raw frames — so the length in the header
    /// is always the length of the data behind it.
    ///
    /// `payload` must fit the header's 32-bit length (a trap otherwise): a
    /// caller whose sizes come from outside checks first and answers with a
    /// status instead.
    @inlinable
    public mutating func writeFrame(streamID: UInt32, type: MessageType, flags: UInt8 = 0, payload: some Collection<UInt8>) {
        let length = payload.count
        reserveCapacity(minimumWritableBytes: FrameHeader.size + length)
        writeFrameHeader(FrameHeader(length: UInt32(length), streamID: streamID, type: type, flags: flags))
        writeBytes(payload)
    }
}
