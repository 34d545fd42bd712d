import Logging
import NIOCore
import OrgdServices

/// Sits on a listener: logs failed accepts (running out of file descriptors
/// is the usual one) at most once every ten seconds, with how many there were
/// meanwhile, and counts every one. Without it a listener that cannot accept
/// fails in silence.
final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = Channel

    private let transport: Transport
    private let logger: Logger
    private let metrics: ServerMetrics
    private var lastLogged: NIODeadline?
    private var unlogged = 0

    init(transport: Transport, logger: Logger, metrics: ServerMetrics) {
        self.transport = transport
        self.logger = logger
        self.metrics = metrics
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        metrics.acceptFailed()
        let now = NIODeadline.now()
        if let lastLogged, now - lastLogged < .seconds(10) {
            unlogged += 1
            return
        }
        logger.error("accepting a connection failed; retrying shortly", metadata: [
            "listen.transport": "\(transport)", "error": "\(error)", "errors.since_last_logged": "\(unlogged)",
        ])
        lastLogged = now
        unlogged = 0
    }
}
