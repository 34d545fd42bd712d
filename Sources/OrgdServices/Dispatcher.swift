import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import OrgdCore
import OrgdProto
import OrgdStore

/// The outcome of one call, ready to be put in a `Response` envelope.
public struct CallOutcome: Sendable {
    public var status: Google_Rpc_Status
    public var payload: [UInt8]
    /// Whether the caller got past authentication (a valid token, the local
    /// operator, or a health check without one), whatever the call's result.
    /// A TCP connection that never makes such a call is closed.
    public var authenticated = false
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
        for (service, methods) in ServiceCatalog.declared { table.addUnimplemented(service, methods) }
        let services = Set(ServiceCatalog.declared.keys)
        HealthService.register(
            // NOT_SERVING while draining, and once the database files are gone.
            in: &table, isServing: { serving.withLockedValue { $0 } && store.isUsable },
            knows: { services.contains($0) || $0 == HealthService.name }
        )
        self.table = table
        self.authenticator = Authenticator(store: store)
        self.logger = logger
        self.serving = serving
        self.store = store
        self.metrics = CallMetrics(factory: metrics)
    }

    /// Every method the server serves and its access rule, sorted: the
    /// source of SECURITY.md's table (a test keeps the two equal).
    public var accessRules: [(method: String, rule: AccessRule)] {
        table.services.flatMap { service, methods in methods.map { ("\(service)/\($0.key)", $0.value.rule) } }
            .sorted { $0.method < $1.method }
    }

    /// Health checks answer NOT_SERVING from now on (set while draining).
    public func markNotServing() {
        serving.withLockedValue { $0 = false }
    }

    /// Runs one call and hands its outcome to `completion`. Read-only methods
    /// run entirely on a reader thread inside one read transaction, with no
    /// Swift task (two thread hand-offs per call instead of four); the rest
    /// run in a task. Returns that task, so the caller can cancel it at a
    /// deadline; nil for the fast path.
    @discardableResult
    public func dispatch(
        _ request: Ttrpc_Request, connection: ConnectionInfo, completion: @escaping @Sendable (CallOutcome) -> Void
    ) -> Task<Void, Never>? {
        let started = ContinuousClock.now
        guard let handler = try? table.resolve(service: request.service, method: request.method), let read = handler.read else {
            return Task {
                completion(await dispatch(request, connection: connection))
            }
        }
        let metadata = Metadata(request.metadata)
        let method = "\(request.service)/\(request.method)"
        store.asyncRead { [self] transaction in
            var outcome: CallOutcome
            var authenticated = false
            do {
                let tx = try transaction.get()
                let principal = try Authenticator.authenticate(metadata, transport: connection.transport, tx)
                authenticated = true
                try handler.rule.check(principal, method: method)
                let context = CallContext(
                    principal: principal, connection: connection, metadata: metadata, method: method,
                    logger: callLogger(method: method, metadata: metadata, connection: connection), store: store)
                outcome = CallOutcome(status: Self.okStatus, payload: try read(context, [UInt8](request.payload), tx))
            } catch {
                outcome = failure(error, method: method)
            }
            outcome.authenticated = authenticated
            record(method, known: true, outcome: outcome, since: started)
            completion(outcome)
        }
        return nil
    }

    /// Runs one call to completion. Never throws: failures become statuses.
    public func dispatch(_ request: Ttrpc_Request, connection: ConnectionInfo) async -> CallOutcome {
        let started = ContinuousClock.now
        let outcome = await run(request, connection: connection)
        let known = (try? table.resolve(service: request.service, method: request.method)) != nil
        record("\(request.service)/\(request.method)", known: known, outcome: outcome, since: started)
        return outcome
    }

    private func record(_ method: String, known: Bool, outcome: CallOutcome, since started: ContinuousClock.Instant) {
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        metrics.record(
            method: known ? method : "unknown", code: outcome.code,
            nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        )
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

    private func run(_ request: Ttrpc_Request, connection: ConnectionInfo) async -> CallOutcome {
        let metadata = Metadata(request.metadata)
        let method = "\(request.service)/\(request.method)"
        var logger = callLogger(method: method, metadata: metadata, connection: connection)
        var authenticated = false
        do {
            let handler = try table.resolve(service: request.service, method: request.method)
            let principal: Principal
            if handler.rule == .anyone, metadata["authorization"] == nil {
                principal = Principal(identity: .anonymous)
            } else {
                principal = try await authenticator.authenticate(metadata, transport: connection.transport)
            }
            authenticated = true
            if logger.logLevel <= .debug { logger[metadataKey: "rpc.principal"] = "\(principal.key)" }
            try handler.rule.check(principal, method: method)
            // Audited calls get their audit record once past the access check
            // on the request (in `MethodTable.add`), not before.
            let context = CallContext(
                principal: principal, connection: connection, metadata: metadata, method: method, logger: logger, store: store,
                audited: AuditPolicy.isAudited(service: request.service, method: request.method))
            let payload = try await handler.call(context, [UInt8](request.payload))
            logger.debug("call ok")
            return CallOutcome(status: Self.okStatus, payload: payload, authenticated: true)
        } catch {
            var outcome = failure(error, method: method)
            outcome.authenticated = authenticated
            logger.debug("call failed", metadata: ["rpc.code": "\(outcome.code)", "rpc.error": "\(outcome.status.message)"])
            return outcome
        }
    }
}
