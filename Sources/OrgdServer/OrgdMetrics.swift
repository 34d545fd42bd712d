import CoreMetrics
import Foundation
import NIOConcurrencyHelpers
import OrgdCore
import Prometheus

/// orgd's metrics: swift-metrics handlers that are collectors of one
/// Prometheus registry, which the metrics listener serves. Every family
/// orgd records has its `# HELP` line (`OrgdMetrics.help`); latencies are
/// histograms from 25 µs (CheckAccess takes about 0.1 ms) to 10 s. Beside
/// them the registry holds the process's own figures, read from /proc at
/// each scrape (`refreshProcessMetrics`), and `orgd_build_info`.
public final class OrgdMetrics: MetricsFactory, Sendable {
    /// What each family means, by name. A family missing here would be
    /// served without HELP; a test checks that none is.
    public static let help: [String: String] = [
        "orgd_calls_total": "Calls answered, by method and status code.",
        "orgd_call_duration_seconds": "Time from a call's whole request to its answer, by method.",
        "orgd_calls_in_flight": "Calls read and not yet answered.",
        "orgd_connections_open": "Client connections open now (ttrpc, Unix and TCP).",
        "orgd_connections_total": "Client connections accepted.",
        "orgd_connections_closed_total": "Connections the server closed or refused, by reason.",
        "orgd_accept_errors_total": "Failed accepts on a listener (e.g. out of file descriptors), by transport.",
        "orgd_buffered_bytes": "Bytes held for unfinished frames and answers not yet taken by their clients.",
        "orgd_commit_batch_size": "Writes per committed transaction (SQLite's group commit; 1 on PostgreSQL).",
        "orgd_commit_duration_seconds": "Time to run and commit a write transaction, durably.",
        "orgd_store_retries_total": "PostgreSQL write transactions run again after a serialization failure or deadlock.",
        "orgd_outbox_retries_total": "Invitation e-mails whose delivery was tried again.",
        "orgd_invitations_delivery_failed_total": "Invitation e-mails given up on after every try.",
        "orgd_access_index_answers_total": "Calls answered from the access index (the rest of CheckAccess and BatchCheckAccess went to the database).",
        "orgd_access_index_revision": "The change-feed revision the in-memory access index reflects.",
        "orgd_access_index_consents": "Consent answers (patient, scope, request) the access index holds.",
        "orgd_access_index_build_seconds": "Time the access index took to build at start (and after a failure to follow the store).",
        "orgd_access_index_lag_seconds": "Time from a write's commit to the access index applying it (other daemons' writes over PostgreSQL, and this daemon's).",
        "orgd_build_info": "Always 1; the labels say which orgd this is.",
        "process_cpu_seconds_total": "User and system CPU time the process has used.",
        "process_resident_memory_bytes": "Resident memory of the process.",
        "process_virtual_memory_bytes": "Virtual memory of the process.",
        "process_open_fds": "Open file descriptors of the process.",
        "process_max_fds": "The process's limit on open file descriptors.",
        "process_start_time_seconds": "When the process started, in seconds since the Unix epoch.",
        "process_threads": "Threads of the process.",
    ]

    /// Latency buckets: 25 µs to 10 s.
    public static let durationBuckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Value buckets by family; others get `defaultValueBuckets`.
    static let valueBuckets: [String: [Double]] = ["orgd_commit_batch_size": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]]
    static let defaultValueBuckets: [Double] = [1, 10, 100, 1000, 10000, 100_000]

    public let registry: PrometheusCollectorRegistry
    private let process: ProcessMetrics

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), build: [(String, String)] = OrgdBuild.labels) {
        self.registry = registry
        process = ProcessMetrics(registry: registry)
        registry.makeGauge(descriptor: Self.descriptor("orgd_build_info"), labels: build).set(to: 1)
    }

    /// Reads the process's CPU time, memory and descriptors into their
    /// families; the metrics listener calls it before each scrape.
    public func refreshProcessMetrics() { process.refresh() }

    static func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help[name] ?? "")
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(
            descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.valueBuckets[label] ?? Self.defaultValueBuckets)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: Self.descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(descriptor: Self.descriptor(label), labels: dimensions, buckets: Self.durationBuckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        switch handler {
        case let gauge as Prometheus.Gauge: registry.unregisterGauge(gauge)
        case let histogram as ValueHistogram: registry.unregisterValueHistogram(histogram)
        default: break
        }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}

/// The process's figures in Prometheus's usual names, from /proc/self on
/// Linux (absent elsewhere).
final class ProcessMetrics: Sendable {
    private let cpu: Prometheus.Counter
    private let cpuSeen = NIOLockedValueBox(0.0)
    private let resident, virtual, openDescriptors, maximumDescriptors, threads: Prometheus.Gauge
    private static let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
    private static let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))

    init(registry: PrometheusCollectorRegistry) {
        func gauge(_ name: String) -> Prometheus.Gauge { registry.makeGauge(descriptor: OrgdMetrics.descriptor(name), labels: []) }
        cpu = registry.makeCounter(descriptor: OrgdMetrics.descriptor("process_cpu_seconds_total"), labels: [])
        resident = gauge("process_resident_memory_bytes")
        virtual = gauge("process_virtual_memory_bytes")
        openDescriptors = gauge("process_open_fds")
        maximumDescriptors = gauge("process_max_fds")
        threads = gauge("process_threads")
        gauge("process_start_time_seconds").set(to: Self.startTime() ?? Date().timeIntervalSince1970)
        refresh()
    }

    func refresh() {
        if let stat = Self.stat() {
            // /proc/self/stat after the command's closing parenthesis:
            // field 3 is the state; utime 14, stime 15, threads 20, vsize 23, rss 24.
            func field(_ number: Int) -> Double { Double(stat[number - 3]) ?? 0 }
            let seconds = (field(14) + field(15)) / Self.ticks
            let delta = cpuSeen.withLockedValue { seen -> Double in
                defer { seen = max(seen, seconds) }
                return max(0, seconds - seen)
            }
            if delta > 0 { cpu.increment(by: delta) }
            threads.set(to: field(20))
            virtual.set(to: field(23))
            resident.set(to: field(24) * Self.pageSize)
        }
        if let count = Self.openDescriptorCount() { openDescriptors.set(to: Double(count)) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { maximumDescriptors.set(to: Double(limit.rlim_cur)) }
    }

    /// Entries of /proc/self/fd, counted without collecting their names
    /// (there may be tens of thousands), less ".", ".." and the directory's own descriptor.
    private static func openDescriptorCount() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while readdir(directory) != nil { count += 1 }
        return max(0, count - 3)
    }

    /// The fields of /proc/self/stat from the state on (the command may hold spaces).
    private static func stat() -> [Substring]? {
        guard let text = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count >= 22 ? fields : nil
    }

    /// The process's start: boot time plus its start in clock ticks.
    private static func startTime() -> Double? {
        guard let fields = stat(), let started = Double(fields[22 - 3]),
              let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { return nil }
        return boot + started / ticks
    }
}
