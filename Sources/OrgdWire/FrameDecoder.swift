import NIOCore

/// What the decoder hands on: a whole frame, or the header of a frame that was
/// too large to accept (its data is being skipped).
public enum InboundFrame: Sendable, Equatable {
    /// A complete frame; `payload` holds exactly `header.length` bytes.
    case frame(FrameHeader, ByteBuffer)
    /// A frame whose declared length exceeds the limit. Its bytes are
    /// discarded as they arrive; the stream should be answered
    /// RESOURCE_EXHAUSTED and the connection goes on.
    case oversized(FrameHeader)
}

/// Fired down the pipeline when a frame starts arriving (`true`) and when
/// that frame is complete (`false`), so the connection can time out a client
/// that starts a frame and never finishes it. The deadline is per frame: a
/// steady stream whose reads always end mid-frame reports `false` as each
/// pending frame completes and `true` for the next, at most once each per read.
/// An oversized frame whose data is still being skipped is pending too: its
/// bytes must arrive within the frame timeout like any other frame's.
///
/// `bufferedBytes` is what the decoder holds of unfinished frames after the
/// read, so the server can count it against its memory budget; it is reported
/// whenever it changes.
public struct FramePending: Sendable, Equatable {
    public var pending: Bool
    public var bufferedBytes: Int
    public init(_ pending: Bool, bufferedBytes: Int = 0) {
        self.pending = pending
        self.bufferedBytes = bufferedBytes
    }
}

/// Splits a byte stream into ttrpc frames.
///
/// The declared length is checked against `maximumFrameLength` as soon as the
/// header is in, before any of the data is buffered, so a peer cannot make the
/// server hold more than one frame's worth of memory. An incomplete frame
/// leaves the reader index where it was.
public struct FrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = InboundFrame

    /// ttrpc's limit: data longer than 4 MiB is refused.
    public static let defaultMaximumFrameLength = 4 << 20

    public let maximumFrameLength: Int
    /// Bytes of an oversized frame still to discard.
    private var bytesToSkip = 0
    /// What was last reported with `FramePending`.
    private var reportedPending = false
    private var reportedBytes = 0

    public init(maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength) {
        precondition(maximumFrameLength >= 0)
        self.maximumFrameLength = maximumFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = decodeFrame(from: &buffer) else {
            report(pending: buffer.readableBytes > 0 || bytesToSkip > 0, bytes: buffer.readableBytes, context: context)
            return .needMoreData
        }
        // The frame that was arriving (if any) is complete: its deadline is
        // over. A refused frame whose data is still to come starts the next.
        report(pending: false, bytes: 0, context: context)
        context.fireChannelRead(wrapInboundOut(frame))
        if bytesToSkip > 0 { report(pending: true, bytes: 0, context: context) }
        return .continue
    }

    private mutating func report(pending: Bool, bytes: Int, context: ChannelHandlerContext) {
        guard pending != reportedPending || bytes != reportedBytes else { return }
        reportedPending = pending
        reportedBytes = bytes
        context.fireUserInboundEventTriggered(FramePending(pending, bufferedBytes: bytes))
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A truncated frame at end of stream can never complete: drop it.
        let state = try decode(context: context, buffer: &buffer)
        if state == .needMoreData {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            bytesToSkip = 0
            report(pending: false, bytes: 0, context: context)
        }
        return state
    }

    /// The decoding step without a channel, for the client, the fuzzer and tests.
    public mutating func decodeFrame(from buffer: inout ByteBuffer) -> InboundFrame? {
        while bytesToSkip > 0 {
            guard buffer.readableBytes > 0 else { return nil }
            let skipped = min(bytesToSkip, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: skipped)
            bytesToSkip -= skipped
        }
        var peek = buffer
        guard let header = peek.readFrameHeader() else { return nil }
        let length = Int(header.length)
        if length > maximumFrameLength {
            buffer = peek
            bytesToSkip = length
            return .oversized(header)
        }
        guard let payload = peek.readSlice(length: length) else { return nil }
        buffer = peek
        return .frame(header, payload)
    }
}
