import Atomics
import CoreMetrics
import OrgdCore

/// Per-method call counts by status code and latency, for operators.
/// Only methods the server knows get their own label (the rest count as
/// `unknown`), so a client sending random method names cannot grow the
/// label set.
///
/// Recording takes no lock: each known method's metrics live in an entry
/// made at start-up (an immutable table, read by any thread), whose
/// counter per status code and timer are created on first use (a lazy
/// atomic reference, so a method never called, or never failed with a
/// code, shows no series). After that a call costs one table lookup, an
/// atomic load per metric, the counter's atomic add and the timer's record.
final class CallMetrics: Sendable {
    private final class Entry: Sendable {
        let method: String
        let duration = ManagedAtomicLazyReference<CoreMetrics.Timer>()
        /// By `StatusCode.rawValue` (0...16).
        let calls: [ManagedAtomicLazyReference<Counter>] = (0...16).map { _ in ManagedAtomicLazyReference() }

        init(method: String) {
            self.method = method
        }
    }

    private let factory: any MetricsFactory
    private let entries: [String: Entry]
    private let unknown = Entry(method: "unknown")

    init(factory: any MetricsFactory, methods: [String]) {
        self.factory = factory
        entries = Dictionary(methods.map { ($0, Entry(method: $0)) }, uniquingKeysWith: { first, _ in first })
    }

    func record(method: String, code: StatusCode, nanoseconds: Int64) {
        let entry = entries[method] ?? unknown
        let slot = entry.calls[Int(code.rawValue)]
        // Two threads may both make the first one; the factory hands both
        // the same family member, and only one is kept.
        let counter = slot.load() ?? slot.storeIfNilThenLoad(
            Counter(label: "orgd_calls_total", dimensions: [("method", entry.method), ("code", code.description)], factory: factory))
        let timer = entry.duration.load() ?? entry.duration.storeIfNilThenLoad(
            CoreMetrics.Timer(label: "orgd_call_duration_seconds", dimensions: [("method", entry.method)], factory: factory))
        counter.increment()
        timer.recordNanoseconds(nanoseconds)
    }
}
