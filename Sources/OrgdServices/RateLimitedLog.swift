import Logging
import NIOConcurrencyHelpers

/// A log line that an attacker can provoke at will (a refused connection, a
/// call with a bad token) is written at most once per interval, with the
/// number of those not written since (`refusals.since_last_logged`).
public final class RateLimitedLog: Sendable {
    private struct State {
        var lastLogged: ContinuousClock.Instant?
        var unlogged = 0
    }

    private let state = NIOLockedValueBox(State())
    private let interval: Duration
    private let level: Logger.Level

    public init(interval: Duration = .seconds(10), level: Logger.Level = .warning) {
        self.interval = interval
        self.level = level
    }

    public func log(_ logger: Logger, _ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard logger.logLevel <= level else { return }
        let now = ContinuousClock.now
        let unlogged: Int? = state.withLockedValue { state in
            if let last = state.lastLogged, now - last < interval {
                state.unlogged += 1
                return nil
            }
            defer { (state.lastLogged, state.unlogged) = (now, 0) }
            return state.unlogged
        }
        guard let unlogged else { return }
        var metadata = metadata()
        metadata["refusals.since_last_logged"] = "\(unlogged)"
        logger.log(level: level, message(), metadata: metadata)
    }
}
