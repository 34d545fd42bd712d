import NIOCore
import OrgdWire

/// Where and how the server listens.
public struct ServerConfiguration: Sendable {
    /// The Unix socket to listen on, or nil for none.
    public var unixSocketPath: String?
    /// Permissions of the socket file; the owner only by default.
    public var unixSocketMode: UInt16 = 0o600
    /// The TCP address to listen on (port 0 picks a free one), or nil for none.
    public var tcpHost: String?
    public var tcpPort: Int = 0
    /// Frames whose declared data length is larger are refused.
    public var maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength
    /// How long shutdown waits for in-flight calls before closing anyway.
    public var drainTimeout: TimeAmount = .seconds(30)
    /// Where to serve Prometheus metrics over HTTP (`GET /metrics`), or nil.
    public var metricsHost: String?
    public var metricsPort: Int = 0

    public init(unixSocketPath: String? = nil, tcpHost: String? = nil, tcpPort: Int = 0) {
        self.unixSocketPath = unixSocketPath
        self.tcpHost = tcpHost
        self.tcpPort = tcpPort
    }
}

/// The addresses the server actually bound.
public struct BoundAddresses: Sendable {
    public var unixSocketPath: String?
    /// The TCP port chosen (useful with port 0).
    public var tcpPort: Int?
    public var tcpHost: String?
    /// The metrics listener's port, when there is one.
    public var metricsPort: Int?
}
