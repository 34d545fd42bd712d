import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OrgdServices

/// The gRPC listener beside ttrpc: grpc-swift's `GRPCServer` over
/// grpc-swift-nio-transport's HTTP/2, serving the Dispatcher's methods
/// (`GRPCDispatchService`). The listening socket is ours (`OrgdListenerFactory`),
/// so that each connection is counted against the TCP budget and gets the
/// same TLS context and handshake deadline as the ttrpc TCP listener.
final class GRPCListener: Sendable {
    private let server: GRPCServer<HTTP2ServerTransport.Custom<OrgdListenerFactory>>
    private let serving = NIOLockedValueBox<Task<Void, any Error>?>(nil)
    private let draining: NIOLockedValueBox<Bool>
    private let logger: Logger

    /// `admit` records a new connection against the server's budgets and
    /// gives its id, or nil when it must be refused.
    init(
        host: String, port: Int, tls: ReloadableTLSContext?, configuration: ServerConfiguration, dispatcher: Dispatcher,
        logger: Logger, group: any EventLoopGroup, admit: @escaping @Sendable (Channel) -> UInt64?
    ) {
        let connections = GRPCConnections()
        let draining = NIOLockedValueBox(false)
        let factory = OrgdListenerFactory(
            eventLoopGroup: group, host: host, port: port, tls: tls, handshakeDeadline: configuration.frameTimeout, logger: logger,
            admit: { channel in
                guard let id = admit(channel) else { return false }
                connections.opened(channel, id: id)
                return true
            })
        var config = HTTP2ServerTransport.Custom<OrgdListenerFactory>.Config.defaults
        // The same limits as ttrpc: a message as large as a frame, as many
        // concurrent calls per connection, the same idle timeout.
        config.rpc.maxRequestPayloadSize = configuration.maximumFrameLength
        config.http2.maxConcurrentStreams = configuration.maximumCallsPerConnection
        config.connection.maxIdleTime = .nanoseconds(configuration.idleTimeout.nanoseconds)
        let service = GRPCDispatchService(
            dispatcher: dispatcher,
            limits: GRPCCallLimits(maximumEntries: configuration.maximumMetadataEntries, maximumBytes: configuration.maximumMetadataBytes),
            connections: connections,
            draining: { draining.withLockedValue { $0 } })
        server = GRPCServer(transport: HTTP2ServerTransport.Custom(listenerFactory: factory, config: config), services: [service])
        self.draining = draining
        self.logger = logger
    }

    /// Starts serving; returns the port bound, or throws why it could not.
    func start() async throws -> Int {
        let task = Task { [server] in try await server.serve() }
        serving.withLockedValue { $0 = task }
        let address = await server.transport.listeningAddress
        if let port = address?.ipv4?.port ?? address?.ipv6?.port {
            return port
        }
        // Not bound: serve() ended; its error says why.
        try await task.value
        throw GRPCListenerError.notBound
    }

    /// Health says NOT_SERVING already (the Dispatcher's); Watch streams send
    /// it and end, the listener closes, and each connection gets GOAWAY and
    /// closes once its in-flight calls are answered.
    func beginDraining() {
        draining.withLockedValue { $0 = true }
        server.beginGracefulShutdown()
    }

    /// Ends the server once its connections are closed (drained, or closed
    /// at the drain timeout): calls still waiting in it are cancelled.
    func stop() async {
        let task = serving.withLockedValue { $0 }
        task?.cancel()
        do {
            try await task?.value
        } catch {
            logger.warning("the gRPC server stopped with an error", metadata: ["error": "\(error)"])
        }
    }
}

enum GRPCListenerError: Error, CustomStringConvertible {
    case notBound
    var description: String { "the gRPC listener did not bind" }
}

/// Connection ids by the peer address as grpc-swift words it in
/// `ServerContext.remotePeer` (`ipv4:127.0.0.1:5000`), so a call's logs name
/// its connection as on ttrpc.
final class GRPCConnections: Sendable {
    private let ids = NIOLockedValueBox<[String: UInt64]>([:])

    func opened(_ channel: Channel, id: UInt64) {
        guard let peer = Self.peer(channel.remoteAddress) else { return }
        ids.withLockedValue { $0[peer] = id }
        channel.closeFuture.whenComplete { [ids] _ in _ = ids.withLockedValue { $0.removeValue(forKey: peer) } }
    }

    func id(of peer: String) -> UInt64 {
        ids.withLockedValue { $0[peer] } ?? 0
    }

    static func peer(_ address: NIOCore.SocketAddress?) -> String? {
        switch address {
        case .v4(let v4)?: "ipv4:\(v4.host):\(address?.port ?? 0)"
        case .v6(let v6)?: "ipv6:[\(v6.host)]:\(address?.port ?? 0)"
        default: nil
        }
    }
}

/// Binds the gRPC listening socket and sets each accepted connection up:
/// admitted against the budgets (or closed), TLS with the handshake deadline,
/// then grpc-swift's HTTP/2 pipeline.
struct OrgdListenerFactory: HTTP2ServerTransport.ListenerFactory {
    let eventLoopGroup: any EventLoopGroup
    let host: String
    let port: Int
    let tls: ReloadableTLSContext?
    let handshakeDeadline: TimeAmount
    let logger: Logger
    let admit: @Sendable (Channel) -> Bool

    /// Fails a refused connection's set-up: NIO then drops it unseen.
    struct Refused: Error {}

    func makeListeningChannel(
        listenerConfigurator: HTTP2ServerTransport.ListenerConfigurator,
        connectionConfigurator: HTTP2ServerTransport.ConnectionConfigurator
    ) async throws -> NIOAsyncChannel<HTTP2ServerTransport.ConnectionConfigurator.ConnectionChannel, Never> {
        let (tls, logger, deadline, admit) = (self.tls, self.logger, self.handshakeDeadline, self.admit)
        return try await ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { listenerConfigurator.configure(channel: $0) }
            .bind(host: host, port: port) { channel in
                guard admit(channel) else {
                    return channel.close().flatMapThrowing { throw Refused() }
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLServerHandler(context: tls.current))
                        let peer = OrgdServer.peerName(channel.remoteAddress)
                        try sync.addHandler(TLSHandshakeGuard(logger: logger, peer: peer, deadline: deadline))
                    }
                }.flatMap {
                    connectionConfigurator.configure(channel: channel, tls: tls == nil ? .none : .configured(requireALPN: false))
                }
            }
    }
}
