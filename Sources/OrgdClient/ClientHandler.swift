import NIOCore
import OrgdCore
import OrgdProto
import OrgdWire

/// A call on its way out: the envelope, and where its response goes.
struct PendingCall: Sendable {
    var request: Ttrpc_Request
    var promise: EventLoopPromise<Ttrpc_Response>
    /// When the client gives up waiting, if ever.
    var deadline: TimeAmount?
}

/// Assigns each outgoing call the next odd stream id, and completes the
/// call's promise when the response for that stream arrives, in any order.
final class ClientHandler: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = PendingCall
    typealias OutboundOut = ByteBuffer

    private var nextStreamID: UInt32 = 1
    private var pending: [UInt32: (promise: EventLoopPromise<Ttrpc_Response>, timer: Scheduled<Void>?)] = [:]
    private var closed = false
    /// What closed the connection, when an error did (e.g. a TLS alert), for
    /// the calls it fails.
    private var closingError: Error?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        guard !closed else {
            call.promise.fail(RPCError(.unavailable, OrgdConnection.closedBeforeSending))
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        guard nextStreamID < UInt32.max - 2 else {
            call.promise.fail(RPCError(.resourceExhausted, "stream ids exhausted on this connection; reconnect"))
            return
        }
        let streamID = nextStreamID
        nextStreamID += 2
        let body: [UInt8]
        do {
            body = try call.request.serializedBytes()
        } catch {
            call.promise.fail(RPCError(.internal, "could not serialise the request: \(error)"))
            return
        }
        // A frame header holds a 32-bit length: a bigger request is refused here, not trapped on.
        guard UInt32(exactly: body.count) != nil else {
            call.promise.fail(RPCError(.resourceExhausted, "the request is \(body.count) bytes, more than a frame can carry"))
            promise?.fail(ChannelError.writeMessageTooLarge)
            return
        }
        var timer: Scheduled<Void>?
        if let deadline = call.deadline {
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: deadline) { [self] in
                pending.removeValue(forKey: streamID)?.promise.fail(
                    RPCError(.deadlineExceeded, "no answer before the deadline"))
            }
        }
        pending[streamID] = (call.promise, timer)
        var buffer = context.channel.allocator.buffer(capacity: FrameHeader.size + body.count)
        buffer.writeFrame(streamID: streamID, type: .request, payload: body)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .oversized(let header):
            complete(header.streamID, with: .failure(RPCError(
                .resourceExhausted, "the response (\(header.length) bytes) is larger than this client accepts")))
        case .frame(let header, let payload):
            guard header.type == .response else { return }
            do {
                complete(header.streamID, with: .success(try Envelope.decodeResponse(payload)))
            } catch {
                complete(header.streamID, with: .failure(RPCError(.internal, "undecodable response envelope: \(error)")))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        let calls = pending
        pending.removeAll()
        for (_, call) in calls {
            call.timer?.cancel()
            call.promise.fail(RPCError(.unavailable, "the connection closed before the answer arrived" + (closingError.map { ": \(ConnectionFailure.reason($0))" } ?? "")))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if closingError == nil { closingError = error }
        context.close(promise: nil)
    }

    private func complete(_ streamID: UInt32, with result: Result<Ttrpc_Response, Error>) {
        guard let call = pending.removeValue(forKey: streamID) else { return }
        call.timer?.cancel()
        call.promise.completeWith(result)
    }
}
