import Foundation
import struct GRPCCore.MethodDescriptor
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS
import OrgdCore
import OrgdProto
import OrgdWire
import SwiftProtobuf

/// One connection to orgd that multiplexes any number of concurrent calls,
/// over ttrpc (Unix socket or TCP), gRPC, or a transport the caller brings.
public final class OrgdConnection: Sendable {
    /// What carries the calls. ttrpc is a case of its own (not an
    /// `OrgdCallTransport`), so its calls take the path they always took:
    /// no metadata list built twice, no existential in between.
    private enum Carrier: Sendable {
        case ttrpc(Channel)
        case transport(any OrgdCallTransport)
    }

    private let carrier: Carrier
    private let token: String?
    private let actAs: String?
    private let newestToken = NIOLockedValueBox<(revision: Int64, token: String)?>(nil)

    /// The consistency token of the newest write answered on this
    /// connection (nil before the first): pass it in
    /// `CallOptions.consistencyToken` — on this connection, another, or to
    /// another process — and that call is answered from a state at least
    /// as fresh as every write this connection made (read your writes, also
    /// after failing over to another daemon).
    public var consistencyToken: String? { newestToken.withLockedValue { $0?.token } }

    /// Keeps `answer`'s token if it is newer than the one kept.
    private func note(_ metadata: some Sequence<(key: String, value: String)>) {
        guard let token = metadata.first(where: { $0.key == ConsistencyTokens.metadataKey })?.value,
              let revision = ConsistencyTokens.revision(of: token)
        else { return }
        newestToken.withLockedValue { newest in
            if newest.map({ $0.revision < revision }) ?? true { newest = (revision, token) }
        }
    }

    private func note(_ response: Ttrpc_Response) {
        guard !response.metadata.isEmpty else { return }
        note(response.metadata.lazy.map { (key: $0.key, value: $0.value) })
    }
    /// Where the connection goes; nil for a transport the caller brought,
    /// and for several addresses (`endpoints`).
    public let endpoint: OrgdEndpoint?

    /// Every address the connection may use, in the order it tries them.
    public var endpoints: [OrgdEndpoint] {
        if case .transport(let transport) = carrier, let failover = transport as? FailoverTransport { return failover.endpoints }
        return endpoint.map { [$0] } ?? []
    }

    private init(carrier: Carrier, endpoint: OrgdEndpoint?, token: String?, actAs: String?) {
        self.carrier = carrier
        self.endpoint = endpoint
        self.token = token
        self.actAs = actAs
    }

    /// A connection whose calls go through `transport` (e.g. a test's,
    /// straight into a dispatcher), with `token` and `actAs` sent as on
    /// any other connection.
    public convenience init(transport: any OrgdCallTransport, token: String? = nil, actAs: String? = nil) {
        self.init(carrier: .transport(transport), endpoint: nil, token: token, actAs: actAs)
    }

    /// Connects. `token` is sent as `authorization: Bearer` on every call;
    /// `actAs` as `orgd-act-as` (for service accounts acting for a user).
    /// With `tls`, a TCP connection speaks TLS and `connect` returns once the
    /// handshake has completed (or throws UNAVAILABLE saying why it failed).
    /// A `.grpc` endpoint (TLS too, with the same settings) connects on its
    /// first call, which fails with UNAVAILABLE if it cannot; answers larger
    /// than `maximumFrameLength` are refused on either transport.
    public static func connect(
        to endpoint: OrgdEndpoint,
        token: String? = nil,
        actAs: String? = nil,
        tls: OrgdTLS? = nil,
        maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdConnection {
        if case .grpc(let host, let port) = endpoint {
            let transport = try GRPCCallTransport(host: host, port: port, tls: tls, maximumMessageLength: maximumFrameLength, group: group)
            return OrgdConnection(carrier: .transport(transport), endpoint: endpoint, token: token, actAs: actAs)
        }
        let secure: (context: NIOSSLContext, hostname: String?)?
        if let tls {
            guard case .tcp(let host, _) = endpoint else {
                throw RPCError(.invalidArgument, "TLS is for TCP endpoints; \(endpoint) is a Unix socket")
            }
            secure = (try tls.makeContext(), tls.serverHostname ?? (OrgdTLS.isIPAddress(host) ? nil : host))
        } else {
            secure = nil
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
            case .grpc:
                preconditionFailure("gRPC endpoints are connected above")
            }
        } catch {
            var unix = false
            if case .unix = endpoint { unix = true }
            throw RPCError(
                .unavailable, "cannot connect to orgd at \(endpoint): \(ConnectionFailure.reason(error))\(ConnectionFailure.hint(error, unix: unix))")
        }
        if secure != nil {
            do {
                try await TLSHandshakeWaiter.wait(on: channel)
            } catch {
                try? await channel.close()
                throw RPCError(.unavailable, "TLS handshake with orgd at \(endpoint) failed: \(ConnectionFailure.reason(error))")
            }
        }
        return OrgdConnection(carrier: .ttrpc(channel), endpoint: endpoint, token: token, actAs: actAs)
    }

    /// Connects to the first of `endpoints` that answers (in order) and fails
    /// over: when that daemon goes away, later calls go to the next address
    /// (wrapping round). A call no daemon ran (the connection was found
    /// closed before it was written, or the daemon refused it while shutting
    /// down) goes to the next address at once; a call already sent on a
    /// connection that dropped fails UNAVAILABLE and is not sent again, reads
    /// too (see `FailoverTransport`). With every address down, UNAVAILABLE
    /// names each address and why it failed. One address is `connect(to:)`.
    /// The other arguments are `connect(to:)`'s, the same for every address.
    public static func connect(
        to endpoints: [OrgdEndpoint],
        token: String? = nil,
        actAs: String? = nil,
        tls: OrgdTLS? = nil,
        maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdConnection {
        guard let first = endpoints.first else { throw RPCError(.invalidArgument, "no orgd address given") }
        guard endpoints.count > 1 else {
            return try await connect(to: first, token: token, actAs: actAs, tls: tls, maximumFrameLength: maximumFrameLength, group: group)
        }
        let failover = FailoverTransport(endpoints: endpoints) { endpoint in
            try await connect(to: endpoint, tls: tls, maximumFrameLength: maximumFrameLength, group: group)
        }
        try await failover.connect()
        return OrgdConnection(carrier: .transport(failover), endpoint: nil, token: token, actAs: actAs)
    }

    /// Calls a method with a typed request and response. Errors are `RPCError`.
    /// Calls the method `descriptor` names (the generated clients pass it with
    /// the method's own request and answer types).
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ descriptor: MethodDescriptor, _ request: Request, options: CallOptions = CallOptions()
    ) async throws -> Response {
        guard case .transport(let transport) = carrier else {
            return try await call(service: descriptor.service.fullyQualifiedService, method: descriptor.method, request: request, options: options)
        }
        let answer = try await transport.send(outgoing(descriptor, payload: try request.serializedBytes(), options: options))
        note(answer.metadata)
        return try Self.decode(answer.payload)
    }

    /// Calls `service`/`method` by name (for tools; the generated clients
    /// pass descriptors).
    public func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        service: String, method: String, request: Request, options: CallOptions = CallOptions()
    ) async throws -> Response {
        guard case .ttrpc = carrier else {
            return try await call(MethodDescriptor(fullyQualifiedService: service, method: method), request, options: options)
        }
        let response = try await call(service: service, method: method, payload: try request.serializedBytes(), options: options)
        guard response.status.code == 0 else { throw RPCError(status: response.status) }
        return try Self.decode(response.payload)
    }

    /// Calls a method with raw request bytes and returns the answer's bytes,
    /// over any transport; a failed call throws `RPCError`.
    public func call(_ descriptor: MethodDescriptor, payload: [UInt8], options: CallOptions = CallOptions()) async throws -> [UInt8] {
        switch carrier {
        case .ttrpc:
            let response = try await call(service: descriptor.service.fullyQualifiedService, method: descriptor.method, payload: payload, options: options)
            guard response.status.code == 0 else { throw RPCError(status: response.status) }
            return [UInt8](response.payload)
        case .transport(let transport):
            let answer = try await transport.send(outgoing(descriptor, payload: payload, options: options))
            note(answer.metadata)
            return answer.payload
        }
    }

    private static func decode<Response: SwiftProtobuf.Message>(_ bytes: some SwiftProtobufContiguousBytes) throws -> Response {
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw RPCError(.internal, "the response does not decode as \(Response.protoMessageName): \(error)")
        }
    }

    /// A call for an `OrgdCallTransport`, with the same metadata the ttrpc
    /// path puts in its envelope, in the same order.
    private func outgoing(_ descriptor: MethodDescriptor, payload: [UInt8], options: CallOptions) -> OutgoingCall {
        var metadata: [(key: String, value: String)] = []
        metadata.reserveCapacity(options.metadata.count + 3)
        if let token { metadata.append(("authorization", "Bearer \(token)")) }
        if let actAs { metadata.append(("orgd-act-as", actAs)) }
        if let key = options.idempotencyKey { metadata.append(("idempotency-key", key)) }
        if let token = options.consistencyToken { metadata.append((ConsistencyTokens.metadataKey, token)) }
        for (key, value) in options.metadata { metadata.append((key.lowercased(), value)) }
        return OutgoingCall(method: descriptor, payload: payload, metadata: metadata, timeout: options.timeout)
    }

    /// Calls a method with raw payload bytes and returns the whole response
    /// envelope, whatever its status (for tools and tests). Over another
    /// transport the envelope is made from the answer or the error.
    public func call(service: String, method: String, payload: [UInt8], options: CallOptions = CallOptions()) async throws -> Ttrpc_Response {
        guard case .ttrpc(let channel) = carrier else {
            var response = Ttrpc_Response()
            do {
                response.payload = Data(try await call(MethodDescriptor(fullyQualifiedService: service, method: method), payload: payload, options: options))
            } catch let error as RPCError {
                response.status = error.status
            }
            return response
        }
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
        if let token = options.consistencyToken { add(ConsistencyTokens.metadataKey, token) }
        for (key, value) in options.metadata { add(key, value) }
        request.metadata = metadata
        let response = try await Self.send(request, timeout: options.timeout, on: channel)
        note(response)
        return response
    }

    /// Sends `call` as it is, its metadata already assembled (by the
    /// `OrgdConnection` in front of a `FailoverTransport`), and returns the
    /// answer; a failed call throws `RPCError`.
    func send(_ call: OutgoingCall) async throws -> IncomingAnswer {
        let channel: Channel
        switch carrier {
        case .ttrpc(let ttrpc): channel = ttrpc
        case .transport(let transport): return try await transport.send(call)
        }
        var request = Ttrpc_Request()
        request.service = call.method.service.fullyQualifiedService
        request.method = call.method.method
        request.payload = Data(call.payload)
        request.metadata = call.metadata.map { key, value in
            var entry = Ttrpc_KeyValue()
            entry.key = key
            entry.value = value
            return entry
        }
        let response = try await Self.send(request, timeout: call.timeout, on: channel)
        guard response.status.code == 0 else { throw RPCError(status: response.status) }
        return IncomingAnswer(payload: [UInt8](response.payload), metadata: response.metadata.map { (key: $0.key, value: $0.value) })
    }

    /// Whether calls can still go out: false once a ttrpc connection has
    /// closed (the server went away, or `close()`). A transport the caller
    /// brought counts as open; its calls say otherwise.
    var isOpen: Bool {
        switch carrier {
        case .ttrpc(let channel): channel.isActive
        case .transport: true
        }
    }

    /// Whether the calls go over gRPC, where a call not sent and one lost in
    /// flight fail alike.
    var isGRPC: Bool {
        if case .grpc = endpoint { true } else { false }
    }

    /// What a ttrpc call fails with when it never left this process: the
    /// connection had closed before it was written. Such a call did not
    /// reach a server, so `FailoverTransport` may send it to another.
    static let closedBeforeSending = "the connection is closed"

    /// Writes `request` on `channel` and waits for its response envelope.
    private static func send(_ request: Ttrpc_Request, timeout: Duration?, on channel: Channel) async throws -> Ttrpc_Response {
        var request = request
        var deadline: TimeAmount?
        if let timeout {
            let nanos = Self.nanoseconds(timeout)
            request.timeoutNano = max(1, nanos)
            // Leave the server time to say DEADLINE_EXCEEDED itself (a
            // timeout of nearly 300 years needs no local deadline).
            let grace = CallOptions.deadlineGrace
            deadline = nanos <= Int64.max - grace ? .nanoseconds(nanos + grace) : nil
        }
        let promise = channel.eventLoop.makePromise(of: Ttrpc_Response.self)
        // On a connection that has closed, the write never reaches the
        // handler that owns `promise`: fail the call from the write's failure.
        // (If the handler already answered it, this second completion is ignored.)
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in
            promise.fail(RPCError(.unavailable, closedBeforeSending))
        }
        channel.writeAndFlush(PendingCall(request: request, promise: promise, deadline: deadline), promise: written)
        return try await promise.futureResult.get()
    }

    /// Closes the connection: later calls fail with UNAVAILABLE. On ttrpc,
    /// calls still waiting fail with UNAVAILABLE too; on gRPC they finish.
    public func close() async {
        switch carrier {
        case .ttrpc(let channel): try? await channel.close()
        case .transport(let transport): await transport.close()
        }
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
