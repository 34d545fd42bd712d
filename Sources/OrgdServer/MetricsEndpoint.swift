import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import OrgdServices
import Prometheus
import Synchronization

/// Serves `GET /metrics` in Prometheus text format from orgd's registry,
/// and the HTTP probes: `GET /healthz` (200 while the process serves HTTP at
/// all) and `GET /readyz` (200 once every listener is bound, 503 from the
/// start of shutdown).
///
/// One request per connection: the answer says `Connection: close` and the
/// connection closes once it is written, so a client pipelining requests
/// without reading cannot queue a registry dump per request. A request must
/// complete within `timeout` of connecting, or the connection is closed.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: OrgdMetrics
    private let ready: @Sendable () -> Bool
    private let timeout: TimeAmount
    private var path: String?
    private var answered = false
    private var timer: Scheduled<Void>?

    init(metrics: OrgdMetrics, ready: @escaping @Sendable () -> Bool, timeout: TimeAmount) {
        self.metrics = metrics
        self.ready = ready
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        armTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
    }

    private func armTimer(context: ChannelHandlerContext) {
        timer?.cancel()
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri.split(separator: "?").first.map(String.init) : nil
        case .body:
            break
        case .end:
            guard !answered else { return }
            answered = true
            let (status, body): (HTTPResponseStatus, [UInt8])
            switch path {
            case "/metrics":
                metrics.refreshProcessMetrics()
                (status, body) = (.ok, metrics.registry.emitToBuffer())
            case "/healthz":
                (status, body) = (.ok, Array("ok\n".utf8))
            case "/readyz":
                (status, body) = ready() ? (.ok, Array("ready\n".utf8)) : (.serviceUnavailable, Array("not ready: starting or shutting down\n".utf8))
            default:
                (status, body) = (.notFound, Array("not found: try GET /metrics, /healthz or /readyz\n".utf8))
            }
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: path == "/metrics" ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
            headers.add(name: "Content-Length", value: "\(body.count)")
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Malformed HTTP: the decoder has said so; close.
        context.close(promise: nil)
    }
}

enum MetricsEndpoint {
    /// Binds the metrics listener: at most `maximumConnections` at once (more
    /// are closed at once), each closed when a request does not complete
    /// within `timeout`.
    static func bind(
        host: String, port: Int, metrics orgdMetrics: OrgdMetrics, ready: @escaping @Sendable () -> Bool, group: any EventLoopGroup,
        maximumConnections: Int, timeout: TimeAmount, logger: Logger, metrics: ServerMetrics
    ) async throws -> Channel {
        let open = OpenConnections()
        let refusals = RateLimitedLog()
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers(
                        AcceptBackoffHandler(shouldForwardIOErrorCaught: true, backoffProvider: { _ in .milliseconds(250) }),
                        AcceptErrorLogger(transport: .tcp, logger: logger, metrics: metrics))
                }
            }
            .childChannelInitializer { channel in
                guard open.value.add(1, ordering: .relaxed).newValue <= maximumConnections else {
                    open.value.subtract(1, ordering: .relaxed)
                    refusals.log(logger, "metrics connection refused: the limit is reached", metadata: ["limit.connections": "\(maximumConnections)"])
                    metrics.connectionClosed(reason: .metricsConnectionLimit)
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in open.value.subtract(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: orgdMetrics, ready: ready, timeout: timeout))
                }
            }
            .bind(host: host, port: port).get()
    }
}

/// The metrics listener's open connections, shared by its closures.
private final class OpenConnections: Sendable {
    let value = Atomic<Int>(0)
}
