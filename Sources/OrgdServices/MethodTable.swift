import struct GRPCCore.MethodDescriptor
import OrgdCore
import OrgdStore
import SwiftProtobuf

/// One callable method: its descriptor and policy, and the code that runs it
/// on serialized bytes.
public struct MethodHandler: Sendable {
    public let descriptor: MethodDescriptor
    public let policy: MethodPolicy
    /// The RPC's request type (for tools that build requests, the fuzzer).
    public let inputType: any SwiftProtobuf.Message.Type
    public var rule: AccessRule { policy.access }
    /// `service/method`, e.g. `orgd.v1.OrganizationService/CreateOrganization`:
    /// made once here, since every call names it for its checks, logs and metrics.
    public let fullName: String
    let call: @Sendable (CallContext, [UInt8]) async throws -> [UInt8]
    /// For read-only methods: the whole call inside a read transaction the
    /// dispatcher already holds (the fast path, with no Swift task).
    let read: (@Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8])?
    /// For methods the access index answers: the whole call on one revision
    /// of it, on the thread that read the call (no database, no hand-off).
    let indexed: (@Sendable ([UInt8], AccessIndexView) throws -> [UInt8])?
}

/// The server's methods by service and name, built once at start-up from the
/// generated surface: each handler is registered by its RPC's generated type
/// (`Orgd_V1_…Service.Method.X`), which gives its name, its request and answer
/// types and its policy.
public struct MethodTable: Sendable {
    private(set) var services: [String: [String: MethodHandler]] = [:]

    public init() {}

    /// Adds a unary method. The payload is decoded as the RPC's input; bytes
    /// that do not decode are INVALID_ARGUMENT, before the handler runs.
    ///
    /// Rules that depend on the request (`AccessRule.needsSubject`) take
    /// `subject`, which says what the request is about; they are checked
    /// inside each transaction the handler opens (`TransactionCheck`), before
    /// its body runs there: on the writer for a write, in one transaction with
    /// the change.
    mutating func add<Method: PolicedMethod>(
        _ method: Method.Type,
        subject: (@Sendable (Method.Input) -> AccessSubject)? = nil,
        _ body: @escaping @Sendable (Method.Input, CallContext) async throws -> Method.Output
    ) {
        let rule = Method.policy.access
        precondition(rule.needsSubject == (subject != nil), "\(Method.fullName): rule \(rule) and subject disagree")
        insert(Method.self, call: { context, payload in
            let request: Method.Input = try Self.decode(payload)
            let audited: @Sendable () async throws -> [UInt8] = {
                guard let record = Self.auditRecord(Method.self, request, context) else { return try await body(request, context).serializedBytes() }
                // Past every access check: what this call changes is audited.
                return try await AuditRecord.$current.withValue(record) { try await body(request, context).serializedBytes() }
            }
            guard let subject, rule.needsSubject(for: context.principal) else { return try await audited() }
            // The rule's data-dependent part runs first inside every
            // transaction the handler opens, its write included.
            let (principal, about, method) = (context.principal, subject(request), context.method)
            let decide: @Sendable (StoreTransaction) throws -> Void = { tx in try rule.check(principal, subject: about, tx, method: method) }
            let check = TransactionCheck(decide)
            let checkAlone: @Sendable () async throws -> Void = { try await context.store.read(decide) }
            let answer: [UInt8]
            do {
                answer = try await TransactionCheck.$current.withValue(check) { try await audited() }
            } catch where !check.hasPassed {
                // The handler refused before its first transaction (bad
                // input, say): a caller the rule refuses learns only that.
                try await checkAlone()
                throw error
            }
            // A handler that opened no transaction has not been checked yet.
            if !check.hasPassed { try await checkAlone() }
            return answer
        })
    }

    /// Adds a read-only method. Its body runs inside a read transaction with
    /// authentication and the access rule, all on one reader thread; the
    /// dispatcher calls it without a Swift task in between (the fast path).
    ///
    /// `indexed`, when given, answers the same call from the access index
    /// (see `Dispatcher.answerFromIndex`): it must decide exactly as `body`
    /// does. Only for rules that need no more than the principal.
    mutating func addRead<Method: PolicedMethod>(
        _ method: Method.Type,
        subject: (@Sendable (Method.Input) -> AccessSubject)? = nil,
        indexed: (@Sendable (Method.Input, AccessIndexView) throws -> Method.Output)? = nil,
        _ body: @escaping @Sendable (Method.Input, CallContext, StoreTransaction) throws -> Method.Output
    ) {
        let rule = Method.policy.access
        precondition(rule.needsSubject == (subject != nil), "\(Method.fullName): rule \(rule) and subject disagree")
        precondition(indexed == nil || subject == nil, "\(Method.fullName): the index answers only rules on the principal alone")
        precondition(Method.policy.audit == .none, "\(Method.fullName): a read-only method changes nothing to audit")
        let read: @Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8] = { context, payload, tx in
            let request: Method.Input = try Self.decode(payload)
            if let subject { try rule.check(context.principal, subject: subject(request), tx, method: context.method) }
            return try body(request, context, tx).serializedBytes()
        }
        let fromIndex = indexed.map { indexed in
            { @Sendable (payload: [UInt8], index: AccessIndexView) throws -> [UInt8] in
                try indexed(try Self.decode(payload), index).serializedBytes()
            }
        }
        insert(
            Method.self, call: { context, payload in try await context.store.read { tx in try read(context, payload, tx) } }, read: read,
            indexed: fromIndex)
    }

    private mutating func insert<Method: PolicedMethod>(
        _ method: Method.Type, call: @escaping @Sendable (CallContext, [UInt8]) async throws -> [UInt8],
        read: (@Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8])? = nil,
        indexed: (@Sendable ([UInt8], AccessIndexView) throws -> [UInt8])? = nil
    ) {
        let descriptor = Method.descriptor
        precondition(services[descriptor.service.fullyQualifiedService]?[descriptor.method] == nil, "\(Method.fullName) registered twice")
        services[descriptor.service.fullyQualifiedService, default: [:]][descriptor.method] =
            MethodHandler(
                descriptor: descriptor, policy: Method.policy, inputType: Method.Input.self, fullName: Method.fullName, call: call, read: read, indexed: indexed)
    }

    /// The audit record of a call that its RPC's policy audits.
    private static func auditRecord<Method: PolicedMethod>(_ method: Method.Type, _ request: Method.Input, _ context: CallContext) -> AuditRecord? {
        let json: String
        switch Method.policy.audit {
        case .none: return nil
        case .callOnly: json = #"{"token":"(not recorded)"}"#
        case .request:
            var options = JSONEncodingOptions()
            options.preserveProtoFieldNames = true
            json = (try? request.jsonString(options: options)) ?? "{}"
        }
        return AuditRecord(actor: context.principal.actor, actingFor: context.principal.actingForKey, method: context.method, requestJSON: json)
    }

    static func decode<Request: SwiftProtobuf.Message>(_ payload: [UInt8]) throws -> Request {
        do {
            return try Request(serializedBytes: payload)
        } catch {
            throw RPCError(.invalidArgument, "payload does not decode as \(Request.protoMessageName): \(error)")
        }
    }

    /// Looks a method up; UNIMPLEMENTED, worded as ttrpc words it, when absent.
    public func resolve(service: String, method: String) throws -> MethodHandler {
        guard let methods = services[service] else { throw RPCError(.unimplemented, "service \(service)") }
        guard let handler = methods[method] else { throw RPCError(.unimplemented, "method \(method)") }
        return handler
    }

    /// Whether `service` is served at all (for health checks).
    public func hasService(_ service: String) -> Bool { services[service] != nil }

    /// The RPCs of `methods` that have no handler (the generated surface
    /// lists every RPC; each must be registered).
    func missing(_ methods: [any PolicedMethod.Type]) -> [String] {
        methods.filter { services[$0.descriptor.service.fullyQualifiedService]?[$0.descriptor.method] == nil }.map { $0.fullName }
    }
}
