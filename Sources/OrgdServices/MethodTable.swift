import OrgdCore
import OrgdStore
import SwiftProtobuf

/// One callable method: its access rule and the code that runs it on
/// serialized bytes.
public struct MethodHandler: Sendable {
    public let rule: AccessRule
    let call: @Sendable (CallContext, [UInt8]) async throws -> [UInt8]
    /// For read-only methods: the whole call inside a read transaction the
    /// dispatcher already holds (the fast path, with no Swift task).
    let read: (@Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8])?

    init(rule: AccessRule, call: @escaping @Sendable (CallContext, [UInt8]) async throws -> [UInt8],
         read: (@Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8])? = nil) {
        self.rule = rule
        self.call = call
        self.read = read
    }
}

/// The server's methods by service and name, built once at start-up.
public struct MethodTable: Sendable {
    private(set) var services: [String: [String: MethodHandler]] = [:]

    public init() {}

    /// Adds a unary method. The payload is decoded as `Request`; bytes that
    /// do not decode are INVALID_ARGUMENT, before the handler runs.
    ///
    /// Rules that depend on the request (`AccessRule.needsSubject`) take
    /// `subject`, which says what the request is about; they are checked after
    /// decoding and before the handler runs.
    public mutating func add<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, rule: AccessRule,
        subject: (@Sendable (Request) -> AccessSubject)? = nil,
        _ body: @escaping @Sendable (Request, CallContext) async throws -> Response
    ) {
        precondition(rule.needsSubject == (subject != nil), "\(service)/\(method): rule \(rule) and subject disagree")
        services[service, default: [:]][method] = MethodHandler(rule: rule, call: { context, payload in
            let request: Request = try Self.decode(payload)
            if let subject {
                try await rule.check(context.principal, subject: subject(request), store: context.store, method: context.method)
            }
            guard context.audited else { return try await body(request, context).serializedBytes() }
            // Past every access check: what this call changes is audited.
            let record = AuditRecord(
                actor: context.principal.actor, actingFor: context.principal.actingForKey, method: context.method,
                requestJSON: AuditPolicy.requestJSON(request, method: context.method))
            return try await AuditRecord.$current.withValue(record) { try await body(request, context).serializedBytes() }
        })
    }

    /// Adds a read-only method. Its body runs inside a read transaction with
    /// authentication and the access rule, all on one reader thread; the
    /// dispatcher calls it without a Swift task in between (the fast path).
    public mutating func addRead<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, rule: AccessRule,
        subject: (@Sendable (Request) -> AccessSubject)? = nil,
        _ body: @escaping @Sendable (Request, CallContext, StoreTransaction) throws -> Response
    ) {
        precondition(rule.needsSubject == (subject != nil), "\(service)/\(method): rule \(rule) and subject disagree")
        let read: @Sendable (CallContext, [UInt8], StoreTransaction) throws -> [UInt8] = { context, payload, tx in
            let request: Request = try Self.decode(payload)
            if let subject { try rule.check(context.principal, subject: subject(request), tx, method: context.method) }
            return try body(request, context, tx).serializedBytes()
        }
        services[service, default: [:]][method] = MethodHandler(
            rule: rule, call: { context, payload in try await context.store.read { tx in try read(context, payload, tx) } }, read: read)
    }

    static func decode<Request: SwiftProtobuf.Message>(_ payload: [UInt8]) throws -> Request {
        do {
            return try Request(serializedBytes: payload)
        } catch {
            throw RPCError(.invalidArgument, "payload does not decode as \(Request.protoMessageName): \(error)")
        }
    }

    /// Declares methods of the schema that this build does not serve yet:
    /// they answer UNIMPLEMENTED with a message saying so.
    public mutating func addUnimplemented(_ service: String, _ methods: [String]) {
        for method in methods where services[service]?[method] == nil {
            services[service, default: [:]][method] = MethodHandler(rule: .authenticated) { _, _ in
                throw RPCError(.unimplemented, "\(service)/\(method) is declared but not implemented yet")
            }
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
}
