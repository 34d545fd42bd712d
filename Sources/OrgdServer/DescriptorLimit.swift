#if canImport(Glibc)
import Glibc
#endif
import NIOCore

extension ServerConfiguration {
    /// Descriptors kept for what is not a connection: the database and its
    /// WAL and shared-memory files on each reader and the writer, the lock
    /// file, the listeners, the event loops' own (a few per core), standard
    /// streams, slack.
    public static var reservedDescriptors: Int {
        64 + 4 * System.coreCount
    }

    /// Raises the soft `RLIMIT_NOFILE` to the hard limit, then makes the
    /// connection limits fit inside it: when they cannot all be had, the
    /// metrics listener and the Unix socket keep a small share and TCP gets
    /// the rest. Returns a line to log for each limit it lowered; throws when
    /// not even one connection per listener would fit.
    public mutating func fitDescriptorLimit() throws -> [String] {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return [] }
        var notes: [String] = []
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
        let unix = unixSocketPath == nil ? 0 : maximumUnixConnections
        let tcp = tcpHost == nil ? 0 : maximumConnections
        let metrics = metricsHost == nil ? 0 : maximumMetricsConnections
        let (needed, overflow) = (unix + tcp).addingReportingOverflow(metrics + Self.reservedDescriptors)
        guard overflow || needed > available else { return [] }

        var spare = available - Self.reservedDescriptors
        guard spare >= 3 else {
            throw DescriptorLimitError(message: "the file-descriptor limit (\(available)) leaves no room for connections; raise it (LimitNOFILE=, ulimit -n) to at least \(Self.reservedDescriptors + 16)")
        }
        if metrics > 0, metrics > spare / 16 {
            maximumMetricsConnections = max(1, spare / 16)
            notes.append("--max-metrics-connections lowered from \(metrics) to \(maximumMetricsConnections)")
        }
        spare -= metricsHost == nil ? 0 : maximumMetricsConnections
        if unix > 0, tcp > 0 {
            let unixShare = min(unix, max(1, spare / 4))
            if unixShare < unix {
                maximumUnixConnections = unixShare
                notes.append("--max-unix-connections lowered from \(unix) to \(unixShare)")
            }
            spare -= unixShare
        }
        if tcp > 0, tcp > spare {
            maximumConnections = spare
            notes.append("--max-connections lowered from \(tcp) to \(spare)")
        } else if unix > 0, tcp == 0, unix > spare {
            maximumUnixConnections = spare
            notes.append("--max-unix-connections lowered from \(unix) to \(spare)")
        }
        return notes.map { "\($0) to fit the file-descriptor limit of \(available) (raise it with LimitNOFILE= or ulimit -n)" }
    }
}

/// The descriptor limit is too low to run at all.
public struct DescriptorLimitError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
