/// Where an orgd listens, and which protocol to speak there.
public enum OrgdEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// ttrpc over a Unix socket (without a token: the local operator).
    case unix(path: String)
    /// ttrpc over TCP, optionally TLS.
    case tcp(host: String, port: Int)
    /// gRPC over HTTP/2 (`orgd --grpc-listen`), optionally TLS.
    case grpc(host: String, port: Int)

    public var description: String {
        switch self {
        case .unix(let path): "unix:\(path)"
        case .tcp(let host, let port): "tcp:\(host):\(port)"
        case .grpc(let host, let port): "grpc:\(host):\(port)"
        }
    }
}
