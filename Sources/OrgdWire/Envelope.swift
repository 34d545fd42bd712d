import Foundation
import NIOCore
import OrgdCore
import OrgdProto
import SwiftProtobuf

/// Serialising the ttrpc envelope (`Request`, `Response`) to and from frames.
public enum Envelope {
    /// Decodes a request envelope from a frame's data.
    public static func decodeRequest(_ buffer: ByteBuffer) throws -> Ttrpc_Request {
        try Ttrpc_Request(serializedBytes: Array(buffer.readableBytesView))
    }

    /// Decodes a response envelope from a frame's data.
    public static func decodeResponse(_ buffer: ByteBuffer) throws -> Ttrpc_Response {
        try Ttrpc_Response(serializedBytes: Array(buffer.readableBytesView))
    }

    /// Serialises any message into a new buffer.
    public static func encode(_ message: some SwiftProtobuf.Message, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let bytes: [UInt8] = try message.serializedBytes()
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return buffer
    }

    /// A whole response frame for `streamID`: header and envelope. An answer
    /// whose envelope would exceed `maximumLength` (the frame limit, which a
    /// ttrpc client enforces on what it reads too; never more than a frame
    /// header can say) is replaced by a RESOURCE_EXHAUSTED answer on the same
    /// stream: the caller learns to ask for less (a smaller page) instead of
    /// getting a frame it must refuse, or a trap.
    public static func responseFrame(
        streamID: UInt32, status: Google_Rpc_Status, payload: [UInt8] = [], metadata: [Ttrpc_KeyValue] = [],
        maximumLength: Int = FrameDecoder.defaultMaximumFrameLength, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var response = Ttrpc_Response()
        response.status = status
        response.payload = Data(payload)
        response.metadata = metadata
        // Serialising a message built in memory cannot fail.
        var bytes: [UInt8] = (try? response.serializedBytes()) ?? []
        let limit = min(maximumLength, Int(UInt32.max))
        if bytes.count > limit {
            var refusal = Ttrpc_Response()
            refusal.status = RPCError(
                .resourceExhausted,
                "the answer is \(bytes.count) bytes, more than the frame limit of \(limit); ask for less (a smaller page_size)"
            ).status
            bytes = (try? refusal.serializedBytes()) ?? []
        }
        var buffer = allocator.buffer(capacity: FrameHeader.size + bytes.count)
        buffer.writeFrame(streamID: streamID, type: .response, payload: bytes)
        return buffer
    }

    /// A response frame carrying an error status.
    public static func errorFrame(streamID: UInt32, error: RPCError, allocator: ByteBufferAllocator) -> ByteBuffer {
        responseFrame(streamID: streamID, status: error.status, allocator: allocator)
    }
}
