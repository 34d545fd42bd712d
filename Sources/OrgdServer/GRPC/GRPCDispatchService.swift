import GRPCCore
import NIOConcurrencyHelpers
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdWire
import SwiftProtobuf

/// Serves every method the Dispatcher has over gRPC, through its one entry
/// (`dispatch(service:method:…)`): no second pipeline. Bytes pass through
/// untouched, since the Dispatcher decodes each request once and answers
/// INVALID_ARGUMENT itself for bytes that do not decode.
struct GRPCDispatchService: RegistrableRPCService {
    let dispatcher: Dispatcher
    let limits: GRPCCallLimits
    let connections: GRPCConnections
    /// Set when the server starts draining (see `handleCancellation`).
    let draining: @Sendable () -> Bool

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for method in dispatcher.methods {
            let descriptor = method.descriptor
            router.registerHandler(forMethod: descriptor, deserializer: RawBytes(), serializer: RawBytes()) { request, context in
                // Stock unary semantics: exactly one message (INTERNAL otherwise, as grpc-swift says it).
                let single = try await ServerRequest(stream: request)
                return StreamingServerResponse(single: await call(descriptor, single, context))
            }
        }
        GRPCHealthWatch(status: dispatcher.healthStatus, draining: draining).register(with: &router)
    }

    /// Runs one call through the Dispatcher and maps its outcome.
    ///
    /// grpc-swift's server arms the client's `grpc-timeout` itself and, when
    /// it passes, cancels the RPC's cancellation handle; it does the same when
    /// the stream closes under the call (the client went away) and when the
    /// server starts draining. It neither cancels the handler nor answers the
    /// deadline: that is done here, on the handle — except while draining,
    /// when in-flight calls are let finish (the drain timeout bounds them).
    private func call(_ descriptor: MethodDescriptor, _ request: ServerRequest<[UInt8]>, _ context: ServerContext) async -> ServerResponse<[UInt8]> {
        let started = ContinuousClock.now
        var pairs: [(key: String, value: String)] = []
        var bytes = 0
        for (key, value) in request.metadata {
            switch value {
            case .string(let text):
                pairs.append((key: key, value: text))
                bytes += key.utf8.count + text.utf8.count
            case .binary(let data):
                bytes += key.utf8.count + data.count
            }
        }
        if let refusal = limits.refusal(entries: request.metadata.count, bytes: bytes) {
            return Self.response(refusal.status, payload: [])
        }
        let timeout = request.metadata[stringValues: "grpc-timeout"].first { _ in true }.flatMap(GRPCTimeout.duration)
        let connection = ConnectionInfo(transport: .tcp, peer: context.remotePeer, connectionID: connections.id(of: context.remotePeer))
        let pending = PendingCall()
        let draining = self.draining
        let answer = await withTaskCancellationHandler {
            await withRPCCancellationHandler {
                await withCheckedContinuation { continuation in
                    guard pending.begin(continuation) else { return }
                    pending.attach(dispatcher.dispatch(
                        service: descriptor.service.fullyQualifiedService, method: descriptor.method, metadata: Metadata(pairs: pairs),
                        payload: request.message, connection: connection
                    ) { pending.finish(.outcome($0)) })
                }
            } onCancelRPC: {
                if let timeout, ContinuousClock.now + .milliseconds(5) >= started + timeout {
                    pending.finish(.deadlineExceeded)
                } else if !draining() {
                    pending.finish(.peerGone)
                }
            }
        } onCancel: {
            // The server's task is cancelled only past the drain timeout.
            pending.finish(.peerGone)
        }
        // The other half of the hand-off edge in `finish` (see Dispatcher's
        // `awaitOutcome`: TSan cannot see a continuation's own ordering).
        pending.synchronize()
        switch answer {
        case .outcome(let outcome):
            return Self.response(outcome.status, payload: outcome.payload, consistencyToken: outcome.consistencyToken)
        case .deadlineExceeded:
            return Self.response(OrgdCore.RPCError(.deadlineExceeded, "the call's deadline (grpc-timeout) passed").status, payload: [])
        case .peerGone:
            return Self.response(OrgdCore.RPCError(.cancelled, "the call was cancelled").status, payload: [])
        }
    }

    /// OK → the payload; anything else → the same code and message, with the
    /// whole `google.rpc.Status` (details included, e.g. BadRequest's field
    /// violations) in the `grpc-status-details-bin` trailer: gRPC's standard
    /// rich-error model, which grpcio's `grpc_status` reads. A write's
    /// consistency token travels in the answer's headers.
    static func response(_ status: Google_Rpc_Status, payload: [UInt8], consistencyToken: String? = nil) -> ServerResponse<[UInt8]> {
        guard status.code != StatusCode.ok.rawValue else {
            var headers = GRPCCore.Metadata()
            if let consistencyToken { headers.addString(consistencyToken, forKey: ConsistencyToken.metadataKey) }
            return ServerResponse(message: payload, metadata: headers)
        }
        var trailers = GRPCCore.Metadata()
        if let details: [UInt8] = try? status.serializedBytes() {
            trailers.addBinary(details, forKey: "grpc-status-details-bin")
        }
        let code = Status.Code(rawValue: Int(status.code)).flatMap(GRPCCore.RPCError.Code.init) ?? .unknown
        return ServerResponse(error: GRPCCore.RPCError(code: code, message: status.message, metadata: trailers))
    }
}

/// The metadata limits ttrpc applies, applied to a gRPC call's headers too
/// (HTTP/2's own header-list limit, 16 KiB in NIOHTTP2, comes first for bytes).
struct GRPCCallLimits: Sendable {
    var maximumEntries: Int
    var maximumBytes: Int

    func refusal(entries: Int, bytes: Int) -> OrgdCore.RPCError? {
        if entries > maximumEntries {
            return OrgdCore.RPCError(.resourceExhausted, "metadata has more than \(maximumEntries) entries; the limit is \(maximumEntries)")
        }
        if bytes > maximumBytes {
            return OrgdCore.RPCError(.resourceExhausted, "metadata is at least \(bytes) bytes; the limit is \(maximumBytes)")
        }
        return nil
    }
}

/// One call's answer, given once: by the Dispatcher, the deadline, or the
/// client going away — whichever comes first; the others are dropped, and
/// the Dispatcher's task is cancelled when it did not answer.
final class PendingCall: Sendable {
    enum Answer: Sendable {
        case outcome(CallOutcome)
        case deadlineExceeded
        case peerGone
    }

    private struct State {
        var continuation: CheckedContinuation<Answer, Never>?
        var task: Task<Void, Never>?
        var answer: Answer?
        var resumed = false
    }

    private let state = NIOLockedValueBox(State())

    /// Waits with `continuation`; false when the answer is already in (the
    /// deadline passed before the call started), so the call is not started.
    func begin(_ continuation: CheckedContinuation<Answer, Never>) -> Bool {
        let early: Answer? = state.withLockedValue { state in
            guard let answer = state.answer else {
                state.continuation = continuation
                return nil
            }
            state.resumed = true
            return answer
        }
        guard let early else { return true }
        continuation.resume(returning: early)
        return false
    }

    /// The Dispatcher's task (nil on its read fast path), cancelled at once
    /// if the call was already answered otherwise.
    func attach(_ task: Task<Void, Never>?) {
        let cancel = state.withLockedValue { state in
            state.task = task
            if case .outcome = state.answer { return false }
            return state.answer != nil
        }
        if cancel { task?.cancel() }
    }

    /// Takes the lock `finish` took: the ordering between the thread that
    /// built the answer and the one that reads it, made visible to TSan.
    func synchronize() {
        state.withLockedValue { _ in }
    }

    func finish(_ answer: Answer) {
        let (continuation, task): (CheckedContinuation<Answer, Never>?, Task<Void, Never>?) = state.withLockedValue { state in
            guard state.answer == nil else { return (nil, nil) }
            state.answer = answer
            guard let continuation = state.continuation, !state.resumed else { return (nil, nil) }
            state.resumed = true
            if case .outcome = answer { return (continuation, nil) }
            return (continuation, state.task)
        }
        task?.cancel()
        continuation?.resume(returning: answer)
    }
}
