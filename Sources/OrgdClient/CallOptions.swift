/// Per-call settings, the same for every transport.
public struct CallOptions: Sendable {
    /// Sent as the call's deadline (ttrpc `timeout_nano`, gRPC
    /// `grpc-timeout`); the server answers DEADLINE_EXCEEDED past it, and the
    /// client stops waiting shortly after.
    public var timeout: Duration?
    /// Extra metadata; keys are lower-cased.
    public var metadata: [(key: String, value: String)]
    /// Makes a create safe to retry (`idempotency-key`).
    public var idempotencyKey: String?
    /// Sent as `orgd-consistency-token`: the call is answered from a state
    /// at least as fresh as the write whose answer carried the token
    /// (`OrgdConnection.consistencyToken`, or one another process passed on).
    public var consistencyToken: String?

    public init(
        timeout: Duration? = nil, metadata: [(key: String, value: String)] = [], idempotencyKey: String? = nil,
        consistencyToken: String? = nil
    ) {
        self.timeout = timeout
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
        self.consistencyToken = consistencyToken
    }

    /// How long past the timeout the client still waits, so that the
    /// server's own DEADLINE_EXCEEDED (and its message) is what the caller
    /// sees, whichever transport carried the call.
    static let deadlineGrace: Int64 = 250_000_000
}
