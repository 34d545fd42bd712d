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
        InvitationService(store: store, policy: invitations).register(in: &table)
        for (service, methods) in ServiceCatalog.declared { table.addUnimplemented(service, methods) }
        let services = Set(ServiceCatalog.declared.keys)
        HealthService.register(
            in: &table, isServing: { serving.withLockedValue { $0 } },
            knows: { services.contains($0) || $0 == HealthService.name }
        )
        self.table = table
        self.authenticator = Authenticator(store: store)
        self.logger = logger
        self.serving = serving
        self.store = store
        self.metrics = CallMetrics(factory: metrics)
    }

    /// Health checks answer NOT_SERVING from now on (set while draining).
    public func markNotServing() {
        serving.withLockedValue { $0 = false }
    }

    /// Runs one call to completion. Never throws: failures become statuses.
    public func dispatch(_ request: Ttrpc_Request, connection: ConnectionInfo) async -> CallOutcome {
        let started = ContinuousClock.now
        let outcome = await run(request, connection: connection)
        let known = (try? table.resolve(service: request.service, method: request.method)) != nil
        let (seconds, attoseconds) = (ContinuousClock.now - started).components
        metrics.record(
            method: known ? "\(request.service)/\(request.method)" : "unknown", code: outcome.code,
            nanoseconds: seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        )
        return outcome
    }

    private func run(_ request: Ttrpc_Request, connection: ConnectionInfo) async -> CallOutcome {
        let metadata = Metadata(request.metadata)
        let method = "\(request.service)/\(request.method)"
        var logger = self.logger
        logger[metadataKey: "rpc.method"] = "\(method)"
        logger[metadataKey: "connection.id"] = "\(connection.connectionID)"
        if let requestID = metadata["orgd-request-id"] { logger[metadataKey: "rpc.request_id"] = "\(requestID)" }
        do {
            let handler = try table.resolve(service: request.service, method: request.method)
            let principal: Principal
            if handler.rule == .anyone, metadata["authorization"] == nil {
                principal = Principal(identity: .localOperator)
            } else {
                principal = try await authenticator.authenticate(metadata, transport: connection.transport)
            }
            logger[metadataKey: "rpc.principal"] = "\(principal.key)"
            try handler.rule.check(principal, method: method)
            let context = CallContext(principal: principal, connection: connection, metadata: metadata, method: method, logger: logger, store: store)
            let payload = try await handler.call(context, [UInt8](request.payload))
            logger.debug("call ok")
            var status = Google_Rpc_Status()
            status.code = StatusCode.ok.rawValue
            return CallOutcome(status: status, payload: payload)
        } catch let error as RPCError {
            logger.debug("call failed", metadata: ["rpc.code": "\(error.code)", "rpc.error": "\(error.message)"])
            return CallOutcome(status: error.status, payload: [])
        } catch is CancellationError {
            return CallOutcome(status: RPCError(.cancelled, "the call was cancelled").status, payload: [])
        } catch {
            logger.error("call failed unexpectedly", metadata: ["rpc.error": "\(error)"])
            return CallOutcome(status: RPCError(.internal, "internal error").status, payload: [])
        }
    }
}
