import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import NIOTLS

/// TLS for the TCP listener: the server's certificate chain and key, and
/// optionally the CA that client certificates must chain to (mutual TLS).
public struct ServerTLS: Sendable, Equatable {
    /// PEM file: the server's certificate, then any intermediates.
    public var certificateChainPath: String
    /// PEM file: the server's private key.
    public var privateKeyPath: String
    /// PEM file of CA certificates; when set, a client must present a
    /// certificate that chains to one of them, or the handshake fails.
    public var clientCAPath: String?

    public init(certificateChainPath: String, privateKeyPath: String, clientCAPath: String? = nil) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
        self.clientCAPath = clientCAPath
    }

    /// Reads the files and builds the context once, at start: a missing or
    /// malformed file stops the server with the file named, never a handshake later.
    /// `applicationProtocols` are offered by ALPN (gRPC clients require `h2`).
    func makeContext(applicationProtocols: [String] = []) throws -> NIOSSLContext {
        let chain = try Self.certificates(certificateChainPath, "the TLS certificate chain")
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: privateKeyPath, format: .pem)
        } catch {
            throw TLSSetupError("cannot read the TLS private key \(privateKeyPath): \(error)")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        if let clientCAPath {
            configuration.trustRoots = .certificates(try Self.certificates(clientCAPath, "the client CA file"))
            configuration.certificateVerification = .noHostnameVerification
            configuration.sendCANameList = true
        }
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = applicationProtocols
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSSetupError("the TLS certificate and key do not make a usable TLS configuration: \(error)")
        }
    }
}

extension ServerTLS {
    private static func certificates(_ path: String, _ what: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw TLSSetupError("cannot read \(what) \(path): \(error)")
        }
        guard !certificates.isEmpty else { throw TLSSetupError("no PEM certificate in \(what) \(path)") }
        return certificates
    }
}

/// A TLS file that cannot be used; the message names it.
public struct TLSSetupError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Sits after the TLS handler. The handshake must complete within
/// `deadline` (the frame timeout) or the connection is closed: a client that
/// connects and never finishes its hello cannot hold a connection slot until
/// the idle timeout. Logs failed handshakes (no acceptable client certificate,
/// plain text on the TLS port) at notice, since an operator wants to see them,
/// and completed ones at debug.
final class TLSHandshakeGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let logger: Logger
    private let peer: String
    private let deadline: TimeAmount
    private var timer: Scheduled<Void>?

    init(logger: Logger, peer: String, deadline: TimeAmount) {
        self.logger = logger
        self.peer = peer
        self.deadline = deadline
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let (logger, peer, deadline) = (self.logger, self.peer, self.deadline)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: deadline) {
            logger.notice("TLS handshake not completed in time; connection closed",
                          metadata: ["peer": "\(peer)", "limit.handshake_seconds": "\(Double(deadline.nanoseconds) / 1e9)"])
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted(let protocolName) = event {
            timer?.cancel()
            timer = nil
            logger.debug("TLS handshake completed", metadata: ["peer": "\(peer)", "tls.alpn": "\(protocolName ?? "")"])
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is NIOSSLError || error is BoringSSLError {
            logger.notice("TLS handshake failed; connection closed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
        context.fireErrorCaught(error)
    }
}

/// A listener's TLS context, which SIGHUP makes again from the same files
/// (certificate rotation without a restart). Each new connection takes the
/// context current when it is accepted; connections already open keep
/// theirs.
final class ReloadableTLSContext: Sendable {
    private let tls: ServerTLS
    private let applicationProtocols: [String]
    private let box: NIOLockedValueBox<NIOSSLContext>

    init(_ tls: ServerTLS, applicationProtocols: [String] = []) throws {
        self.tls = tls
        self.applicationProtocols = applicationProtocols
        box = NIOLockedValueBox(try tls.makeContext(applicationProtocols: applicationProtocols))
    }

    var current: NIOSSLContext { box.withLockedValue { $0 } }

    /// A context from the files as they are now; `install` puts it in use.
    func fresh() throws -> NIOSSLContext { try tls.makeContext(applicationProtocols: applicationProtocols) }

    func install(_ context: NIOSSLContext) { box.withLockedValue { $0 = context } }
}
