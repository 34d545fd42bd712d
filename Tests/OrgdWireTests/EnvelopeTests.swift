import NIOCore
import OrgdCore
import OrgdProto
import OrgdWire
import Testing

@Suite("Envelope")
struct EnvelopeTests {
    static func read(_ frame: ByteBuffer) throws -> (FrameHeader, Ttrpc_Response) {
        var frame = frame
        let read = frame.readFrameHeader()
        let header = try #require(read)
        #expect(Int(header.length) == frame.readableBytes)
        return (header, try Envelope.decodeResponse(frame))
    }

    @Test("an answer over the frame limit becomes RESOURCE_EXHAUSTED on its stream, not a frame the client must refuse (or a trap)")
    func oversizedAnswer() throws {
        let allocator = ByteBufferAllocator()
        let payload = [UInt8](repeating: 0x41, count: 70_000)
        let (header, response) = try Self.read(Envelope.responseFrame(
            streamID: 7, status: .init(), payload: payload, maximumLength: 65_536, allocator: allocator))
        #expect(header.streamID == 7 && header.type == .response)
        #expect(response.status.code == StatusCode.resourceExhausted.rawValue)
        #expect(response.status.message.contains("more than the frame limit of 65536"))
        #expect(response.payload.isEmpty)

        // Just under the limit goes out whole.
        let (_, small) = try Self.read(Envelope.responseFrame(
            streamID: 9, status: .init(), payload: [UInt8](repeating: 0x41, count: 60_000), maximumLength: 65_536, allocator: allocator))
        #expect(small.status.code == 0 && small.payload.count == 60_000)

        // The default limit is the decoder's default (4 MiB).
        let (_, big) = try Self.read(Envelope.responseFrame(
            streamID: 11, status: .init(), payload: [UInt8](repeating: 0, count: FrameDecoder.defaultMaximumFrameLength), allocator: allocator))
        #expect(big.status.code == StatusCode.resourceExhausted.rawValue)
    }
}
