import NIOCore

/// A frame to send: stream id, type, flags and the serialized envelope.
public struct OutboundFrame: Sendable, Equatable {
    public var streamID: UInt32
    public var type: MessageType
    public var flags: UInt8
    public var payload: ByteBuffer

    public init(streamID: UInt32, type: MessageType, flags: UInt8 = 0, payload: ByteBuffer) {
        self.streamID = streamID
        self.type = type
        self.flags = flags
        self.payload = payload
    }
}

/// Writes frames: the 10-byte header, then the data.
public struct FrameEncoder: MessageToByteEncoder {
    public typealias OutboundIn = OutboundFrame

    public init() {}

    public func encode(data: OutboundFrame, out: inout ByteBuffer) throws {
        out.writeFrame(streamID: data.streamID, type: data.type, flags: data.flags, payload: data.payload)
    }
}
