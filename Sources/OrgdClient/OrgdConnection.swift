import Foundation
import struct GRPCCore.MethodDescriptor
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import OrgdCore
import OrgdProto
import OrgdWire
import SwiftProtobuf

/// Where an orgd listens.
public enum OrgdEndpoint: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "tcp:\(host):\(port)"
        }
    }
}

/// Per-call settings.
public struct CallOptions: Sendable {
    /// Sent as `timeout_nano`; the server answers DEADLINE_EXCEEDED past it,
    /// and the client stops waiting shortly after.
    public var timeout: Duration?
    /// Extra metadata; keys are lower-cased.
    public var metadata: [(key: String, value: String)]
    /// Makes a create safe to retry (`idempotency-key`).
    public var idempotencyKey: String?

    public init(timeout: Duration? = nil, metadata: [(key: String, value: String)] = [], idempotencyKey: String? = nil) {
        self.timeout = timeout
        self.metadata = metadata
        self.idempotencyKey = idempotencyKey
    }
}

/// One connection to orgd that multiplexes any number of concurrent calls.
public final class OrgdConnection: Sendable {
    private let channel: Channel
    private let token: String?
    private let actAs: String?
    public let endpoint: OrgdEndpoint

    private init(channel: Channel, endpoint: OrgdEndpoint, token: String?, actAs: String?) {
        self.channel = channel
        self.endpoint = endpoint
        self.token = token
        self.actAs = actAs
    }

    /// Connects. `token` is sent as `authorization: Bearer` on every call;
    /// `actAs` as `orgd-act-as` (for service accounts acting for a user).
    /// With `tls`, a TCP connection speaks TLS and `connect` returns once the
    /// handshake has completed (or throws UNAVAILABLE saying why it failed).
    public static func connect(
        to endpoint: OrgdEndpoint,
        token: String? = nil,
        actAs: String? = nil,
        tls: OrgdTLS? = nil,
        maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdConnection {
        var secure: (context: NIOSSLContext, hostname: String?)?
        if let tls {
            guard case .tcp(let host, _) = endpoint else {
                throw RPCError(.invalidArgument, "TLS is for TCP endpoints; \(endpoint) is a Unix socket")
            }
            secure = (try tls.makeContext(), tls.serverHostname ?? (OrgdTLS.isIPAddress(host) ? nil : host))
        }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let secure {
                        try sync.addHandler(NIOSSLClientHandler(context: secure.context, serverHostname: secure.hostname))
                        try sync.addHandler(TLSHandshakeWaiter(promise: channel.eventLoop.makePromise()))
                    }
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: maximumFrameLength)))
                    try sync.addHandler(ClientHandler())
                }
            }
        let channel: Channel
        do {
            switch endpoint {
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            case .tcp(let host, let port):
                channel = try await bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                    .connect(host: host, port: port).get()
            }
        } catch {
            throw RPCError(.unavailable, "cannot connect to orgd at \(endpoint): \(error)")
        }
        if secure != nil {
            do {
                try await TLSHandshakeWaiter.wait(on: channel)
            } catch {
                try? await channel.close()
                throw RPCError(.unavailable, "TLS handshake with orgd at \(endpoint) failed: \(error)")
            }
        }
        return OrgdConnection(channel: channel, endpoint: endpoint, token: token, actAs: actAs)
    }

    /// Calls a method with a typed request and response. Errors are `RPCError`.
    /// Calls the method `descriptor` names (the generated clients pass it with
    /// the method's own request and answer types).
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor, _ request: Request, options: CallOptions = CallOptions()
    ) async throws -> Response {
        try await call(service: descriptor.service.fullyQualifiedService, method: descriptor.method, request: request, options: options)
    }

    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, request: Request, options: CallOptions = CallOptions()
    ) async throws -> Response {
        let response = try await call(service: service, method: method, payload: try request.serializedBytes(), options: options)
        guard response.status.code == 0 else { throw RPCError(status: response.status) }
        do {
            return try Response(serializedBytes: response.payload)
        } catch {
            throw RPCError(.internal, "the response does not decode as \(Response.protoMessageName): \(error)")
        }
    }

    /// Calls a method with raw payload bytes and returns the whole response
    /// envelope, whatever its status (for tools and tests).
    public func call(service: String, method: String, payload: [UInt8], options: CallOptions = CallOptions()) async throws -> Ttrpc_Response {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = Data(payload)
        var metadata: [Ttrpc_KeyValue] = []
        func add(_ key: String, _ value: String) {
            var entry = Ttrpc_KeyValue()
            entry.key = key.lowercased()
            entry.value = value
            metadata.append(entry)
        }
        if let token { add("authorization", "Bearer \(token)") }
        if let actAs { add("orgd-act-as", actAs) }
        if let key = options.idempotencyKey { add("idempotency-key", key) }
        for (key, value) in options.metadata { add(key, value) }
        request.metadata = metadata
        var deadline: TimeAmount?
        if let timeout = options.timeout {
            let nanos = Self.nanoseconds(timeout)
            request.timeoutNano = max(1, nanos)
            // Leave the server time to say DEADLINE_EXCEEDED itself (a
            // timeout of nearly 300 years needs no local deadline).
            let grace: Int64 = 250_000_000
            deadline = nanos <= Int64.max - grace ? .nanoseconds(nanos + grace) : nil
        }
        let promise = channel.eventLoop.makePromise(of: Ttrpc_Response.self)
        // On a connection that has closed, the write never reaches the
        // handler that owns `promise`: fail the call from the write's failure.
        // (If the handler already answered it, this second completion is ignored.)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in
            promise.fail(RPCError(.unavailable, "the connection is closed"))
        }
        channel.writeAndFlush(PendingCall(request: request, promise: promise, deadline: deadline), promise: written)
        return try await promise.futureResult.get()
    }

    /// Closes the connection; calls still waiting fail with UNAVAILABLE.
    public func close() async {
        try? await channel.close()
    }

    /// The duration in nanoseconds, clamped to what Int64 holds (a Duration
    /// holds far more: `.seconds(Int64.max)` must not trap).
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (total, overflowAgain) = whole.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflowAgain { return whole < 0 ? .min : .max }
        return total
    }
}
