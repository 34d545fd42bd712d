import CoreMetrics
import Synchronization

/// The server's own gauges: open connections and calls in flight.
final class ServerMetrics: Sendable {
    private let connections = Atomic<Int>(0)
    private let calls = Atomic<Int>(0)
    private let openConnections: Gauge
    private let callsInFlight: Gauge
    private let acceptedConnections: Counter

    init(factory: any MetricsFactory) {
        openConnections = Gauge(label: "orgd_connections_open", dimensions: [], factory: factory)
        callsInFlight = Gauge(label: "orgd_calls_in_flight", dimensions: [], factory: factory)
        acceptedConnections = Counter(label: "orgd_connections_total", dimensions: [], factory: factory)
        openConnections.record(0)
        callsInFlight.record(0)
    }

    func connectionOpened() {
        acceptedConnections.increment()
        openConnections.record(connections.add(1, ordering: .relaxed).newValue)
    }

    func connectionClosed() {
        openConnections.record(connections.subtract(1, ordering: .relaxed).newValue)
    }

    func callStarted() {
        callsInFlight.record(calls.add(1, ordering: .relaxed).newValue)
    }

    func callEnded() {
        callsInFlight.record(calls.subtract(1, ordering: .relaxed).newValue)
    }
}
