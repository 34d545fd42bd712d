import CoreMetrics
import Synchronization

/// The server's own gauges and counters: open connections, calls in flight,
/// bytes held for unfinished frames and untaken answers, connections the
/// server closed or refused (by reason), and failed accepts.
final class ServerMetrics: Sendable {
    /// Why the server closed or refused a connection.
    enum CloseReason: String, Sendable, CaseIterable {
        /// The listener's connection limit was reached.
        case connectionLimit = "connection_limit"
        /// The peer address's connection limit was reached.
        case addressLimit = "address_limit"
        /// No authenticated call (or health check) within the deadline.
        case unauthenticated
        /// A started frame did not arrive whole in time.
        case frameTimeout = "frame_timeout"
        /// Nothing read and nothing running for the idle timeout.
        case idle
        /// The largest holders when the memory budget was exceeded.
        case memoryBudget = "memory_budget"
        /// The metrics listener's connection limit was reached.
        case metricsConnectionLimit = "metrics_connection_limit"
    }

    private let connections = Atomic<Int>(0)
    private let calls = Atomic<Int>(0)
    private let openConnections: Gauge
    private let callsInFlight: Gauge
    private let acceptedConnections: Counter
    private let buffered: Gauge
    private let closed: [CloseReason: Counter]
    private let acceptErrorCount: Counter

    init(factory: any MetricsFactory) {
        openConnections = Gauge(label: "orgd_connections_open", dimensions: [], factory: factory)
        callsInFlight = Gauge(label: "orgd_calls_in_flight", dimensions: [], factory: factory)
        acceptedConnections = Counter(label: "orgd_connections_total", dimensions: [], factory: factory)
        buffered = Gauge(label: "orgd_buffered_bytes", dimensions: [], factory: factory)
        closed = Dictionary(uniqueKeysWithValues: CloseReason.allCases.map {
            ($0, Counter(label: "orgd_connections_closed_total", dimensions: [("reason", $0.rawValue)], factory: factory))
        })
        acceptErrorCount = Counter(label: "orgd_accept_errors_total", dimensions: [], factory: factory)
        openConnections.record(0)
        callsInFlight.record(0)
        buffered.record(0)
    }

    func connectionOpened() {
        acceptedConnections.increment()
        openConnections.record(connections.add(1, ordering: .relaxed).newValue)
    }

    func connectionClosed() {
        openConnections.record(connections.subtract(1, ordering: .relaxed).newValue)
    }

    /// A connection the server closed or refused, and why.
    func connectionClosed(reason: CloseReason) {
        closed[reason]?.increment()
    }

    func acceptFailed() {
        acceptErrorCount.increment()
    }

    func bufferedBytes(_ bytes: Int) {
        buffered.record(bytes)
    }

    func callStarted() {
        callsInFlight.record(calls.add(1, ordering: .relaxed).newValue)
    }

    func callEnded() {
        callsInFlight.record(calls.subtract(1, ordering: .relaxed).newValue)
    }
}
