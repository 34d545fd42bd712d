import NIOCore
import NIOEmbedded
import NIOTestUtils
import OrgdWire
import Testing

@Suite("FrameDecoder")
struct FrameDecoderTests {
    static func frame(_ streamID: UInt32, _ payload: [UInt8], type: MessageType = .request) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFrame(streamID: streamID, type: type, payload: payload)
        return buffer
    }

    @Test("whole frames come out the same however the bytes are split")
    func verifier() throws {
        let pairs: [(ByteBuffer, [InboundFrame])] = [
            (Self.frame(1, [1, 2, 3]), [.frame(FrameHeader(length: 3, streamID: 1, type: .request), ByteBuffer(bytes: [1, 2, 3]))]),
            (Self.frame(3, []), [.frame(FrameHeader(length: 0, streamID: 3, type: .request), ByteBuffer())]),
            (Self.frame(5, Array(repeating: 7, count: 300), type: .response),
             [.frame(FrameHeader(length: 300, streamID: 5, type: .response), ByteBuffer(bytes: Array(repeating: 7, count: 300)))]),
            (Self.frame(7, [9], type: MessageType(rawValue: 0x7f)), [.frame(FrameHeader(length: 1, streamID: 7, type: MessageType(rawValue: 0x7f)), ByteBuffer(bytes: [9]))]),
        ]
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) { FrameDecoder(maximumFrameLength: 1024) }
    }

    @Test("an oversized frame is reported from its header and its bytes are skipped, byte by byte too")
    func oversizedThenNormal() throws {
        var input = ByteBuffer()
        input.writeFrameHeader(FrameHeader(length: 2000, streamID: 9, type: .request))
        input.writeBytes(Array(repeating: 0xAB, count: 2000))
        input.writeImmutableBuffer(Self.frame(11, [4, 5]))
        for chunkSize in [1, 3, 10, 997, input.readableBytes] {
            var decoder = FrameDecoder(maximumFrameLength: 1024)
            var outputs: [InboundFrame] = []
            var pending = ByteBuffer()
            var source = input
            while source.readableBytes > 0 {
                var chunk = source.readSlice(length: min(chunkSize, source.readableBytes))!
                pending.writeBuffer(&chunk)
                while let frame = decoder.decodeFrame(from: &pending) { outputs.append(frame) }
            }
            #expect(outputs == [
                .oversized(FrameHeader(length: 2000, streamID: 9, type: .request)),
                .frame(FrameHeader(length: 2, streamID: 11, type: .request), ByteBuffer(bytes: [4, 5])),
            ], "chunk size \(chunkSize)")
            #expect(pending.readableBytes == 0)
        }
    }

    @Test("the limit is inclusive: exactly the maximum is accepted, one more is not")
    func limitBoundary() {
        var decoder = FrameDecoder(maximumFrameLength: 16)
        var atLimit = Self.frame(1, Array(repeating: 1, count: 16))
        #expect(decoder.decodeFrame(from: &atLimit) == .frame(FrameHeader(length: 16, streamID: 1, type: .request), ByteBuffer(bytes: Array(repeating: 1, count: 16))))
        var overLimit = ByteBuffer()
        overLimit.writeFrameHeader(FrameHeader(length: 17, streamID: 3, type: .request))
        #expect(decoder.decodeFrame(from: &overLimit) == .oversized(FrameHeader(length: 17, streamID: 3, type: .request)))
    }

    @Test("the default limit is ttrpc's 4 MiB, checked before any data arrives")
    func defaultLimitBeforeBuffering() {
        var decoder = FrameDecoder()
        var header = ByteBuffer()
        header.writeFrameHeader(FrameHeader(length: UInt32(4 << 20) + 1, streamID: 1, type: .request))
        #expect(decoder.decodeFrame(from: &header) == .oversized(FrameHeader(length: UInt32(4 << 20) + 1, streamID: 1, type: .request)))
    }

    @Test("a truncated frame yields nothing and leaves its bytes unread", arguments: [0, 1, 9, 10, 12])
    func truncated(keep: Int) {
        var decoder = FrameDecoder()
        let whole = Self.frame(1, [1, 2, 3, 4])
        var partial = whole.getSlice(at: 0, length: keep)!
        #expect(decoder.decodeFrame(from: &partial) == nil)
        #expect(partial.readableBytes == keep)
    }

    @Test("decodeLast drops a truncated frame at end of stream instead of failing")
    func truncatedAtEOF() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var partial = Self.frame(1, [1, 2, 3, 4])
        partial.moveWriterIndex(to: 12)
        try channel.writeInbound(partial)
        #expect(try channel.readInbound(as: InboundFrame.self) == nil)
        #expect(try channel.finish().isClean)
    }
}
