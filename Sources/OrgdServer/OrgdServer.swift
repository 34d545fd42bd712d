#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OrgdServices
import OrgdWire
import Prometheus
import ServiceLifecycle

/// The orgd server: listens on a Unix socket and/or TCP and serves ttrpc
/// calls through a `Dispatcher`. As a `Service` it runs until graceful
/// shutdown, then stops accepting, lets in-flight calls finish, and closes.
public final class OrgdServer: Service, Sendable {
    private struct State {
        var listeners: [Channel] = []
        var connections: [ObjectIdentifier: Channel] = [:]
        /// Open connections by listener: each has its own budget.
        var open: [Transport: Int] = [:]
        /// Open TCP connections by peer address.
        var byAddress: [String: Int] = [:]
        var nextConnectionID: UInt64 = 1
        var bound: BoundAddresses?
        /// Set at shutdown: connections accepted from then on are closed.
        var stopping = false
        var grpc: GRPCListener?
        /// The TLS listeners' contexts, made again by `reloadTLS`.
        var tls: [ReloadableTLSContext] = []
    }

    /// Why a new connection was not taken.
    private enum Refusal: Error {
        case listenerFull(limit: Int)
        case addressFull(address: String, limit: Int)
        case stopping
    }

    private let configuration: ServerConfiguration
    private let dispatcher: Dispatcher
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let onListening: @Sendable (BoundAddresses) -> Void
    private let metrics: OrgdMetrics
    private let serverMetrics: ServerMetrics
    private let budget: MemoryBudget
    private let refusals = RateLimitedLog()

    /// `metrics` is where every component records; its registry is what the
    /// metrics listener serves. Give the Store and Dispatcher the same factory.
    public init(
        configuration: ServerConfiguration,
        dispatcher: Dispatcher,
        logger: Logger,
        metrics: OrgdMetrics = OrgdMetrics(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onListening: @escaping @Sendable (BoundAddresses) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.dispatcher = dispatcher
        self.logger = logger
        self.metrics = metrics
        self.serverMetrics = ServerMetrics(factory: metrics)
        self.budget = MemoryBudget(limit: configuration.maximumBufferedBytes, metrics: serverMetrics, logger: logger)
        self.group = group
        self.onListening = onListening
    }

    /// Runs until graceful shutdown (SIGTERM, SIGINT) or cancellation.
    public func run() async throws {
        let bound = try await start()
        onListening(bound)
        try? await gracefulShutdown()
        await shutdown()
    }

    /// How TLS is set up when it is on, for the "listening" log lines.
    private var tlsMode: String { configuration.tls?.clientCAPath == nil ? "on" : "mutual" }

    /// Binds the configured listeners and starts accepting.
    public func start() async throws -> BoundAddresses {
        var bound = BoundAddresses()
        do {
            if let path = configuration.unixSocketPath {
                try await UnixSocketFile.prepare(path: path, group: group)
                let channel = try await UnixSocketFile.bindPrivately(path: path, mode: configuration.unixSocketMode) {
                    try await self.bootstrap(transport: .unix, tls: nil).bind(unixDomainSocketPath: $0).get()
                }
                state.withLockedValue { $0.listeners.append(channel) }
                bound.unixSocketPath = path
                logger.info("listening", metadata: ["listen.unix": "\(path)"])
            }
            if let host = configuration.tcpHost {
                let tls = try configuration.tls.map { try ReloadableTLSContext($0) }
                if let tls { state.withLockedValue { $0.tls.append(tls) } }
                let channel = try await ListenFailure.naming("tcp:\(host):\(configuration.tcpPort)") {
                    try await bootstrap(transport: .tcp, tls: tls).bind(host: host, port: configuration.tcpPort).get()
                }
                state.withLockedValue { $0.listeners.append(channel) }
                bound.tcpHost = host
                bound.tcpPort = channel.localAddress?.port
                bound.tcpTLS = tls != nil
                logger.info("listening", metadata: [
                    "listen.tcp": "\(host):\(bound.tcpPort ?? 0)",
                    "listen.tls": "\(tls == nil ? "off" : tlsMode)",
                ])
            }
            if let host = configuration.grpcHost {
                // The TCP listener's TLS files, with ALPN's h2 that gRPC clients require.
                let tls = try configuration.tls.map { try ReloadableTLSContext($0, applicationProtocols: ["h2"]) }
                if let tls { state.withLockedValue { $0.tls.append(tls) } }
                let listener = GRPCListener(
                    host: host, port: configuration.grpcPort, tls: tls, configuration: configuration, dispatcher: dispatcher,
                    logger: logger, group: group, admit: { [self] in admit($0, transport: .tcp) })
                state.withLockedValue { $0.grpc = listener }
                bound.grpcPort = try await ListenFailure.naming("grpc:\(host):\(configuration.grpcPort)") { try await listener.start() }
                bound.grpcHost = host
                bound.grpcTLS = tls != nil
                logger.info("listening", metadata: [
                    "listen.grpc": "\(host):\(bound.grpcPort ?? 0)",
                    "listen.tls": "\(tls == nil ? "off" : tlsMode)",
                ])
            }
            if let host = configuration.metricsHost {
                let channel = try await ListenFailure.naming("metrics:\(host):\(configuration.metricsPort)") {
                    try await MetricsEndpoint.bind(
                        host: host, port: configuration.metricsPort, metrics: metrics,
                        ready: { [state] in state.withLockedValue { $0.bound != nil && !$0.stopping } }, group: group,
                        maximumConnections: configuration.maximumMetricsConnections, timeout: configuration.frameTimeout,
                        logger: logger, metrics: serverMetrics)
                }
                state.withLockedValue { $0.listeners.append(channel) }
                bound.metricsPort = channel.localAddress?.port
                logger.info("listening", metadata: ["listen.metrics": "\(host):\(bound.metricsPort ?? 0)"])
            }
        } catch {
            await shutdown()
            throw error
        }
        state.withLockedValue { $0.bound = bound }
        return bound
    }

    /// Stops accepting, asks every connection to drain (finish in-flight
    /// calls and write out their answers, answer the calls that did not start
    /// UNAVAILABLE), waits up to the drain timeout, then closes whatever is
    /// left. Safe to call twice.
    public func shutdown() async {
        dispatcher.markNotServing()
        let listeners = state.withLockedValue { state in
            state.stopping = true
            defer { state.listeners.removeAll() }
            return state.listeners
        }
        for listener in listeners { try? await listener.close() }
        // gRPC drains its own way (GOAWAY, then close once answered); its
        // connections are in `connections` below, so the same timeout bounds them.
        let grpc = state.withLockedValue { $0.grpc }
        grpc?.beginDraining()
        // Taken after the listeners closed and with `stopping` set, so no
        // connection accepted meanwhile is missed.
        let connections = state.withLockedValue { Array($0.connections.values) }
        if let path = state.withLockedValue({ $0.bound?.unixSocketPath }), !listeners.isEmpty {
            _ = unlink(path)
        }
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
        let closed = EventLoopFuture.andAllComplete(connections.map(\.closeFuture), on: group.any())
        let timeout = group.any().scheduleTask(in: configuration.drainTimeout) {
            for connection in connections { connection.close(promise: nil) }
        }
        try? await closed.get()
        timeout.cancel()
        await grpc?.stop()
        logger.info("server stopped", metadata: ["connections.drained": "\(connections.count)"])
    }

    /// Reads the TLS certificate, key and client CA files again (SIGHUP)
    /// for connections accepted from now on. All or nothing: when a file
    /// cannot be used, every listener keeps what it had and this throws
    /// `TLSSetupError` naming the file. False when TLS is off.
    @discardableResult
    public func reloadTLS() throws -> Bool {
        let contexts = state.withLockedValue { $0.tls }
        let fresh = try contexts.map { try $0.fresh() }
        for (context, made) in zip(contexts, fresh) { context.install(made) }
        return !contexts.isEmpty
    }

    private func bootstrap(transport: Transport, tls: ReloadableTLSContext?) -> ServerBootstrap {
        let maximumFrameLength = configuration.maximumFrameLength
        let acceptLogger = logger
        let serverMetrics = serverMetrics
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Accept failures (EMFILE, ENFILE, ENOMEM) back off for a
                    // moment instead of spinning, and are logged and counted.
                    try channel.pipeline.syncOperations.addHandlers(
                        AcceptBackoffHandler(shouldForwardIOErrorCaught: true, backoffProvider: { _ in .milliseconds(250) }),
                        AcceptErrorLogger(transport: transport, logger: acceptLogger, metrics: serverMetrics))
                }
            }
            // A client may shut its write side and still read its answers.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(
                low: configuration.maximumQueuedResponseBytes / 2, high: configuration.maximumQueuedResponseBytes))
            .childChannelInitializer { [self] channel in
                guard let id = admit(channel, transport: transport) else { return channel.close() }
                let peer = Self.peerName(channel.remoteAddress)
                let handler = ConnectionHandler(
                    dispatcher: dispatcher,
                    info: ConnectionInfo(transport: transport, peer: peer, connectionID: id),
                    limits: ConnectionLimits(configuration, transport: transport),
                    metrics: serverMetrics,
                    budget: budget,
                    logger: logger
                )
                let idle = configuration.idleTimeout
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(NIOSSLServerHandler(context: tls.current))
                        try sync.addHandler(TLSHandshakeGuard(logger: logger, peer: peer, deadline: configuration.frameTimeout))
                    }
                    try sync.addHandler(IdleStateHandler(readTimeout: idle))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: maximumFrameLength)))
                    try sync.addHandler(handler)
                }
            }
    }

    /// What the per-address limit counts by: the IPv4 address, or the IPv6
    /// /64 (one host usually holds a whole /64, so counting single IPv6
    /// addresses would be no limit at all).
    /// A TCP peer as logs name it: `127.0.0.1:52344`, `[::1]:52344`.
    static func peerName(_ address: SocketAddress?) -> String {
        switch address {
        case .v4(let v4)?: "\(v4.host):\(address?.port ?? 0)"
        case .v6(let v6)?: "[\(v6.host)]:\(address?.port ?? 0)"
        case let other?: "\(other)"
        case nil: "unknown"
        }
    }

    static func addressKey(_ address: SocketAddress) -> String {
        if case .v6(let v6) = address {
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0.prefix(8)) }
            if bytes.prefix(8) != [0, 0, 0, 0, 0, 0, 0, 0] {
                return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                    .joined(separator: ":") + "::/64"
            }
        }
        return address.ipAddress ?? "\(address)"
    }

    /// Records a new connection (ttrpc or gRPC) against its listener's budget
    /// and, on TCP, its address's: its id, or nil (logged, counted) when it
    /// must be closed.
    private func admit(_ channel: Channel, transport: Transport) -> UInt64? {
        switch register(channel, transport: transport) {
        case .success(let registered):
            return registered
        case .failure(.listenerFull(let limit)):
            refusals.log(logger, "connection refused: the listener's connection limit is reached",
                         metadata: ["listen.transport": "\(transport)", "limit.connections": "\(limit)"])
            serverMetrics.connectionClosed(reason: .connectionLimit)
        case .failure(.addressFull(let address, let limit)):
            refusals.log(logger, "connection refused: the address's connection limit is reached",
                         metadata: ["connection.address": "\(address)", "limit.connections_per_address": "\(limit)"])
            serverMetrics.connectionClosed(reason: .addressLimit)
        case .failure(.stopping):
            break
        }
        return nil
    }

    /// Records a new connection against its listener's budget and, on TCP,
    /// its address's; the reason when either is full.
    private func register(_ channel: Channel, transport: Transport) -> Result<UInt64, Refusal> {
        let key = ObjectIdentifier(channel)
        let limit = transport == .unix ? configuration.maximumUnixConnections : configuration.maximumConnections
        let perAddress = configuration.maximumConnectionsPerAddress
        let address = transport == .tcp ? channel.remoteAddress.map(Self.addressKey) : nil
        let registered: Result<UInt64, Refusal> = state.withLockedValue { state in
            guard !state.stopping else { return .failure(.stopping) }
            guard state.open[transport, default: 0] < limit else { return .failure(.listenerFull(limit: limit)) }
            if let address {
                guard state.byAddress[address, default: 0] < perAddress else {
                    return .failure(.addressFull(address: address, limit: perAddress))
                }
                state.byAddress[address, default: 0] += 1
            }
            state.open[transport, default: 0] += 1
            state.connections[key] = channel
            defer { state.nextConnectionID += 1 }
            return .success(state.nextConnectionID)
        }
        guard case .success = registered else { return registered }
        serverMetrics.connectionOpened()
        channel.closeFuture.whenComplete { [state, serverMetrics] _ in
            state.withLockedValue { state in
                state.connections.removeValue(forKey: key)
                state.open[transport, default: 1] -= 1
                if let address {
                    let left = state.byAddress[address, default: 1] - 1
                    state.byAddress[address] = left > 0 ? left : nil
                }
            }
            serverMetrics.connectionClosed()
        }
        return registered
    }
}

/// A listener that could not be bound, in words that name it: "cannot
/// listen on tcp:127.0.0.1:7420: address already in use", not NIO's
/// `bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)`.
public struct ListenFailure: Error, CustomStringConvertible {
    public let description: String

    static func naming<T>(_ address: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            throw ListenFailure(description: "cannot listen on \(address): \(reason(error))")
        }
    }

    private static func reason(_ error: Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)).lowercased() }
        // grpc-swift wraps the socket's error; find it.
        let mirror = Mirror(reflecting: error)
        for child in mirror.children {
            if let cause = child.value as? Error { return reason(cause) }
            if let cause = child.value as? (any Error)? , let cause { return reason(cause) }
        }
        return "\(error)"
    }
}
