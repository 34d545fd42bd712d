import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A log line that an attacker can provoke at will (a refused connection)
/// is written at most once every ten seconds, with the number of those not
/// written since.
final class RateLimitedLog: Sendable {
    private struct State {
        var lastLogged: NIODeadline?
        var unlogged = 0
    }

    private let state = NIOLockedValueBox(State())
    private let interval: TimeAmount

    init(interval: TimeAmount = .seconds(10)) {
        self.interval = interval
    }

    func log(_ logger: Logger, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        let now = NIODeadline.now()
        let unlogged: Int? = state.withLockedValue { state in
            if let last = state.lastLogged, now - last < interval {
                state.unlogged += 1
                return nil
            }
            defer { (state.lastLogged, state.unlogged) = (now, 0) }
            return state.unlogged
        }
        guard let unlogged else { return }
        var metadata = metadata
        metadata["refusals.since_last_logged"] = "\(unlogged)"
        logger.warning(message(), metadata: metadata)
    }
}
