import NIOCore
import OrgdCore
import OrgdProto
import OrgdWire

/// Everything one ttrpc connection decides, as a value: which frames start
/// calls and which are refused, back-pressure, drain, half-close, the frame,
/// authentication and idle timers. Each event the connection sees is a
/// mutating method that returns what to do; `ConnectionHandler` only turns
/// NIO's events into these calls and the actions into NIO calls, so every
/// rule here can be tested without a socket (the shape of async-http-client's
/// `HTTPConnectionPool.StateMachine` and grpc-swift-nio-transport's
/// `ServerConnectionManagementHandler.StateMachine`).
///
/// `Call` is what the handler keeps for a call in flight (its task and
/// deadline timer); the machine hands it back when the call is over, so a
/// call costs one dictionary entry, as before.
///
/// Every answer the machine asks for (`refuse`, `write`, `expire` with an
/// answer) is counted as unwritten until the handler reports it written with
/// `answerWritten()`: drain and half-close close only once that count is zero.
struct ConnectionStateMachine<Call> {
    /// Where the connection is in its life.
    enum Phase: Equatable {
        /// Reading frames and running calls.
        case serving
        /// The server is shutting down: calls in flight finish, nothing new
        /// starts (what is read is answered UNAVAILABLE), and once every
        /// answer is written the server shuts its write side.
        case draining
        /// The client shut its write side: everything it sent is answered,
        /// then the connection closes; `draining` when the server is shutting
        /// down too (nothing new starts).
        case halfClosed(draining: Bool)
        /// Drained: the server shut its write side and reads on, discarding,
        /// until the client closes (or the linger passes), so that unread input
        /// does not turn the close into a reset that loses answers in flight.
        case outputClosed
        /// Closing or closed: nothing starts and nothing is written any more.
        case closed
    }

    /// Whether the connection has made a call that got past authentication.
    enum Authentication: Equatable {
        /// No timer (the Unix socket).
        case notRequired
        /// The timer runs; when it fires with calls in flight (one of them
        /// may be the one that authenticates) it is extended, `graceLeft` times more.
        case pending(graceLeft: Int)
        case authenticated
    }

    /// How the connection ends, once everything is answered and written.
    enum Closing: Equatable {
        /// Close the connection.
        case close
        /// Shut the server's write side and read on (issuing the read that
        /// was held back, if `resumeReading`); close when the client closes,
        /// or at `lingerExpired()`.
        case shutOutput(resumeReading: Bool)
    }

    /// What to do with a frame that is taken (not held back).
    enum FrameAction {
        /// Nothing: the frame is not a request (skipped, for forward
        /// compatibility), or the connection is closing.
        case none
        /// Dispatch the call, then report it with `callStarted`; schedule
        /// `deadlineFired` after `deadline` when there is one.
        case startCall(streamID: UInt32, request: Ttrpc_Request, deadline: TimeAmount?)
        /// Write this error answer on the stream (counted as unwritten).
        case refuse(streamID: UInt32, error: RPCError)
    }

    /// What to do with a frame just read.
    enum ReadFrameAction {
        case handle(FrameAction)
        /// The frame waits, unstarted, behind back-pressure (count its bytes
        /// against the memory budget); `first`: it is the first to wait, so
        /// reading has just paused. Then call `resume` (the connection may be
        /// writable again already).
        case hold(first: Bool)
        /// Draining, the frame needed no answer, and all is answered.
        case close(Closing)
    }

    /// What to do when the channel asks to read more.
    enum ReadAction: Equatable {
        /// Read.
        case read
        /// Hold the read back (answers are backed up); call `resume`.
        case hold
    }

    /// One step of starting what waited behind back-pressure.
    enum ResumeAction {
        /// Not writable, or closing: nothing to do now.
        case none
        /// A waiting frame leaves the queue (release its bytes from the
        /// budget), then do `action`; then call `resume` again.
        case dequeued(InboundFrame, FrameAction)
        /// Nothing waits: issue the held-back read if `resumeReading`, then
        /// end the connection as `closing` says, if it says.
        case caughtUp(resumeReading: Bool, closing: Closing?)
    }

    /// What to do when a call's answer is ready.
    enum AnswerAction {
        /// Write the answer; the call is over (cancel its deadline timer), and
        /// so is the authentication timer when `cancelAuthenticationTimer`.
        case write(Call, cancelAuthenticationTimer: Bool)
        /// The connection is closing: the call is over, its answer is dropped.
        case drop(Call)
        /// The stream was answered already (its deadline passed), or the
        /// connection is gone: nothing to do.
        case none
    }

    /// What to do when a call's deadline passes.
    enum DeadlineAction {
        /// The call is over: cancel its task, and write DEADLINE_EXCEEDED
        /// (`deadlineExceeded`) when `answer` (counted as unwritten).
        case expire(Call, answer: Bool)
        /// The call was answered already.
        case none
    }

    /// What to do when the drain (server shutdown) begins.
    struct DrainAction {
        /// Frames that waited behind back-pressure and never started: release
        /// each from the budget, and answer those `unstartedStream(of:)` names
        /// UNAVAILABLE (`unstartedRefusal`; counted as unwritten).
        var unstarted: CircularBuffer<InboundFrame>
        /// Issue the read that was held back.
        var resumeReading: Bool
        /// Wait for a read to complete (`drainReadSettled`), at most `drainReadWait`.
        var awaitRead: Bool
        var closing: Closing?
    }

    /// What to do when the frame or the authentication timer fires.
    enum TimerAction: Equatable {
        /// Nothing (the connection is closing, or the timer is moot).
        case none
        /// Not yet: run the timer again for this long.
        case rearm(TimeAmount)
        /// Close the connection (log and count why).
        case close
    }

    /// What to do with the frame timer when the decoder reports a frame in progress.
    enum FrameTimerChange: Equatable {
        /// Leave it running (or not running) as it is.
        case keep
        /// A frame started: start the timer for `frameTimeout`.
        case start(TimeAmount)
        /// No frame is in progress: cancel it.
        case cancel
    }

    /// What to do when the connection has been quiet for the idle timeout.
    enum IdleAction: Equatable {
        /// Calls are running: keep it.
        case none
        /// Close it; `waitingCalls` frames were waiting for the client to take
        /// its answers (worth a notice rather than a debug line).
        case close(waitingCalls: Int)
    }

    /// What was still held when the connection closed.
    struct Leftovers {
        /// Calls in flight: cancel each (and its deadline).
        var calls: [UInt32: Call]
        /// Frames waiting behind back-pressure: release each from the budget.
        var unstarted: CircularBuffer<InboundFrame>
    }

    /// How many times, 100 ms each, the authentication timer waits for calls
    /// in flight that may yet authenticate.
    static var authenticationGrace: Int { 50 }
    static var authenticationGraceStep: TimeAmount { .milliseconds(100) }

    static var deadlineExceeded: RPCError { RPCError(.deadlineExceeded, "the call's deadline (timeout_nano) passed") }
    static var unstartedRefusal: RPCError { RPCError(.unavailable, "the server is shutting down; the call did not run") }

    private(set) var phase: Phase = .serving
    private(set) var authentication: Authentication
    private let limits: ConnectionLimits
    /// Calls started and not yet over, by stream.
    private var inFlight: [UInt32: Call] = [:]
    /// Frames read while the connection was not writable, not yet started, in order.
    private var waiting = CircularBuffer<InboundFrame>()
    /// Whether a read the channel asked for is held back.
    private var readHeld = false
    /// The drain began with the client's side open and a read held back
    /// (answers were backed up): what the client sent before it is likely in
    /// the socket still, and is read (and refused) before the server shuts
    /// its side. Without this, NIO, which handles a connection's write event
    /// before its read event, wrote the last answer and shut the output
    /// first, and those calls went unanswered. Cleared when a read completes,
    /// or when the wait for one runs out (`drainReadWait`: nothing was
    /// there). An idle connection is not kept waiting: its output is shut at
    /// once, so a client about to send sees the end before it does and sends
    /// to another daemon instead (a wait here made clients send into a
    /// connection about to end: "may have run").
    private var drainReadPending = false
    /// Answers asked for and not yet reported written.
    private var unwrittenAnswers = 0
    private var lastStreamID: UInt32 = 0
    private var frameTimerRunning = false
    /// What the decoder holds of an unfinished frame, as last reported.
    private var decoderBytes = 0

    init(limits: ConnectionLimits) {
        self.limits = limits
        self.authentication = limits.authenticationTimeout == nil ? .notRequired : .pending(graceLeft: Self.authenticationGrace)
    }

    /// Calls in flight now.
    var callsInFlight: Int { inFlight.count }
    /// Frames waiting behind back-pressure now.
    var framesWaiting: Int { waiting.count }

    // MARK: - Opening and closing

    /// The connection is open: the authentication timer to start, if any.
    func connectionOpened() -> TimeAmount? {
        guard case .pending = authentication else { return nil }
        return limits.authenticationTimeout
    }

    /// The channel went inactive: everything still held, for the handler to
    /// cancel and release.
    mutating func connectionClosed() -> Leftovers {
        phase = .closed
        readHeld = false
        var leftovers = Leftovers(calls: [:], unstarted: CircularBuffer(initialCapacity: 0))
        swap(&leftovers.calls, &inFlight)
        swap(&leftovers.unstarted, &waiting)
        return leftovers
    }

    /// The channel failed (an error other than a TLS client's unclean
    /// shutdown): close.
    mutating func connectionFailed() -> Closing {
        phase = .closed
        return .close
    }

    // MARK: - Reading frames

    /// A frame came out of the decoder; `writable` is the channel's writability now.
    mutating func frameRead(_ frame: InboundFrame, writable: Bool) -> ReadFrameAction {
        switch phase {
        case .closed, .outputClosed:
            return .handle(.none)
        case .draining, .halfClosed(draining: true):
            // What the client sent before it saw the drain: say it did not run.
            if let streamID = Self.unstartedStream(of: frame) {
                return .handle(refuse(streamID, Self.unstartedRefusal))
            }
            return closeIfDone().map(ReadFrameAction.close) ?? .handle(.none)
        case .serving, .halfClosed(draining: false):
            if waiting.isEmpty && writable { return .handle(take(frame)) }
            // Behind others that wait, order is kept.
            waiting.append(frame)
            return .hold(first: waiting.count == 1)
        }
    }

    /// The channel asks to read more; `writable` is its writability now.
    mutating func readRequested(writable: Bool) -> ReadAction {
        if isDraining || (waiting.isEmpty && writable) { return .read }
        readHeld = true
        return .hold
    }

    /// The channel is writable again (or may be): call repeatedly, doing
    /// each step, until it answers `.none` or `.caughtUp`. Frames are taken
    /// one at a time, so a writability change while one is handled (a
    /// re-entrant call) only takes the next ones, in order.
    mutating func resume(writable: Bool) -> ResumeAction {
        guard writable else { return .none }
        if phase != .closed, let frame = waiting.popFirst() {
            return .dequeued(frame, take(frame))
        }
        guard waiting.isEmpty else { return .none }
        let resumeReading = readHeld
        readHeld = false
        return .caughtUp(resumeReading: resumeReading, closing: closeIfDone())
    }

    /// A frame is taken: refused (with the status and message containerd's
    /// ttrpc server gives) or started.
    private mutating func take(_ frame: InboundFrame) -> FrameAction {
        guard canWrite else { return .none }
        switch frame {
        case .oversized(let header):
            // ttrpc answers on the offending stream and carries on.
            return refuse(header.streamID, RPCError(
                .resourceExhausted,
                "message length \(header.length) exceed maximum message size of \(limits.maximumFrameLength)"))
        case .frame(let header, let payload):
            // Types other than request are skipped, for forward compatibility.
            guard header.type == .request else { return .none }
            let streamID = header.streamID
            // The metadata limits are checked on the bytes, before decoding
            // builds a value per entry.
            switch EnvelopeScan.check(payload, maximumEntries: limits.maximumMetadataEntries, maximumBytes: limits.maximumMetadataBytes) {
            case .fits:
                break
            case .tooManyEntries(let limit):
                return refuse(streamID, RPCError(.resourceExhausted, "metadata has more than \(limit) entries; the limit is \(limit)"))
            case .tooManyBytes(let bytes, let limit):
                return refuse(streamID, RPCError(.resourceExhausted, "metadata is at least \(bytes) bytes; the limit is \(limit)"))
            case .tooManyFields(let limit):
                return refuse(streamID, RPCError(
                    .invalidArgument, "unmarshal request error: more than \(limit) fields besides metadata in the envelope"))
            case .malformed(let why):
                return refuse(streamID, RPCError(.invalidArgument, "unmarshal request error: \(why)"))
            }
            let request: Ttrpc_Request
            do {
                request = try Envelope.decodeRequest(payload)
            } catch {
                return refuse(streamID, RPCError(.invalidArgument, "unmarshal request error: \(error)"))
            }
            guard streamID % 2 == 1 else {
                return refuse(streamID, RPCError(.invalidArgument, "StreamID must be odd for client initiated streams"))
            }
            guard streamID > lastStreamID else {
                return refuse(streamID, RPCError(.invalidArgument, "StreamID cannot be re-used and must increment"))
            }
            lastStreamID = streamID
            guard inFlight.count < limits.maximumCalls else {
                return refuse(streamID, RPCError(
                    .resourceExhausted, "too many calls in flight on this connection (the limit is \(limits.maximumCalls))"))
            }
            guard request.timeoutNano >= 0 else {
                // A negative timeout has already passed (as in Go's context.WithTimeout): don't run it.
                return refuse(streamID, Self.deadlineExceeded)
            }
            guard !isDraining else {
                return refuse(streamID, RPCError(.unavailable, "the server is shutting down"))
            }
            let deadline: TimeAmount? = request.timeoutNano == 0 ? nil : .nanoseconds(request.timeoutNano)
            return .startCall(streamID: streamID, request: request, deadline: deadline)
        }
    }

    /// The stream a frame that never started is answered on at drain (nil:
    /// not a request, no answer).
    static func unstartedStream(of frame: InboundFrame) -> UInt32? {
        switch frame {
        case .frame(let header, _) where header.type == .request, .oversized(let header): header.streamID
        case .frame: nil
        }
    }

    // MARK: - Calls

    /// The handler dispatched the call `startCall` asked for (before
    /// anything else happens on the connection).
    mutating func callStarted(streamID: UInt32, call: Call) {
        inFlight[streamID] = call
    }

    /// A call's answer is ready; `authenticated`: its caller got past authentication.
    mutating func callAnswered(streamID: UInt32, authenticated: Bool) -> AnswerAction {
        // Absent when the deadline already answered this stream.
        guard let call = inFlight.removeValue(forKey: streamID) else { return .none }
        guard canWrite else { return .drop(call) }
        var cancelAuthenticationTimer = false
        if authenticated {
            if case .pending = authentication { cancelAuthenticationTimer = true }
            authentication = .authenticated
        }
        unwrittenAnswers += 1
        return .write(call, cancelAuthenticationTimer: cancelAuthenticationTimer)
    }

    /// A call's deadline passed.
    mutating func deadlineFired(streamID: UInt32) -> DeadlineAction {
        guard let call = inFlight.removeValue(forKey: streamID) else { return .none }
        guard canWrite else { return .expire(call, answer: false) }
        unwrittenAnswers += 1
        return .expire(call, answer: true)
    }

    /// An answer asked for was written out (or its write failed).
    mutating func answerWritten() -> Closing? {
        unwrittenAnswers = max(0, unwrittenAnswers - 1)
        return closeIfDone()
    }

    // MARK: - Ending

    /// The server shuts down.
    mutating func drainRequested() -> DrainAction {
        if phase == .serving && readHeld { drainReadPending = true }
        switch phase {
        case .serving: phase = .draining
        case .halfClosed: phase = .halfClosed(draining: true)
        case .draining: break
        case .outputClosed, .closed:
            return DrainAction(unstarted: CircularBuffer(initialCapacity: 0), resumeReading: false, awaitRead: false, closing: nil)
        }
        // Frames held back by back-pressure never started: say so, and read
        // on, answering what the client sent before the drain the same way.
        var unstarted = CircularBuffer<InboundFrame>(initialCapacity: 0)
        swap(&unstarted, &waiting)
        unwrittenAnswers += unstarted.lazy.filter { Self.unstartedStream(of: $0) != nil }.count
        let resumeReading = readHeld
        readHeld = false
        return DrainAction(unstarted: unstarted, resumeReading: resumeReading, awaitRead: drainReadPending, closing: closeIfDone())
    }

    /// How long the drain waits for a read, when the socket turns out to
    /// hold nothing.
    static var drainReadWait: TimeAmount { .milliseconds(100) }

    /// A read completed, or `drainReadWait` passed after the drain began.
    mutating func drainReadSettled() -> Closing? {
        guard drainReadPending else { return nil }
        drainReadPending = false
        return closeIfDone()
    }

    /// The client shut its write side (half-close): answer it all, then close.
    mutating func inputClosed() -> Closing? {
        drainReadPending = false
        switch phase {
        case .serving: phase = .halfClosed(draining: false)
        case .draining: phase = .halfClosed(draining: true)
        case .halfClosed: break
        case .outputClosed:
            // Drained already: the client's close was what the server waited for.
            phase = .closed
            return .close
        case .closed: return nil
        }
        return closeIfDone()
    }

    /// The linger after shutting the write side at drain has passed.
    mutating func lingerExpired() -> Closing? {
        guard phase == .outputClosed else { return nil }
        phase = .closed
        return .close
    }

    /// Once the connection is ending (drain or half-close) and every call
    /// read has been answered and written out: how to end it.
    private mutating func closeIfDone() -> Closing? {
        guard inFlight.isEmpty, waiting.isEmpty, unwrittenAnswers == 0, !drainReadPending else { return nil }
        switch phase {
        case .halfClosed:
            phase = .closed
            return .close
        case .draining:
            // The client's side is still open: shut the server's and read on.
            phase = .outputClosed
            let resumeReading = readHeld
            readHeld = false
            return .shutOutput(resumeReading: resumeReading)
        case .serving, .outputClosed, .closed:
            return nil
        }
    }

    // MARK: - Timers

    /// The decoder reports a frame in progress (or none) and what it holds.
    mutating func framePending(_ report: FramePending) -> (bufferedBytesChange: Int, timer: FrameTimerChange) {
        let change = report.bufferedBytes - decoderBytes
        decoderBytes = report.bufferedBytes
        guard report.pending else {
            frameTimerRunning = false
            return (change, .cancel)
        }
        guard !frameTimerRunning else { return (change, .keep) }
        frameTimerRunning = true
        return (change, .start(limits.frameTimeout))
    }

    /// A frame started and did not finish within the frame timeout.
    mutating func frameTimerFired() -> TimerAction {
        guard phase != .closed else { return .none }
        // While the server holds reads, the rest of the frame is not the client's to send yet.
        if readHeld || !waiting.isEmpty { return .rearm(limits.frameTimeout) }
        phase = .closed
        return .close
    }

    /// The authentication timeout passed.
    mutating func authenticationTimerFired() -> TimerAction {
        guard phase != .closed, case .pending(let graceLeft) = authentication else { return .none }
        // A call already dispatched may be the one that authenticates: wait
        // for it, but only so long.
        if !inFlight.isEmpty && graceLeft > 0 {
            authentication = .pending(graceLeft: graceLeft - 1)
            return .rearm(Self.authenticationGraceStep)
        }
        phase = .closed
        return .close
    }

    /// Nothing was read for the idle timeout.
    mutating func idleTimedOut() -> IdleAction {
        // Quiet and with nothing running (or not taking its answers all that
        // time): let it go.
        guard phase != .closed, inFlight.isEmpty else { return .none }
        phase = .closed
        return .close(waitingCalls: waiting.count)
    }

    // MARK: - Helpers

    private var isDraining: Bool {
        switch phase {
        case .draining, .halfClosed(draining: true), .outputClosed: true
        case .serving, .halfClosed(draining: false), .closed: false
        }
    }

    /// Whether answers may still be written.
    private var canWrite: Bool { phase != .closed && phase != .outputClosed }

    private mutating func refuse(_ streamID: UInt32, _ error: RPCError) -> FrameAction {
        unwrittenAnswers += 1
        return .refuse(streamID: streamID, error: error)
    }
}

extension ConnectionStateMachine.FrameAction: Equatable {}
extension ConnectionStateMachine.ReadFrameAction: Equatable {}
extension ConnectionStateMachine.ResumeAction: Equatable {}
extension ConnectionStateMachine.AnswerAction: Equatable where Call: Equatable {}
extension ConnectionStateMachine.DeadlineAction: Equatable where Call: Equatable {}
extension ConnectionStateMachine.DrainAction: Equatable {}
extension ConnectionStateMachine.Leftovers: Equatable where Call: Equatable {}
