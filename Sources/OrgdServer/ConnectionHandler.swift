import Logging
import NIOCore
import NIOSSL
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdWire

/// Sent down a connection's pipeline when the server shuts down: stop taking
/// calls, finish those in flight, then close.
struct DrainEvent: Sendable {}

/// The per-connection limits, from the server's configuration.
struct ConnectionLimits: Sendable {
    var maximumFrameLength: Int
    var maximumCalls: Int
    var maximumMetadataBytes: Int
    var maximumMetadataEntries: Int
    var frameTimeout: TimeAmount
    /// How long a connection may go without an authenticated call (or a
    /// health check) before it is closed; nil for none (the Unix socket).
    var authenticationTimeout: TimeAmount?

    init(_ configuration: ServerConfiguration, transport: Transport) {
        maximumFrameLength = configuration.maximumFrameLength
        maximumCalls = configuration.maximumCallsPerConnection
        maximumMetadataBytes = configuration.maximumMetadataBytes
        maximumMetadataEntries = configuration.maximumMetadataEntries
        frameTimeout = configuration.frameTimeout
        authenticationTimeout = transport == .tcp ? configuration.authenticationTimeout : nil
    }
}

/// Serves one connection: validates each frame as containerd's ttrpc server
/// does, runs calls concurrently, and answers each on its own stream as soon
/// as it finishes (so answers may come back out of order).
///
/// Back-pressure: while the connection is not writable (the client is not
/// taking its answers and more than the write buffer's high-water mark is
/// queued), frames already read wait here unstarted and no more are read, so a
/// client that sends without reading cannot make the server hold its answers
/// without bound. Once the client catches up, the waiting frames are started
/// in order and reading resumes.
///
/// Memory: what the decoder holds of unfinished frames and the answers written
/// and not yet taken by the client are counted against the server's
/// `MemoryBudget`; past it the largest holders are closed.
///
/// Ending: on drain (shutdown) or when the client shuts its write side
/// (half-close), calls already read still run, frames waiting behind
/// back-pressure are answered UNAVAILABLE (drain) or started (half-close), and
/// the connection closes only once every answer has been written out.
///
/// All state is touched on the channel's event loop only. Calls run in tasks
/// off the loop (the store's SQLite work runs on the store's own threads).
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct InFlightCall {
        /// The call's task, when it runs in one (writes); reads on the fast
        /// path have none and are not cancelled, being short.
        var task: Task<Void, Never>?
        var deadline: Scheduled<Void>?
    }

    private let dispatcher: Dispatcher
    private let limits: ConnectionLimits
    private let metrics: ServerMetrics
    private let budget: MemoryBudget
    private var account: MemoryBudget.Account?
    /// Bytes of the unfinished frame the decoder holds, as last reported.
    private var frameBytes = 0
    /// Bytes of answers written and not yet handed to the socket.
    private var answerBytes = 0
    /// The client shut its write side: answer what it sent, then close.
    private var inputClosed = false
    /// Whether a call on this connection got past authentication.
    private var authenticated = false
    /// Runs until the first authenticated call, on TCP.
    private var authenticationTimer: Scheduled<Void>?
    /// Set once the connection is closing or closed: frames still in the
    /// decoder (or in TLS's) are not started any more.
    private var closed = false
    /// The server has sent everything (drain) and shut its write side; it
    /// reads on until the client closes, so that unread input does not turn
    /// the close into a reset that would throw away the answers in flight.
    private var outputClosed = false
    /// How long, after shutting its write side at drain, the server waits
    /// for the client to close before closing anyway.
    static let linger: TimeAmount = .seconds(2)
    private var info: ConnectionInfo
    private var logger: Logger
    private var context: ChannelHandlerContext?
    private var lastStreamID: UInt32 = 0
    private var inFlight: [UInt32: InFlightCall] = [:]
    private var draining = false
    /// Runs while a frame has started and not finished.
    private var frameTimer: Scheduled<Void>?
    /// Frames read while the connection was not writable, not yet started.
    private var waitingFrames = CircularBuffer<InboundFrame>()
    /// Whether a read the channel asked for is held back (see back-pressure).
    private var readHeld = false
    /// Guards against starting waiting frames re-entrantly (a write can
    /// change writability while one is being started).
    private var resuming = false

    init(dispatcher: Dispatcher, info: ConnectionInfo, limits: ConnectionLimits, metrics: ServerMetrics,
         budget: MemoryBudget, logger: Logger) {
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.budget = budget
        self.info = info
        self.limits = limits
        var logger = logger
        logger[metadataKey: "connection.id"] = "\(info.connectionID)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if info.transport == .unix, let credentials = PeerCredentials.read(from: context.channel) {
            info.peer = credentials.description
        }
        logger.debug("connection opened", metadata: ["connection.peer": "\(info.peer)", "connection.transport": "\(info.transport)"])
        account = budget.open(channel: context.channel, peer: info.peer, sheddable: info.transport == .tcp)
        if let timeout = limits.authenticationTimeout { armAuthenticationTimer(context: context, in: timeout) }
        context.fireChannelActive()
    }

    /// Closes the connection if no call has got past authentication by then
    /// (a call still running is waited for: it may be the one).
    private func armAuthenticationTimer(context: ChannelHandlerContext, in timeout: TimeAmount, graceLeft: Int = 50) {
        authenticationTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            guard !self.authenticated, let context = self.context else { return }
            // A call already dispatched may be the one that authenticates:
            // wait for it, but only so long (50 × 100 ms).
            if !self.inFlight.isEmpty && graceLeft > 0 {
                self.armAuthenticationTimer(context: context, in: .milliseconds(100), graceLeft: graceLeft - 1)
                return
            }
            self.logger.notice("closing a connection that made no authenticated call in time",
                               metadata: ["connection.peer": "\(self.info.peer)"])
            self.metrics.connectionClosed(reason: .unauthenticated)
            self.closed = true
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        for call in inFlight.values {
            call.task?.cancel()
            call.deadline?.cancel()
            metrics.callEnded()
        }
        inFlight.removeAll()
        while let frame = waitingFrames.popFirst() { release(frame) }
        frameTimer?.cancel()
        authenticationTimer?.cancel()
        if let account { budget.close(account) }
        account = nil
        logger.debug("connection closed")
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if closed || outputClosed { return }
        if draining {
            refuseUnstarted(frame)
            closeIfDrained()
            return
        }
        if waitingFrames.isEmpty && context.channel.isWritable {
            handle(frame, context: context)
            return
        }
        if waitingFrames.isEmpty {
            logger.debug("the client is not taking its answers; reading paused", metadata: ["connection.peer": "\(info.peer)"])
        }
        waitingFrames.append(frame)
        // What waits counts against the memory budget until it starts.
        if let account { budget.change(account, by: Self.heldBytes(frame)) }
        // Behind others that wait (order is kept); if the connection is
        // writable again already, they all go now rather than at the next change.
        resumeIfWritable(context: context)
    }

    /// Holds the channel's reads while answers are backed up.
    func read(context: ChannelHandlerContext) {
        if draining || (waitingFrames.isEmpty && context.channel.isWritable) {
            context.read()
        } else {
            readHeld = true
            resumeIfWritable(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeIfWritable(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Starts the waiting frames, in order, while the connection stays
    /// writable; then lets reading go on.
    private func resumeIfWritable(context: ChannelHandlerContext) {
        guard !resuming && context.channel.isWritable else { return }
        resuming = true
        defer { resuming = false }
        while !closed, context.channel.isWritable, let frame = waitingFrames.popFirst() {
            release(frame)
            handle(frame, context: context)
        }
        guard waitingFrames.isEmpty && context.channel.isWritable else { return }
        if readHeld {
            readHeld = false
            logger.debug("the client caught up; reading resumed", metadata: ["connection.peer": "\(info.peer)"])
            context.read()
        }
        closeIfDrained()
    }

    /// The bytes a waiting frame keeps alive, with something for the entry.
    private static func heldBytes(_ frame: InboundFrame) -> Int {
        switch frame {
        case .frame(_, let payload): payload.readableBytes + 64
        case .oversized: 64
        }
    }

    /// A waiting frame leaves the queue: its bytes leave the budget.
    private func release(_ frame: InboundFrame) {
        if let account { budget.change(account, by: -Self.heldBytes(frame)) }
    }

    private func handle(_ frame: InboundFrame, context: ChannelHandlerContext) {
        guard !closed else { return }
        switch frame {
        case .oversized(let header):
            // ttrpc answers on the offending stream and carries on.
            respond(streamID: header.streamID, error: RPCError(
                .resourceExhausted,
                "message length \(header.length) exceed maximum message size of \(limits.maximumFrameLength)"
            ))
        case .frame(let header, let payload):
            // Types other than request are skipped, for forward compatibility.
            guard header.type == .request else { return }
            // The metadata limits are checked on the bytes, before decoding
            // builds a value per entry.
            switch EnvelopeScan.check(payload, maximumEntries: limits.maximumMetadataEntries, maximumBytes: limits.maximumMetadataBytes) {
            case .fits:
                break
            case .tooManyEntries(let limit):
                respond(streamID: header.streamID, error: RPCError(
                    .resourceExhausted, "metadata has more than \(limit) entries; the limit is \(limit)"))
                return
            case .tooManyBytes(let bytes, let limit):
                respond(streamID: header.streamID, error: RPCError(
                    .resourceExhausted, "metadata is at least \(bytes) bytes; the limit is \(limit)"))
                return
            case .tooManyFields(let limit):
                respond(streamID: header.streamID, error: RPCError(
                    .invalidArgument, "unmarshal request error: more than \(limit) fields besides metadata in the envelope"))
                return
            case .malformed(let why):
                respond(streamID: header.streamID, error: RPCError(.invalidArgument, "unmarshal request error: \(why)"))
                return
            }
            let request: Ttrpc_Request
            do {
                request = try Envelope.decodeRequest(payload)
            } catch {
                respond(streamID: header.streamID, error: RPCError(.invalidArgument, "unmarshal request error: \(error)"))
                return
            }
            guard header.streamID % 2 == 1 else {
                respond(streamID: header.streamID, error: RPCError(
                    .invalidArgument, "StreamID must be odd for client initiated streams"))
                return
            }
            guard header.streamID > lastStreamID else {
                respond(streamID: header.streamID, error: RPCError(
                    .invalidArgument, "StreamID cannot be re-used and must increment"))
                return
            }
            lastStreamID = header.streamID
            guard inFlight.count < limits.maximumCalls else {
                respond(streamID: header.streamID, error: RPCError(
                    .resourceExhausted, "too many calls in flight on this connection (the limit is \(limits.maximumCalls))"))
                return
            }
            guard request.timeoutNano >= 0 else {
                // A negative timeout has already passed (as in Go's context.WithTimeout): don't run it.
                respond(streamID: header.streamID, error: RPCError(.deadlineExceeded, "the call's deadline (timeout_nano) passed"))
                return
            }
            guard !draining else {
                respond(streamID: header.streamID, error: RPCError(.unavailable, "the server is shutting down"))
                return
            }
            start(request, streamID: header.streamID, context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is DrainEvent:
            draining = true
            // Frames held back by back-pressure never started: say so, and
            // read on, answering what the client sent before the drain the
            // same way, until the connection closes.
            while let frame = waitingFrames.popFirst() {
                release(frame)
                refuseUnstarted(frame)
            }
            if readHeld {
                readHeld = false
                context.read()
            }
            closeIfDrained()
        case ChannelEvent.inputClosed:
            // Half-close: the client has sent all it will; answer it all.
            inputClosed = true
            closeIfDrained()
        case ChannelEvent.outputClosed:
            break
        case let pending as FramePending:
            if let account, pending.bufferedBytes != frameBytes {
                budget.change(account, by: pending.bufferedBytes - frameBytes)
                frameBytes = pending.bufferedBytes
            }
            if pending.pending != (frameTimer != nil) || !pending.pending {
                frameTimer?.cancel()
                frameTimer = nil
                if pending.pending { armFrameTimer(context: context) }
            }
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            // Quiet and with nothing running (or not taking its answers all
            // that time): let it go.
            if inFlight.isEmpty {
                if waitingFrames.isEmpty {
                    logger.debug("closing an idle connection")
                } else {
                    logger.notice("closing a connection that has not taken its answers for the idle timeout",
                                  metadata: ["connection.peer": "\(info.peer)", "calls.waiting": "\(waitingFrames.count)"])
                }
                metrics.connectionClosed(reason: .idle)
                closed = true
                context.close(promise: nil)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func armFrameTimer(context: ChannelHandlerContext) {
        frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: limits.frameTimeout) {
            // While the server holds reads, the rest of the frame is not the client's to send yet.
            if self.readHeld || !self.waitingFrames.isEmpty {
                if let context = self.context { self.armFrameTimer(context: context) }
                return
            }
            self.logger.notice("closing a connection whose frame did not arrive in time",
                               metadata: ["connection.peer": "\(self.info.peer)"])
            self.metrics.connectionClosed(reason: .frameTimeout)
            self.closed = true
            self.context?.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS client that half-closes sends no close_notify first; the end
        // of its input follows as an event, and its answers are still due.
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return }
        logger.debug("connection error, closing", metadata: ["error": "\(error)"])
        closed = true
        context.close(promise: nil)
    }

    private func start(_ request: Ttrpc_Request, streamID: UInt32, context: ChannelHandlerContext) {
        guard !closed else { return }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        let dispatcher = self.dispatcher
        let info = self.info
        // The answer always comes back through `loop.execute`, so never
        // before this function has recorded the call.
        let task = dispatcher.dispatch(request, connection: info) { outcome in
            loop.execute { bound.value.finish(streamID: streamID, outcome: outcome) }
        }
        var deadline: Scheduled<Void>?
        if request.timeoutNano != 0 {
            deadline = loop.assumeIsolated().scheduleTask(in: .nanoseconds(request.timeoutNano)) {
                self.expire(streamID: streamID)
            }
        }
        inFlight[streamID] = InFlightCall(task: task, deadline: deadline)
        metrics.callStarted()
    }

    private func expire(streamID: UInt32) {
        guard let call = inFlight.removeValue(forKey: streamID) else { return }
        metrics.callEnded()
        call.task?.cancel()
        respond(streamID: streamID, error: RPCError(.deadlineExceeded, "the call's deadline (timeout_nano) passed"))
        closeIfDrained()
    }

    private func finish(streamID: UInt32, outcome: CallOutcome) {
        // Absent when the deadline already answered this stream.
        guard let call = inFlight.removeValue(forKey: streamID) else { return }
        metrics.callEnded()
        call.deadline?.cancel()
        if outcome.authenticated && !authenticated {
            authenticated = true
            authenticationTimer?.cancel()
            authenticationTimer = nil
        }
        guard let context else { return }
        let frame = Envelope.responseFrame(
            streamID: streamID, status: outcome.status, payload: outcome.payload,
            maximumLength: limits.maximumFrameLength, allocator: context.channel.allocator
        )
        send(frame, context: context)
        closeIfDrained()
    }

    private func respond(streamID: UInt32, error: RPCError) {
        guard let context, !closed, !outputClosed else { return }
        logger.debug("frame refused", metadata: ["rpc.stream_id": "\(streamID)", "rpc.code": "\(error.code)"])
        send(Envelope.errorFrame(streamID: streamID, error: error, allocator: context.channel.allocator), context: context)
    }

    /// Answers a frame that was read but never started, at drain.
    private func refuseUnstarted(_ frame: InboundFrame) {
        switch frame {
        case .frame(let header, _) where header.type == .request, .oversized(let header):
            respond(streamID: header.streamID, error: RPCError(.unavailable, "the server is shutting down; the call did not run"))
        case .frame:
            break
        }
    }

    /// Writes an answer, counting its bytes against the budget until the
    /// socket has taken them (which is also what drain waits for).
    private func send(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let bytes = frame.readableBytes
        answerBytes += bytes
        if let account { budget.change(account, by: bytes) }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in
            self.answerBytes -= bytes
            if let account = self.account { self.budget.change(account, by: -bytes) }
            self.closeIfDrained()
        }
        context.writeAndFlush(wrapOutboundOut(frame), promise: written)
    }

    /// Closes once the connection is ending (drain or half-close) and every
    /// call read has been answered and written out. At drain, with the
    /// client's side still open, the server first shuts its own write side
    /// and reads on (discarding) until the client closes, or the drain timeout
    /// closes it: closing with unread input would reset the connection and
    /// lose answers still in the kernel's buffers.
    private func closeIfDrained() {
        guard draining || inputClosed, inFlight.isEmpty, waitingFrames.isEmpty, answerBytes == 0, !closed,
              let context else { return }
        if inputClosed {
            closed = true
            context.close(promise: nil)
        } else if !outputClosed {
            outputClosed = true
            context.close(mode: .output, promise: nil)
            if readHeld {
                readHeld = false
                context.read()
            }
            // A client that never closes its side is not waited for long.
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.linger) {
                guard !self.closed, let context = self.context else { return }
                self.closed = true
                context.close(promise: nil)
            }
        }
    }
}
