import NIOCore
import NIOSSL
import NIOTLS
import OrgdCore

/// TLS settings for a TCP connection to orgd.
public struct OrgdTLS: Sendable, Equatable {
    /// PEM file of the CAs that may sign the server's certificate; nil trusts
    /// the system's roots.
    public var trustRootsPath: String?
    /// PEM client certificate chain and key, for servers that require
    /// mutual TLS (`--tls-client-ca`).
    public var certificateChainPath: String?
    public var privateKeyPath: String?
    /// The name the server's certificate must carry (and SNI). Defaults to
    /// the endpoint's host; for an IP address, the certificate must carry
    /// that address.
    public var serverHostname: String?

    public init(trustRootsPath: String? = nil, certificateChainPath: String? = nil, privateKeyPath: String? = nil, serverHostname: String? = nil) {
        self.trustRootsPath = trustRootsPath
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.serverHostname = serverHostname
    }

    func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        do {
            if let trustRootsPath {
                configuration.trustRoots = .certificates(try Self.certificates(trustRootsPath))
            }
            switch (certificateChainPath, privateKeyPath) {
            case (let chain?, let key?):
                configuration.certificateChain = try Self.certificates(chain).map { .certificate($0) }
                configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: key, format: .pem))
            case (nil, nil):
                break
            default:
                throw RPCError(.invalidArgument, "a client certificate needs both its chain and its private key")
            }
            return try NIOSSLContext(configuration: configuration)
        } catch let error as RPCError {
            throw error
        } catch {
            throw RPCError(.invalidArgument, "cannot set up TLS: \(error)")
        }
    }

    private static func certificates(_ path: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw RPCError(.invalidArgument, "cannot read PEM certificates from \(path): \(error)")
        }
        guard !certificates.isEmpty else { throw RPCError(.invalidArgument, "no PEM certificate in \(path)") }
        return certificates
    }

    /// SNI cannot carry an IP address; such hosts are verified by address.
    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Completes when the TLS handshake does; fails with the handshake's error,
/// or when the connection closes first. Stays in the pipeline (a no-op after
/// the handshake) so that `wait(on:)` finds it however fast the handshake was.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    let promise: EventLoopPromise<Void>

    init(promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    static func wait(on channel: Channel) async throws {
        let waiter = try await channel.pipeline.handler(type: TLSHandshakeWaiter.self).get()
        try await waiter.promise.futureResult.get()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(error)
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(RPCError(.unavailable, "the connection closed during the TLS handshake"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        promise.fail(RPCError(.unavailable, "the connection closed during the TLS handshake"))
    }
}
