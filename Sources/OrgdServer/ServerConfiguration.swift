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
    /// TLS (and optionally mutual TLS) on the TCP listener and the gRPC
    /// listener; plain TCP when nil.
    public var tls: ServerTLS?
    /// The address gRPC (HTTP/2) listens on beside ttrpc (port 0 picks a free
    /// one), or nil for none. Every call on it needs a bearer token, as on TCP.
    public var grpcHost: String?
    public var grpcPort: Int = 0
    /// Frames whose declared data length is larger are refused.
    public var maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength
    /// How long shutdown waits for in-flight calls before closing anyway.
    public var drainTimeout: TimeAmount = .seconds(30)
    /// Past this many open TCP connections, new ones are closed at once
    /// (logged, counted). The Unix socket has a budget of its own, so no TCP
    /// flood can lock the operator out.
    public var maximumConnections = 10_000
    /// Past this many open connections on the Unix socket, new ones are closed.
    public var maximumUnixConnections = 1024
    /// Most open TCP connections from one peer address.
    public var maximumConnectionsPerAddress = 1024
    /// A TCP connection must make a call that gets past authentication (or a
    /// health check) within this long of connecting, or it is closed.
    public var authenticationTimeout: TimeAmount = .seconds(10)
    /// One budget for the bytes all connections make the server hold
    /// (unfinished frames, answers not yet taken); past it the largest
    /// holders are closed.
    public var maximumBufferedBytes = 256 << 20
    /// Most open connections to the metrics listener.
    public var maximumMetricsConnections = 64
    /// Calls one connection may have in flight; more are RESOURCE_EXHAUSTED.
    public var maximumCallsPerConnection = 1024
    /// Total bytes of one call's metadata entries (keys, values and their framing).
    public var maximumMetadataBytes = 16 * 1024
    /// Most metadata entries in one call.
    public var maximumMetadataEntries = 64
    /// A connection with nothing in flight and nothing read for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(300)
    /// A frame that has started must be complete within this long, or the
    /// connection is closed (a client trickling bytes cannot hold it). A TLS
    /// handshake must complete within it too.
    public var frameTimeout: TimeAmount = .seconds(10)
    /// Bytes of answers a connection may have queued that the client has not
    /// taken; past it the server stops reading that connection's calls until
    /// it falls to half (back-pressure, so memory stays bounded).
    public var maximumQueuedResponseBytes = 1 << 20
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
    /// Whether the TCP listener speaks TLS.
    public var tcpTLS = false
    /// The metrics listener's port, when there is one.
    public var metricsPort: Int?
    /// The gRPC listener's address, when there is one, and whether it speaks TLS.
    public var grpcHost: String?
    public var grpcPort: Int?
    public var grpcTLS = false
}
