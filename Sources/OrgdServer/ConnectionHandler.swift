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

    init(maximumFrameLength: Int, maximumCalls: Int, maximumMetadataBytes: Int, maximumMetadataEntries: Int,
         frameTimeout: TimeAmount, authenticationTimeout: TimeAmount?) {
        self.maximumFrameLength = maximumFrameLength
        self.maximumCalls = maximumCalls
        self.maximumMetadataBytes = maximumMetadataBytes
        self.maximumMetadataEntries = maximumMetadataEntries
        self.frameTimeout = frameTimeout
        self.authenticationTimeout = authenticationTimeout
    }

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
/// Memory: what the decoder holds of unfinished frames, frames waiting behind
/// back-pressure, and the answers written and not yet taken by the client are
/// counted against the server's `MemoryBudget`; past it the largest holders
/// are closed.
///
/// Ending: on drain (shutdown) or when the client shuts its write side
/// (half-close), calls already read still run, frames waiting behind
/// back-pressure are answered UNAVAILABLE (drain) or started (half-close), and
/// the connection closes only once every answer has been written out.
///
/// Every one of those decisions is `ConnectionStateMachine`'s: this handler
/// turns NIO's events into its events, and its actions into NIO calls
/// (writes, reads, closes, timers), metrics, logs and the memory budget.
///
/// All state is touched on the channel's event loop only. Calls run in tasks
/// off the loop (the store's SQLite work runs on the store's own threads).
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = InboundFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// What the handler keeps of a call in flight.
    struct InFlightCall {
        /// The call's task, when it runs in one (writes); reads on the fast
        /// path have none and are not cancelled, being short.
        var task: Task<Void, Never>?
        var deadline: Scheduled<Void>?
    }

    typealias StateMachine = ConnectionStateMachine<InFlightCall>

    /// How long, after shutting its write side at drain, the server waits
    /// for the client to close before closing anyway.
    static let linger: TimeAmount = .seconds(2)

    private let dispatcher: Dispatcher
    private let limits: ConnectionLimits
    private let metrics: ServerMetrics
    private let budget: MemoryBudget
    private var machine: StateMachine
    private var account: MemoryBudget.Account?
    private var info: ConnectionInfo
    private var logger: Logger
    private var context: ChannelHandlerContext?
    /// Runs while a frame has started and not finished.
    private var frameTimer: Scheduled<Void>?
    /// Runs until the first authenticated call, on TCP.
    private var authenticationTimer: Scheduled<Void>?
    /// Answers written on this loop and not flushed yet: they go out in one
    /// flush at the end of the read burst (or of a resumption).
    private var unflushed = false

    init(dispatcher: Dispatcher, info: ConnectionInfo, limits: ConnectionLimits, metrics: ServerMetrics,
         budget: MemoryBudget, logger: Logger) {
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.budget = budget
        self.info = info
        self.limits = limits
        self.machine = StateMachine(limits: limits)
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

    // MARK: - Opening and closing

    func channelActive(context: ChannelHandlerContext) {
        if info.transport == .unix, let credentials = PeerCredentials.read(from: context.channel) {
            info.peer = credentials.description
        }
        logger.debug("connection opened", metadata: ["connection.peer": "\(info.peer)", "connection.transport": "\(info.transport)"])
        account = budget.open(channel: context.channel, peer: info.peer, sheddable: info.transport == .tcp)
        if let timeout = machine.connectionOpened() { startAuthenticationTimer(context: context, in: timeout) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let leftovers = machine.connectionClosed()
        for call in leftovers.calls.values {
            call.task?.cancel()
            call.deadline?.cancel()
            metrics.callEnded()
        }
        for frame in leftovers.unstarted { release(frame) }
        frameTimer?.cancel()
        authenticationTimer?.cancel()
        if let account { budget.close(account) }
        account = nil
        logger.debug("connection closed")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A TLS client that half-closes sends no close_notify first; the end
        // of its input follows as an event, and its answers are still due.
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return }
        logger.debug("connection error, closing", metadata: ["error": "\(error)"])
        perform(machine.connectionFailed(), context: context)
    }

    // MARK: - Reading and back-pressure

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch machine.frameRead(frame, writable: context.channel.isWritable) {
        case .handle(let action):
            perform(action, context: context)
        case .hold(let first):
            if first {
                logger.debug("the client is not taking its answers; reading paused", metadata: ["connection.peer": "\(info.peer)"])
            }
            // What waits counts against the memory budget until it starts.
            if let account { budget.change(account, by: Self.heldBytes(frame)) }
            // If the connection is writable again already, the waiting
            // frames all go now rather than at the next change.
            resumeIfWritable(context: context)
        case .close(let closing):
            perform(closing, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        if let closing = machine.drainReadSettled() { perform(closing, context: context) }
        context.fireChannelReadComplete()
    }

    private func flushIfNeeded(context: ChannelHandlerContext) {
        guard unflushed else { return }
        unflushed = false
        context.flush()
    }

    /// Holds the channel's reads while answers are backed up.
    func read(context: ChannelHandlerContext) {
        switch machine.readRequested(writable: context.channel.isWritable) {
        case .read: context.read()
        case .hold: resumeIfWritable(context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        resumeIfWritable(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// Starts the waiting frames, in order, while the connection stays
    /// writable; then lets reading go on.
    private func resumeIfWritable(context: ChannelHandlerContext) {
        defer { flushIfNeeded(context: context) }
        while true {
            switch machine.resume(writable: context.channel.isWritable) {
            case .none:
                return
            case .dequeued(let frame, let action):
                release(frame)
                perform(action, context: context)
            case .caughtUp(let resumeReading, let closing):
                if resumeReading {
                    logger.debug("the client caught up; reading resumed", metadata: ["connection.peer": "\(info.peer)"])
                    context.read()
                }
                if let closing { perform(closing, context: context) }
                return
            }
        }
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

    // MARK: - Events from the pipeline

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Frames decoded at the end of input come without a read-complete.
        flushIfNeeded(context: context)
        switch event {
        case is DrainEvent:
            let drain = machine.drainRequested()
            for frame in drain.unstarted {
                release(frame)
                if let streamID = StateMachine.unstartedStream(of: frame) {
                    respond(streamID: streamID, error: StateMachine.unstartedRefusal, context: context)
                }
            }
            if drain.resumeReading { context.read() }
            if drain.awaitRead {
                context.eventLoop.assumeIsolated().scheduleTask(in: StateMachine.drainReadWait) {
                    guard let closing = self.machine.drainReadSettled(), let context = self.context else { return }
                    self.perform(closing, context: context)
                }
            }
            if let closing = drain.closing { perform(closing, context: context) }
        case ChannelEvent.inputClosed:
            // Half-close: the client has sent all it will; answer it all.
            if let closing = machine.inputClosed() { perform(closing, context: context) }
        case ChannelEvent.outputClosed:
            break
        case let pending as FramePending:
            let (change, timer) = machine.framePending(pending)
            if let account, change != 0 { budget.change(account, by: change) }
            switch timer {
            case .keep:
                break
            case .cancel:
                frameTimer?.cancel()
                frameTimer = nil
            case .start(let timeout):
                frameTimer?.cancel()
                startFrameTimer(context: context, in: timeout)
            }
        case let idle as IdleStateHandler.IdleStateEvent where idle == .read:
            switch machine.idleTimedOut() {
            case .none:
                break
            case .close(let waitingCalls):
                if waitingCalls == 0 {
                    logger.debug("closing an idle connection")
                } else {
                    logger.notice("closing a connection that has not taken its answers for the idle timeout",
                                  metadata: ["connection.peer": "\(info.peer)", "calls.waiting": "\(waitingCalls)"])
                }
                metrics.connectionClosed(reason: .idle)
                context.close(promise: nil)
            }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    // MARK: - Timers

    private func startFrameTimer(context: ChannelHandlerContext, in timeout: TimeAmount) {
        frameTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            switch self.machine.frameTimerFired() {
            case .none:
                break
            case .rearm(let timeout):
                if let context = self.context { self.startFrameTimer(context: context, in: timeout) }
            case .close:
                self.logger.notice("closing a connection whose frame did not arrive in time",
                                   metadata: ["connection.peer": "\(self.info.peer)"])
                self.metrics.connectionClosed(reason: .frameTimeout)
                self.context?.close(promise: nil)
            }
        }
    }

    /// Closes the connection if no call has got past authentication by then.
    private func startAuthenticationTimer(context: ChannelHandlerContext, in timeout: TimeAmount) {
        authenticationTimer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            switch self.machine.authenticationTimerFired() {
            case .none:
                break
            case .rearm(let timeout):
                if let context = self.context { self.startAuthenticationTimer(context: context, in: timeout) }
            case .close:
                self.logger.notice("closing a connection that made no authenticated call in time",
                                   metadata: ["connection.peer": "\(self.info.peer)"])
                self.metrics.connectionClosed(reason: .unauthenticated)
                self.context?.close(promise: nil)
            }
        }
    }

    // MARK: - Calls

    private func perform(_ action: StateMachine.FrameAction, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .startCall(let streamID, let request, let deadline):
            start(request, streamID: streamID, deadline: deadline, context: context)
        case .refuse(let streamID, let error):
            respond(streamID: streamID, error: error, context: context)
        }
    }

    private func start(_ request: Ttrpc_Request, streamID: UInt32, deadline: TimeAmount?, context: ChannelHandlerContext) {
        // Run to completion: a call the access index answers is answered
        // here, on this loop, and written with the burst's other answers.
        if let outcome = dispatcher.answerFromIndex(request, connection: info) {
            machine.callStarted(streamID: streamID, call: InFlightCall(task: nil, deadline: nil))
            metrics.callStarted()
            answered(streamID: streamID, outcome: outcome, flush: false)
            return
        }
        let loop = context.eventLoop
        let bound = NIOLoopBound(self, eventLoop: loop)
        // The answer always comes back through `loop.execute`, so never
        // before the machine has recorded the call.
        let task = dispatcher.dispatch(request, connection: info, fromIndex: false) { outcome in
            loop.execute { bound.value.answered(streamID: streamID, outcome: outcome) }
        }
        let timer = deadline.map { deadline in
            loop.assumeIsolated().scheduleTask(in: deadline) { self.expire(streamID: streamID) }
        }
        machine.callStarted(streamID: streamID, call: InFlightCall(task: task, deadline: timer))
        metrics.callStarted()
    }

    private func expire(streamID: UInt32) {
        switch machine.deadlineFired(streamID: streamID) {
        case .none:
            break
        case .expire(let call, let answer):
            metrics.callEnded()
            call.task?.cancel()
            if answer { respond(streamID: streamID, error: StateMachine.deadlineExceeded, context: context) }
        }
    }

    private func answered(streamID: UInt32, outcome: CallOutcome, flush: Bool = true) {
        switch machine.callAnswered(streamID: streamID, authenticated: outcome.authenticated) {
        case .none:
            break
        case .drop(let call):
            metrics.callEnded()
            call.deadline?.cancel()
        case .write(let call, let cancelAuthenticationTimer):
            metrics.callEnded()
            call.deadline?.cancel()
            if cancelAuthenticationTimer {
                authenticationTimer?.cancel()
                authenticationTimer = nil
            }
            guard let context else {
                _ = machine.answerWritten()
                return
            }
            let frame = Envelope.responseFrame(
                streamID: streamID, status: outcome.status, payload: outcome.payload, metadata: Self.metadata(of: outcome),
                maximumLength: limits.maximumFrameLength, allocator: context.channel.allocator
            )
            send(frame, context: context, flush: flush)
        }
    }

    /// The answer's metadata: a write's consistency token.
    private static func metadata(of outcome: CallOutcome) -> [Ttrpc_KeyValue] {
        guard let token = outcome.consistencyToken else { return [] }
        var entry = Ttrpc_KeyValue()
        entry.key = ConsistencyToken.metadataKey
        entry.value = token
        return [entry]
    }

    // MARK: - Writing and ending

    /// Writes an error answer the machine asked for.
    private func respond(streamID: UInt32, error: RPCError, context: ChannelHandlerContext?) {
        guard let context else {
            _ = machine.answerWritten()
            return
        }
        logger.debug("frame refused", metadata: ["rpc.stream_id": "\(streamID)", "rpc.code": "\(error.code)"])
        send(Envelope.errorFrame(streamID: streamID, error: error, allocator: context.channel.allocator), context: context)
    }

    /// Writes an answer, counting its bytes against the budget until the
    /// socket has taken them, and telling the machine once it has (which is
    /// what drain and half-close wait for).
    private func send(_ frame: ByteBuffer, context: ChannelHandlerContext, flush: Bool = true) {
        let bytes = frame.readableBytes
        if let account { budget.change(account, by: bytes) }
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.assumeIsolated().whenComplete { _ in
            if let account = self.account { self.budget.change(account, by: -bytes) }
            let closing = self.machine.answerWritten()
            if let closing, let context = self.context { self.perform(closing, context: context) }
        }
        if flush {
            context.writeAndFlush(wrapOutboundOut(frame), promise: written)
        } else {
            context.write(wrapOutboundOut(frame), promise: written)
            unflushed = true
        }
    }

    /// Ends the connection as the machine says. At drain, with the client's
    /// side still open, the server first shuts its own write side and reads
    /// on (discarding) until the client closes, or the linger passes:
    /// closing with unread input would reset the connection and lose
    /// answers still in the kernel's buffers.
    private func perform(_ closing: StateMachine.Closing, context: ChannelHandlerContext) {
        flushIfNeeded(context: context)
        switch closing {
        case .close:
            context.close(promise: nil)
        case .shutOutput(let resumeReading):
            context.close(mode: .output, promise: nil)
            if resumeReading { context.read() }
            // A client that never closes its side is not waited for long.
            context.eventLoop.assumeIsolated().scheduleTask(in: Self.linger) {
                guard self.machine.lingerExpired() != nil, let context = self.context else { return }
                context.close(promise: nil)
            }
        }
    }
}
