import GRPCNIOTransportHTTP2
import NIOCore

extension OrgdTLS {
    /// The same settings for grpc-swift-nio-transport. The files are read
    /// once here too, so a bad path or PEM fails with the INVALID_ARGUMENT
    /// (and message) the ttrpc path gives, before any connection.
    func grpcSettings() throws -> HTTP2ClientTransport.Posix.TransportSecurity.TLS {
        _ = try makeContext()
        return .defaults { tls in
            if let trustRootsPath { tls.trustRoots = .certificates([.file(path: trustRootsPath, format: .pem)]) }
            if let certificateChainPath, let privateKeyPath {
                tls.certificateChain = [.file(path: certificateChainPath, format: .pem)]
                tls.privateKey = .file(path: privateKeyPath, format: .pem)
            }
        }
    }

    /// A dotted IPv4 address (gRPC's resolvers take IPv4, IPv6 and names apart).
    static func isIPv4Address(_ host: String) -> Bool {
        if case .v4 = try? SocketAddress(ipAddress: host, port: 0) { return true }
        return false
    }
}
