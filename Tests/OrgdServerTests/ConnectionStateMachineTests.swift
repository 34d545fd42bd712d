import NIOCore
import OrgdCore
import OrgdProto
@testable import OrgdServer
import OrgdWire
import Testing

/// The connection's rules without a socket: each test drives
/// `ConnectionStateMachine` through the events a connection sees and checks
/// the actions it asks for. (The end-to-end suites — DrainTests, LimitTests,
/// ConnectionBudgetTests, TLSHalfCloseTests — check the same rules through a
/// real daemon.)
@Suite("connection state machine")
struct ConnectionStateMachineTests {
    /// The handler's per-call token is a name here, so a test sees which call comes back.
    typealias Machine = ConnectionStateMachine<String>

    static let limits = ConnectionLimits(
        maximumFrameLength: 4096, maximumCalls: 3, maximumMetadataBytes: 1024, maximumMetadataEntries: 8,
        frameTimeout: .seconds(5), authenticationTimeout: .seconds(10))
    static let unixLimits = ConnectionLimits(
        maximumFrameLength: 4096, maximumCalls: 3, maximumMetadataBytes: 1024, maximumMetadataEntries: 8,
        frameTimeout: .seconds(5), authenticationTimeout: nil)

    static func envelope(timeoutNano: Int64 = 0) -> Ttrpc_Request {
        var request = Ttrpc_Request()
        request.service = "orgd.v1.OrganizationService"
        request.method = "GetOrganization"
        request.timeoutNano = timeoutNano
        return request
    }

    /// A request frame on `streamID`, as the decoder hands it on.
    static func request(_ streamID: UInt32, timeoutNano: Int64 = 0) throws -> InboundFrame {
        let payload = try Envelope.encode(envelope(timeoutNano: timeoutNano), allocator: ByteBufferAllocator())
        return .frame(FrameHeader(length: UInt32(payload.readableBytes), streamID: streamID, type: .request), payload)
    }

    static func frame(_ streamID: UInt32, type: MessageType) -> InboundFrame {
        .frame(FrameHeader(length: 0, streamID: streamID, type: type), ByteBuffer())
    }

    /// Reads a request on a writable connection and starts it, as the handler does.
    static func start(_ machine: inout Machine, _ streamID: UInt32, timeoutNano: Int64 = 0) throws {
        let action = machine.frameRead(try request(streamID, timeoutNano: timeoutNano), writable: true)
        let deadline: TimeAmount? = timeoutNano == 0 ? nil : .nanoseconds(timeoutNano)
        #expect(action == .handle(.startCall(streamID: streamID, request: envelope(timeoutNano: timeoutNano), deadline: deadline)))
        machine.callStarted(streamID: streamID, call: "call \(streamID)")
    }

    // MARK: - Back-pressure

    @Test("back-pressure: frames read while the connection is not writable wait unstarted and reading stops; once writable they start in order and reading resumes")
    func backPressure() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        // The client stops taking its answers: the write buffer passes its high-water mark.
        #expect(machine.frameRead(try Self.request(3), writable: false) == .hold(first: true))
        #expect(machine.frameRead(try Self.request(5), writable: false) == .hold(first: false))
        #expect(machine.readRequested(writable: false) == .hold)
        #expect(machine.resume(writable: false) == .none)
        #expect(machine.framesWaiting == 2)
        #expect(machine.callsInFlight == 1)
        // Writable again, yet a frame read now queues behind those waiting: order is kept.
        #expect(machine.frameRead(try Self.request(7), writable: true) == .hold(first: false))
        #expect(machine.readRequested(writable: true) == .hold)

        // Below the low-water mark: the waiting frames start, in order, then reading resumes.
        for streamID: UInt32 in [3, 5] {
            let step = machine.resume(writable: true)
            #expect(step == .dequeued(try Self.request(streamID), .startCall(streamID: streamID, request: Self.envelope(), deadline: nil)))
            machine.callStarted(streamID: streamID, call: "call \(streamID)")
        }
        // The limit is 3 calls: the third waiting frame is refused, not started.
        guard case .dequeued(_, .refuse(7, let error)) = machine.resume(writable: true) else {
            Issue.record("the fourth call should be refused")
            return
        }
        #expect(error.code == .resourceExhausted)
        #expect(machine.resume(writable: true) == .caughtUp(resumeReading: true, closing: nil))
        #expect(machine.readRequested(writable: true) == .read)
        #expect(machine.resume(writable: true) == .caughtUp(resumeReading: false, closing: nil))
    }

    @Test("back-pressure stops between frames: a waiting frame is not started while the connection is not writable")
    func backPressureBetweenFrames() throws {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.frameRead(try Self.request(1), writable: false) == .hold(first: true))
        #expect(machine.frameRead(try Self.request(3), writable: false) == .hold(first: false))
        #expect(machine.readRequested(writable: false) == .hold)
        #expect(machine.resume(writable: true) == .dequeued(try Self.request(1), .startCall(streamID: 1, request: Self.envelope(), deadline: nil)))
        machine.callStarted(streamID: 1, call: "call 1")
        // Starting it filled the buffer again: the next one waits, reading stays held.
        #expect(machine.resume(writable: false) == .none)
        #expect(machine.framesWaiting == 1)
        #expect(machine.readRequested(writable: true) == .hold)
    }

    // MARK: - Drain

    @Test("drain answers the held-back calls UNAVAILABLE, lets the running one finish, and shuts the write side after the last answer is written")
    func drain() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        #expect(machine.frameRead(try Self.request(3), writable: false) == .hold(first: true))
        #expect(machine.frameRead(Self.frame(5, type: .data), writable: false) == .hold(first: false))
        #expect(machine.frameRead(try Self.request(7), writable: false) == .hold(first: false))
        #expect(machine.readRequested(writable: false) == .hold)

        let drain = machine.drainRequested()
        #expect(machine.phase == .draining)
        #expect(Array(drain.unstarted) == [try Self.request(3), Self.frame(5, type: .data), try Self.request(7)])
        #expect(drain.unstarted.compactMap(Machine.unstartedStream(of:)) == [3, 7])
        #expect(drain.resumeReading)
        #expect(drain.closing == nil)

        // What the client sent before it saw the drain is refused too; a non-request needs no answer.
        #expect(machine.frameRead(try Self.request(9), writable: true) == .handle(.refuse(streamID: 9, error: Machine.unstartedRefusal)))
        #expect(machine.frameRead(Self.frame(11, type: .data), writable: true) == .handle(.none))
        // Reads go on while draining, whatever the writability.
        #expect(machine.readRequested(writable: false) == .read)
        // The resumed read completed; answers are still to write.
        #expect(machine.drainReadSettled() == nil)

        // Three refusals to write (3, 7, 9) and the running call's answer.
        #expect(machine.answerWritten() == nil)
        #expect(machine.answerWritten() == nil)
        #expect(machine.callAnswered(streamID: 1, authenticated: true) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.answerWritten() == nil)
        #expect(machine.phase == .draining)
        #expect(machine.answerWritten() == .shutOutput(resumeReading: false))
        #expect(machine.phase == .outputClosed)

        // Output shut: frames are discarded; the client's close ends it.
        #expect(machine.frameRead(try Self.request(13), writable: true) == .handle(.none))
        #expect(machine.inputClosed() == .close)
        #expect(machine.phase == .closed)
        #expect(machine.lingerExpired() == nil)
    }

    @Test("a drain that resumes a held read shuts the write side only once that read completes, though every answer is written")
    func drainReadsWhatWasSent() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        #expect(machine.callAnswered(streamID: 1, authenticated: true) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.readRequested(writable: false) == .hold)
        let drain = machine.drainRequested()
        #expect(drain.unstarted.isEmpty && drain.resumeReading && drain.closing == nil)
        // The last answer is written before the read comes back: not done yet.
        #expect(machine.answerWritten() == nil)
        #expect(machine.phase == .draining)
        // The read brings a call the client sent before the drain: refused.
        #expect(machine.frameRead(try Self.request(3), writable: true) == .handle(.refuse(streamID: 3, error: Machine.unstartedRefusal)))
        #expect(machine.drainReadSettled() == nil)
        #expect(machine.answerWritten() == .shutOutput(resumeReading: false))
        // Settling again (the wait running out) changes nothing.
        #expect(machine.drainReadSettled() == nil)
        #expect(machine.phase == .outputClosed)
    }

    @Test("a drain that resumes a held read with nothing in the socket shuts the write side when the wait runs out")
    func drainReadWaitRunsOut() {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.readRequested(writable: false) == .hold)
        let drain = machine.drainRequested()
        #expect(drain.resumeReading && drain.closing == nil)
        #expect(machine.drainReadSettled() == .shutOutput(resumeReading: false))
    }

    @Test("drain with nothing in flight shuts the write side at once, waiting for no read; a client that never closes is closed after the linger")
    func drainIdle() {
        var machine = Machine(limits: Self.unixLimits)
        let drain = machine.drainRequested()
        #expect(drain.unstarted.isEmpty && !drain.resumeReading && !drain.awaitRead)
        #expect(drain.closing == .shutOutput(resumeReading: false))
        #expect(machine.drainReadSettled() == nil)
        #expect(machine.drainRequested().closing == nil)
        #expect(machine.lingerExpired() == .close)
        #expect(machine.phase == .closed)
    }

    @Test("a drain after a half-close still refuses what is read: UNAVAILABLE, not started")
    func drainRefusesNewCalls() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        #expect(machine.inputClosed() == nil)
        _ = machine.drainRequested()
        #expect(machine.phase == .halfClosed(draining: true))
        guard case .handle(.refuse(3, let error)) = machine.frameRead(try Self.request(3), writable: true) else {
            Issue.record("a call read while draining must be refused")
            return
        }
        #expect(error.code == .unavailable)
    }

    // MARK: - Half-close

    @Test("half-close answers everything, including frames held back, then closes after the last answer is written")
    func halfClose() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        try Self.start(&machine, 3)
        #expect(machine.frameRead(try Self.request(5), writable: false) == .hold(first: true))
        #expect(machine.inputClosed() == nil)
        #expect(machine.phase == .halfClosed(draining: false))

        #expect(machine.callAnswered(streamID: 3, authenticated: true) == .write("call 3", cancelAuthenticationTimer: false))
        #expect(machine.answerWritten() == nil)
        // Held back, not refused: half-close starts what waits once writable.
        #expect(machine.resume(writable: true) == .dequeued(try Self.request(5), .startCall(streamID: 5, request: Self.envelope(), deadline: nil)))
        machine.callStarted(streamID: 5, call: "call 5")
        #expect(machine.resume(writable: true) == .caughtUp(resumeReading: false, closing: nil))
        #expect(machine.callAnswered(streamID: 1, authenticated: true) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.callAnswered(streamID: 5, authenticated: true) == .write("call 5", cancelAuthenticationTimer: false))
        #expect(machine.answerWritten() == nil)
        #expect(machine.phase == .halfClosed(draining: false))
        #expect(machine.answerWritten() == .close)
        #expect(machine.phase == .closed)
    }

    @Test("a frame delivered after the half-close (still in TLS's buffer) is started, not refused; the close waits for its answer")
    func frameAfterHalfClose() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        #expect(machine.inputClosed() == nil)
        try Self.start(&machine, 3)
        #expect(machine.callAnswered(streamID: 1, authenticated: false) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.answerWritten() == nil)
        #expect(machine.callAnswered(streamID: 3, authenticated: false) == .write("call 3", cancelAuthenticationTimer: false))
        #expect(machine.answerWritten() == .close)
    }

    @Test("half-close with nothing in flight closes at once")
    func halfCloseIdle() {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.inputClosed() == .close)
        #expect(machine.inputClosed() == nil)
    }

    // MARK: - Authentication

    @Test("an unauthenticated TCP connection is closed at its timer; a call in flight defers it, 50 times at most")
    func authenticationTimer() throws {
        var machine = Machine(limits: Self.limits)
        #expect(machine.connectionOpened() == .seconds(10))
        #expect(machine.authenticationTimerFired() == .close)
        #expect(machine.phase == .closed)

        var waiting = Machine(limits: Self.limits)
        try Self.start(&waiting, 1)
        for _ in 0..<Machine.authenticationGrace {
            #expect(waiting.authenticationTimerFired() == .rearm(.milliseconds(100)))
        }
        #expect(waiting.authenticationTimerFired() == .close)
    }

    @Test("an authenticated answer stops the authentication timer; an unauthenticated one does not")
    func authenticatedCall() throws {
        var machine = Machine(limits: Self.limits)
        try Self.start(&machine, 1)
        try Self.start(&machine, 3)
        #expect(machine.callAnswered(streamID: 1, authenticated: false) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.authentication == .pending(graceLeft: Machine.authenticationGrace))
        #expect(machine.callAnswered(streamID: 3, authenticated: true) == .write("call 3", cancelAuthenticationTimer: true))
        #expect(machine.authentication == .authenticated)
        #expect(machine.authenticationTimerFired() == .none)
        #expect(machine.phase == .serving)
    }

    @Test("the Unix socket has no authentication timer")
    func unixNeedsNoAuthentication() {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.connectionOpened() == nil)
        #expect(machine.authenticationTimerFired() == .none)
    }

    // MARK: - Deadlines

    @Test("a deadline answers DEADLINE_EXCEEDED exactly once, even when the call finishes after it")
    func deadline() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1, timeoutNano: 1_000_000)
        #expect(machine.deadlineFired(streamID: 1) == .expire("call 1", answer: true))
        #expect(Machine.deadlineExceeded.code == .deadlineExceeded)
        #expect(machine.callAnswered(streamID: 1, authenticated: true) == .none)
        #expect(machine.deadlineFired(streamID: 1) == .none)
        #expect(machine.callsInFlight == 0)
        // The call answered first: its deadline finds nothing to do.
        try Self.start(&machine, 3, timeoutNano: 1_000_000)
        #expect(machine.callAnswered(streamID: 3, authenticated: false) == .write("call 3", cancelAuthenticationTimer: false))
        #expect(machine.deadlineFired(streamID: 3) == .none)
    }

    @Test("a deadline's answer counts: a drain waits for it to be written")
    func deadlineAnswerHoldsDrain() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1, timeoutNano: 1_000_000)
        #expect(machine.drainRequested().closing == nil)
        #expect(machine.deadlineFired(streamID: 1) == .expire("call 1", answer: true))
        #expect(machine.phase == .draining)
        #expect(machine.drainReadSettled() == nil)
        #expect(machine.answerWritten() == .shutOutput(resumeReading: false))
    }

    // MARK: - Closing

    @Test("an answer arriving after the connection closed is dropped; what was held is handed back at inactive")
    func answerAfterClose() throws {
        var machine = Machine(limits: Self.limits)
        try Self.start(&machine, 1)
        try Self.start(&machine, 3, timeoutNano: 5_000_000)
        try Self.start(&machine, 5)
        #expect(machine.connectionFailed() == .close)
        #expect(machine.callAnswered(streamID: 1, authenticated: true) == .drop("call 1"))
        #expect(machine.deadlineFired(streamID: 3) == .expire("call 3", answer: false))
        #expect(machine.frameRead(try Self.request(7), writable: true) == .handle(.none))
        #expect(machine.resume(writable: true) == .caughtUp(resumeReading: false, closing: nil))
        let leftovers = machine.connectionClosed()
        #expect(leftovers.calls == [5: "call 5"])
        #expect(leftovers.unstarted.isEmpty)
        #expect(machine.callAnswered(streamID: 5, authenticated: true) == .none)
        #expect(machine.idleTimedOut() == .none)
        #expect(machine.frameTimerFired() == .none)
        #expect(machine.authenticationTimerFired() == .none)
    }

    @Test("frames held back when the connection closes are handed back to be released")
    func heldFramesAtClose() throws {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.frameRead(try Self.request(1), writable: false) == .hold(first: true))
        let leftovers = machine.connectionClosed()
        #expect(Array(leftovers.unstarted) == [try Self.request(1)])
        #expect(machine.framesWaiting == 0)
    }

    @Test("an idle connection is closed only with no call running")
    func idle() throws {
        var machine = Machine(limits: Self.unixLimits)
        try Self.start(&machine, 1)
        #expect(machine.idleTimedOut() == .none)
        #expect(machine.callAnswered(streamID: 1, authenticated: false) == .write("call 1", cancelAuthenticationTimer: false))
        #expect(machine.frameRead(try Self.request(3), writable: false) == .hold(first: true))
        #expect(machine.idleTimedOut() == .close(waitingCalls: 1))
        #expect(machine.phase == .closed)
    }

    // MARK: - Frame timer

    @Test("the frame timer runs while a frame is in progress, waits while reads are held, and closes otherwise; the decoder's bytes are reported as changes")
    func frameTimer() throws {
        var machine = Machine(limits: Self.unixLimits)
        #expect(machine.framePending(FramePending(true, bufferedBytes: 100)) == (100, .start(.seconds(5))))
        #expect(machine.framePending(FramePending(true, bufferedBytes: 300)) == (200, .keep))
        #expect(machine.framePending(FramePending(false, bufferedBytes: 0)) == (-300, .cancel))
        #expect(machine.framePending(FramePending(true, bufferedBytes: 10)) == (10, .start(.seconds(5))))
        // Answers backed up: the rest of the frame is not the client's to send yet.
        #expect(machine.frameRead(try Self.request(1), writable: false) == .hold(first: true))
        #expect(machine.frameTimerFired() == .rearm(.seconds(5)))
        _ = machine.resume(writable: true)
        machine.callStarted(streamID: 1, call: "call 1")
        #expect(machine.resume(writable: true) == .caughtUp(resumeReading: false, closing: nil))
        #expect(machine.frameTimerFired() == .close)
        #expect(machine.phase == .closed)
    }

    // MARK: - Frames refused

    @Test("frames are refused as containerd's ttrpc server refuses them, and the connection goes on")
    func refusals() throws {
        var machine = Machine(limits: Self.unixLimits)
        func refusal(_ frame: InboundFrame) -> RPCError? {
            guard case .handle(.refuse(_, let error)) = machine.frameRead(frame, writable: true) else { return nil }
            return error
        }
        #expect(refusal(.oversized(FrameHeader(length: 5000, streamID: 1, type: .request)))?.message
            == "message length 5000 exceed maximum message size of 4096")
        #expect(refusal(try Self.request(2))?.message == "StreamID must be odd for client initiated streams")
        try Self.start(&machine, 5)
        #expect(refusal(try Self.request(3))?.message == "StreamID cannot be re-used and must increment")
        #expect(refusal(try Self.request(5))?.message == "StreamID cannot be re-used and must increment")
        #expect(refusal(try Self.request(7, timeoutNano: -1)) == Machine.deadlineExceeded)
        #expect(refusal(.frame(FrameHeader(length: 2, streamID: 9, type: .request), ByteBuffer(bytes: [0x0b, 0x00])))?.code == .invalidArgument)
        #expect(machine.frameRead(Self.frame(11, type: .data), writable: true) == .handle(.none))
        try Self.start(&machine, 13)
        #expect(machine.callsInFlight == 2)
    }

    @Test("metadata past its limits is refused on the bytes, before decoding")
    func metadataLimits() throws {
        var machine = Machine(limits: Self.unixLimits)
        var request = Self.envelope()
        request.metadata = (0..<9).map { _ in Ttrpc_KeyValue() }
        let payload = try Envelope.encode(request, allocator: ByteBufferAllocator())
        let frame = InboundFrame.frame(FrameHeader(length: UInt32(payload.readableBytes), streamID: 1, type: .request), payload)
        #expect(machine.frameRead(frame, writable: true) == .handle(.refuse(
            streamID: 1, error: RPCError(.resourceExhausted, "metadata has more than 8 entries; the limit is 8"))))
        // Refused before the stream id was recorded: 1 may still be used.
        try Self.start(&machine, 1)
    }
}
