import struct GRPCCore.MethodDescriptor
import OrgdCore

/// One unary call on its way to orgd: the method, the request's bytes, and
/// the metadata the connection put together (token, act-as, idempotency key,
/// the caller's extras; keys lower-case).
public struct OutgoingCall: Sendable {
    public var method: MethodDescriptor
    public var payload: [UInt8]
    public var metadata: [(key: String, value: String)]
    /// The caller's deadline, if any (`CallOptions.timeout`).
    public var timeout: Duration?

    public init(method: MethodDescriptor, payload: [UInt8], metadata: [(key: String, value: String)], timeout: Duration?) {
        self.method = method
        self.payload = payload
        self.metadata = metadata
        self.timeout = timeout
    }
}

/// A call's answer: the response message's bytes and the answer's metadata
/// (`orgd-consistency-token` after a write).
public struct IncomingAnswer: Sendable {
    public var payload: [UInt8]
    public var metadata: [(key: String, value: String)]

    public init(payload: [UInt8], metadata: [(key: String, value: String)] = []) {
        self.payload = payload
        self.metadata = metadata
    }

    /// The write's consistency token, if the answer carried one.
    public var consistencyToken: String? {
        metadata.first { $0.key == ConsistencyTokens.metadataKey }?.value
    }
}

/// What carries calls to orgd and their answers back, below the typed
/// clients: gRPC (`OrgdEndpoint.grpc`) is one, and a test can supply its own
/// (the service tests hand calls straight to a `Dispatcher`) with
/// `OrgdConnection(transport:)`. ttrpc is built into `OrgdConnection` and
/// does not go through this protocol, so its calls pay for no existential.
public protocol OrgdCallTransport: Sendable {
    /// Sends `call` and returns the answer. A call that does not succeed
    /// throws `OrgdCore.RPCError`, with the code, message and field
    /// violations the server sent.
    func send(_ call: OutgoingCall) async throws -> IncomingAnswer

    /// Closes the transport: later calls fail with UNAVAILABLE.
    func close() async
}
