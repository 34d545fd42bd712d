import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import OrgdCore
import OrgdProto
import OrgdStore
import OrgdWire

/// The outcome of one call, ready to be put in a `Response` envelope.
public struct CallOutcome: Sendable {
    public var status: Google_Rpc_Status
    public var payload: [UInt8]
    /// Whether the caller got past authentication (a valid token, the local
    /// operator, or a health check without one), whatever the call's result.
    /// A TCP connection that never makes such a call is closed.
    public var authenticated = false
    /// For a write that succeeded: the revision it committed under, as an
    /// opaque token for the answer's `orgd-consistency-token` metadata.
    public var consistencyToken: String?
    public var code: StatusCode { StatusCode(wireValue: status.code) }
}

/// Runs calls: resolves the method, authenticates the caller, applies the
/// method's access rule, runs the handler, and turns every failure into a
/// status. Knows nothing of sockets or frames.
public struct Dispatcher: Sendable {
    private let table: MethodTable
    private let authenticator: Authenticator
    private let logger: Logger
    private let serving: NIOLockedValueBox<Bool>
    private let store: Store
    private let metrics: CallMetrics
    private let refusals = RateLimitedLog(interval: .seconds(1), level: .notice)
    /// What a health check of a service answers now (`""`: the server).
    public let healthStatus: @Sendable (String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus

    public init(
        store: Store, logger: Logger, invitations: InvitationPolicy = InvitationPolicy(),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        let serving = NIOLockedValueBox(true)
        var table = MethodTable()
        OrganizationService(store: store).register(in: &table)
        TokenService(store: store).register(in: &table)
        MembershipService(store: store).register(in: &table)
        ConsentService(store: store).register(in: &table)
        InvitationService(store: store, policy: invitations, metrics: metrics).register(in: &table)
        AuditService().register(in: &table)
        ChangeService().register(in: &table)
        let missing = table.missing(Surface.methods)
        precondition(missing.isEmpty, "RPCs declared in proto/ without a handler: \(missing.joined(separator: ", "))")
        let services = Set(Surface.methods.map { $0.descriptor.service.fullyQualifiedService } + [HealthService.name])
        let status: @Sendable (String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus = { service in
            guard service.isEmpty || services.contains(service) else { return .serviceUnknown }
            // NOT_SERVING while draining, and once the database files are gone.
            return serving.withLockedValue { $0 } && store.isUsable ? .serving : .notServing
        }
        HealthService.register(in: &table, status: status)
        self.healthStatus = status
        self.table = table
        self.authenticator = Authenticator(store: store)
        self.logger = logger
        self.serving = serving
        self.store = store
        self.metrics = CallMetrics(factory: metrics, methods: table.services.values.flatMap(\.values).map(\.fullName))
    }

    /// Every method the server serves and its access rule, sorted: the
    /// source of SECURITY.md's table (a test keeps the two equal).
    public var accessRules: [(method: String, rule: AccessRule)] {
        methods.map { ($0.fullName, $0.rule) }
    }

    /// Every method the server serves, sorted by service and name.
    public var methods: [MethodHandler] {
        table.services.values.flatMap(\.values).sorted { $0.fullName < $1.fullName }
    }

    /// Health checks answer NOT_SERVING from now on (set while draining).
    public func markNotServing() {
        serving.withLockedValue { $0 = false }
    }

    /// Runs one call and hands its outcome to `completion`, whichever
    /// transport it came by: the method is looked up once, then the caller is
    /// authenticated, the access rule applied, the handler run (audited as
    /// its policy says) and the outcome counted, the same way for every call.
    ///
    /// Read-only methods run entirely on a reader thread inside one read
    /// transaction, with no Swift task (two thread hand-offs per call instead
    /// of four); the rest run in a task. Returns that task, so the caller can
    /// cancel it at a deadline or when the peer goes away; nil for the fast
    /// path and for calls refused before they start.
    ///
    /// Methods the access index answers are answered from it first, in
    /// this call, when it can (`answerFromIndex`); `fromIndex: false` when
    /// the caller has just tried.
    @discardableResult
    public func dispatch(
        service: String, method: String, metadata: Metadata, payload: [UInt8], connection: ConnectionInfo,
        fromIndex: Bool = true, completion: @escaping @Sendable (CallOutcome) -> Void
    ) -> Task<Void, Never>? {
        let started = ContinuousClock.now
        let handler: MethodHandler
        do {
            handler = try table.resolve(service: service, method: method)
        } catch {
            let outcome = failure(error, method: "\(service)/\(method)")
            record(nil, "\(service)/\(method)", outcome: outcome, connection: connection, since: started)
            completion(outcome)
            return nil
        }
        if fromIndex, let outcome = answer(handler, fromIndex: metadata, payload, connection, since: started) {
            completion(outcome)
            return nil
        }
        guard let read = handler.read else {
            return Task {
                let outcome = await run(handler, metadata: metadata, payload: payload, connection: connection)
                record(handler, handler.fullName, outcome: outcome, connection: connection, since: started)
                completion(outcome)
            }
        }
        store.asyncRead { [self] transaction in
            var outcome: CallOutcome
            var authenticated = false
            do {
                let tx = try transaction.get()
                let principal = try anonymous(handler, metadata) ?? Authenticator.authenticate(metadata, transport: connection.transport, tx)
                authenticated = true
                try handler.rule.check(principal, method: handler.fullName)
                try ConsistencyToken.check(metadata, key: store.pageTokenKey, latest: tx.latestRevision)
                let context = CallContext(
                    principal: principal, connection: connection, metadata: metadata, method: handler.fullName,
                    logger: callLogger(method: handler.fullName, metadata: metadata, connection: connection), store: store)
                outcome = CallOutcome(status: Self.okStatus, payload: try read(context, payload, tx))
            } catch {
                outcome = failure(error, method: handler.fullName)
            }
            outcome.authenticated = authenticated
            record(handler, handler.fullName, outcome: outcome, connection: connection, since: started)
            completion(outcome)
        }
        return nil
    }

    /// A ttrpc request envelope's call; see `dispatch(service:method:…)`.
    @discardableResult
    public func dispatch(
        _ request: Ttrpc_Request, connection: ConnectionInfo, fromIndex: Bool = true,
        completion: @escaping @Sendable (CallOutcome) -> Void
    ) -> Task<Void, Never>? {
        dispatch(
            service: request.service, method: request.method, metadata: Metadata(request.metadata), payload: [UInt8](request.payload),
            connection: connection, fromIndex: fromIndex, completion: completion)
    }

    /// Answers a call from the access index, right here on the caller's
    /// thread (an event loop: the index never blocks), when its method is
    /// one the index answers and the index can: it is serving, it has
    /// reached the call's consistency token, and the call does not act for
    /// someone (`orgd-act-as` is decided by the store). Nil otherwise: the
    /// caller dispatches the call as usual. Authentication, the access rule,
    /// the answer and the call's metrics are the same as on the store's path.
    public func answerFromIndex(_ request: Ttrpc_Request, connection: ConnectionInfo) -> CallOutcome? {
        guard let handler = try? table.resolve(service: request.service, method: request.method), handler.indexed != nil else { return nil }
        return answer(handler, fromIndex: Metadata(request.metadata), [UInt8](request.payload), connection, since: .now)
    }

    private func answer(
        _ handler: MethodHandler, fromIndex metadata: Metadata, _ payload: [UInt8], _ connection: ConnectionInfo,
        since started: ContinuousClock.Instant
    ) -> CallOutcome? {
        guard let indexed = handler.indexed, metadata["orgd-act-as"] == nil else { return nil }
        var revision: Int64 = 0
        if let token = metadata[ConsistencyToken.metadataKey] {
            // A token the store would refuse is refused there, in its words.
            guard let decoded = try? ConsistencyToken.decode(token, key: store.pageTokenKey) else { return nil }
            revision = decoded
        }
        let answered: CallOutcome? = store.accessIndex.withView(atLeast: revision, now: store.clock()) { index in
            var authenticated = false
            do {
                let principal = try Authenticator.authenticate(metadata, transport: connection.transport, index)
                authenticated = true
                try handler.rule.check(principal, method: handler.fullName)
                return CallOutcome(status: Self.okStatus, payload: try indexed(payload, index), authenticated: true)
            } catch {
                var outcome = failure(error, method: handler.fullName)
                outcome.authenticated = authenticated
                return outcome
            }
        }
        guard let outcome = answered else { return nil }
        record(handler, handler.fullName, outcome: outcome, connection: connection, since: started)
        return outcome
    }

    /// Runs one call to completion. Never throws: failures become statuses.
    public func dispatch(_ request: Ttrpc_Request, connection: ConnectionInfo) async -> CallOutcome {
        await Self.awaitOutcome { dispatch(request, connection: connection, completion: $0) }
    }

    /// Runs one call to completion, by service and method name; see
    /// `dispatch(service:method:…completion:)`.
    public func dispatch(
        service: String, method: String, metadata: Metadata, payload: [UInt8], connection: ConnectionInfo
    ) async -> CallOutcome {
        await Self.awaitOutcome {
            dispatch(service: service, method: method, metadata: metadata, payload: payload, connection: connection, completion: $0)
        }
    }

    /// Awaits the outcome `start` hands to its completion, on whatever thread.
    /// The outcome crosses through a lock rather than the continuation alone:
    /// a continuation resumed before its task has suspended lets that task go
    /// on through an atomic in the uninstrumented Swift runtime, so
    /// ThreadSanitizer sees no ordering between the thread that built the
    /// outcome (a status with a `google.protobuf.Any` detail, say) and the one
    /// that reads it (swiftlang/swift#57803). The lock (a pthread mutex, which
    /// TSan intercepts) is that ordering, made visible.
    private static func awaitOutcome(_ start: (@escaping @Sendable (CallOutcome) -> Void) -> Void) async -> CallOutcome {
        let handoff = NIOLockedValueBox<CallOutcome?>(nil)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            start { outcome in
                handoff.withLockedValue { $0 = outcome }
                continuation.resume()
            }
        }
        guard let outcome = handoff.withLockedValue({ $0 }) else { preconditionFailure("the completion ran before the resume") }
        return outcome
    }

    /// The anonymous principal, for a method open to anyone called without a
    /// token; nil when the caller must be authenticated.
    private func anonymous(_ handler: MethodHandler, _ metadata: Metadata) -> Principal? {
        handler.rule == .anyone && metadata["authorization"] == nil ? Principal(identity: .anonymous) : nil
    }

    /// Counts the call, and logs it when it failed: a refusal
    /// (UNAUTHENTICATED, PERMISSION_DENIED) at notice, at most once a second
    /// with the number not logged since, since anyone can provoke one at
    /// will; every other failure at debug. Every transport and every path
    /// (access index, reader thread, task) ends here.
    private func record(
        _ handler: MethodHandler?, _ method: @autoclosure () -> String, outcome: CallOutcome, connection: ConnectionInfo,
        since started: ContinuousClock.Instant
    ) {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        metrics.record(
            method: handler?.fullName ?? "unknown", code: outcome.code,
            nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        )
        let code = outcome.code
        guard code != .ok else { return }
        func details() -> Logger.Metadata {
            [
                "rpc.method": "\(method())", "rpc.code": "\(code)", "rpc.error": "\(outcome.status.message)",
                "connection.transport": "\(connection.transport)", "connection.peer": "\(connection.peer)",
                "connection.id": "\(connection.connectionID)",
            ]
        }
        if code == .unauthenticated || code == .permissionDenied {
            refusals.log(logger, "call refused", metadata: details())
        } else if logger.logLevel <= .debug {
            logger.debug("call failed", metadata: details())
        }
    }

    private static let okStatus: Google_Rpc_Status = {
        var status = Google_Rpc_Status()
        status.code = StatusCode.ok.rawValue
        return status
    }()

    /// The logger for one call: call metadata only when someone will read it.
    private func callLogger(method: String, metadata: Metadata, connection: ConnectionInfo) -> Logger {
        var logger = self.logger
        guard logger.logLevel <= .debug else { return logger }
        logger[metadataKey: "rpc.method"] = "\(method)"
        logger[metadataKey: "connection.id"] = "\(connection.connectionID)"
        if let requestID = metadata["orgd-request-id"] { logger[metadataKey: "rpc.request_id"] = "\(requestID)" }
        return logger
    }

    /// The status for a failed call; unexpected errors are logged, not shown.
    private func failure(_ error: Error, method: String) -> CallOutcome {
        switch error {
        case let error as RPCError:
            return CallOutcome(status: error.status, payload: [])
        case is CancellationError:
            return CallOutcome(status: RPCError(.cancelled, "the call was cancelled").status, payload: [])
        default:
            let mapped = Store.rpcError(from: error)
            if mapped.code == .internal {
                logger.error("call failed unexpectedly", metadata: ["rpc.method": "\(method)", "rpc.error": "\(error)"])
            }
            return CallOutcome(status: mapped.status, payload: [])
        }
    }

    private func run(_ handler: MethodHandler, metadata: Metadata, payload: [UInt8], connection: ConnectionInfo) async -> CallOutcome {
        let method = handler.fullName
        var logger = callLogger(method: method, metadata: metadata, connection: connection)
        var authenticated = false
        do {
            var principal = anonymous(handler, metadata)
            if principal == nil { principal = try await authenticator.authenticate(metadata, transport: connection.transport) }
            guard let principal else { preconditionFailure("authenticated or anonymous") }
            authenticated = true
            if logger.logLevel <= .debug { logger[metadataKey: "rpc.principal"] = "\(principal.key)" }
            try handler.rule.check(principal, method: method)
            // Audited calls get their audit record once past the access check
            // on the request (in `MethodTable.add`), not before.
            if metadata[ConsistencyToken.metadataKey] != nil {
                let latest = try await store.latestRevision()
                try ConsistencyToken.check(metadata, key: store.pageTokenKey) { latest }
            }
            let context = CallContext(principal: principal, connection: connection, metadata: metadata, method: method, logger: logger, store: store)
            let committed = CommittedRevision()
            let answer = try await CommittedRevision.$current.withValue(committed) { try await handler.call(context, payload) }
            logger.debug("call ok")
            var outcome = CallOutcome(status: Self.okStatus, payload: answer, authenticated: true)
            outcome.consistencyToken = committed.revision.map { ConsistencyToken.encode($0, key: store.pageTokenKey) }
            return outcome
        } catch {
            var outcome = failure(error, method: method)
            outcome.authenticated = authenticated
            return outcome
        }
    }
}
