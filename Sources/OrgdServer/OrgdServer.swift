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
        var nextConnectionID: UInt64 = 1
        var bound: BoundAddresses?
    }

    private let configuration: ServerConfiguration
    private let dispatcher: Dispatcher
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())
    private let onListening: @Sendable (BoundAddresses) -> Void
    private let metrics: PrometheusMetricsFactory
    private let serverMetrics: ServerMetrics

    /// `metrics` is where every component records; its registry is what the
    /// metrics listener serves. Give the Store and Dispatcher the same factory.
    public init(
        configuration: ServerConfiguration,
        dispatcher: Dispatcher,
        logger: Logger,
        metrics: PrometheusMetricsFactory = PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onListening: @escaping @Sendable (BoundAddresses) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.dispatcher = dispatcher
        self.logger = logger
        self.metrics = metrics
        self.serverMetrics = ServerMetrics(factory: metrics)
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
                let tls = try configuration.tls?.makeContext()
                let channel = try await bootstrap(transport: .tcp, tls: tls).bind(host: host, port: configuration.tcpPort).get()
                state.withLockedValue { $0.listeners.append(channel) }
                bound.tcpHost = host
                bound.tcpPort = channel.localAddress?.port
                bound.tcpTLS = tls != nil
                logger.info("listening", metadata: [
                    "listen.tcp": "\(host):\(bound.tcpPort ?? 0)",
                    "listen.tls": "\(tls == nil ? "off" : configuration.tls?.clientCAPath == nil ? "on" : "mutual")",
                ])
            }
            if let host = configuration.metricsHost {
                let channel = try await MetricsEndpoint.bind(host: host, port: configuration.metricsPort, registry: metrics.registry, group: group)
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
    /// calls, refuse new ones), waits up to the drain timeout, then closes
    /// whatever is left. Safe to call twice.
    public func shutdown() async {
        dispatcher.markNotServing()
        let (listeners, connections) = state.withLockedValue { state in
            defer { state.listeners.removeAll() }
            return (state.listeners, Array(state.connections.values))
        }
        for listener in listeners { try? await listener.close() }
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
        logger.info("server stopped", metadata: ["connections.drained": "\(connections.count)"])
    }

    private func bootstrap(transport: Transport, tls: NIOSSLContext?) -> ServerBootstrap {
        let maximumFrameLength = configuration.maximumFrameLength
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelOption(.writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(
                low: configuration.maximumQueuedResponseBytes / 2, high: configuration.maximumQueuedResponseBytes))
            .childChannelInitializer { [self] channel in
                guard let id = register(channel) else {
                    logger.warning("connection refused: the connection limit is reached",
                                   metadata: ["limit.connections": "\(configuration.maximumConnections)"])
                    return channel.close()
                }
                let peer = channel.remoteAddress.map { "\($0)" } ?? "unknown"
                let handler = ConnectionHandler(
                    dispatcher: dispatcher,
                    info: ConnectionInfo(transport: transport, peer: peer, connectionID: id),
                    limits: ConnectionLimits(configuration),
                    metrics: serverMetrics,
                    logger: logger
                )
                let idle = configuration.idleTimeout
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls {
                        try sync.addHandler(NIOSSLServerHandler(context: tls))
                        try sync.addHandler(TLSHandshakeGuard(logger: logger, peer: peer, deadline: configuration.frameTimeout))
                    }
                    try sync.addHandler(IdleStateHandler(readTimeout: idle))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: maximumFrameLength)))
                    try sync.addHandler(handler)
                }
            }
    }

    /// Records a new connection; nil when the limit is reached.
    private func register(_ channel: Channel) -> UInt64? {
        let key = ObjectIdentifier(channel)
        let limit = configuration.maximumConnections
        let registered: UInt64? = state.withLockedValue { state in
            guard state.connections.count < limit else { return nil }
            state.connections[key] = channel
            defer { state.nextConnectionID += 1 }
            return state.nextConnectionID
        }
        guard let id = registered else { return nil }
        serverMetrics.connectionOpened()
        channel.closeFuture.whenComplete { [state, serverMetrics] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
            serverMetrics.connectionClosed()
        }
        return id
    }
}
