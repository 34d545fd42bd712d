import CoreMetrics
import NIOConcurrencyHelpers
import OrgdCore

/// Per-method call counts by status code and latency, for operators.
/// Only methods the server knows get their own label, so a client sending
/// random method names cannot grow the label set.
final class CallMetrics: Sendable {
    private struct MethodMetrics {
        var duration: CoreMetrics.Timer
        var calls: [StatusCode: Counter] = [:]
    }

    private let factory: any MetricsFactory
    private let methods = NIOLockedValueBox<[String: MethodMetrics]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    func record(method: String, code: StatusCode, nanoseconds: Int64) {
        let (timer, counter) = methods.withLockedValue { methods -> (CoreMetrics.Timer, Counter) in
            var entry = methods[method] ?? MethodMetrics(
                duration: CoreMetrics.Timer(label: "orgd_call_duration_seconds", dimensions: [("method", method)], factory: factory))
            let counter = entry.calls[code] ?? Counter(
                label: "orgd_calls_total", dimensions: [("method", method), ("code", code.description)], factory: factory)
            entry.calls[code] = counter
            methods[method] = entry
            return (entry.duration, counter)
        }
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
    }
}
