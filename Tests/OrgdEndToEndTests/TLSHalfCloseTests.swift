import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OrgdProto
import OrgdServer
import OrgdWire
import Testing

/// Half-close over TLS: the client sends its calls, then close_notify and a
/// TCP half-close (NIOSSL's close of the output side); orgd still answers
/// every call. Before, NIOSSL's unclean-shutdown error closed the connection
/// first.
@Suite("TLS half-close", .timeLimit(.minutes(2)))
struct TLSHalfCloseTests {
    /// Collects answer frames until the connection closes.
    final class Collector: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = InboundFrame
        let codes = NIOLockedValueBox<[Int32]>([])
        let closed: EventLoopPromise<Void>

        init(closed: EventLoopPromise<Void>) { self.closed = closed }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .frame(_, let payload) = unwrapInboundIn(data), let response = try? Envelope.decodeResponse(payload) {
                codes.withLockedValue { $0.append(response.status.code) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            closed.succeed(())
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }

    @Test("a TLS client that sends its calls and then closes its side (close_notify, TCP half-close) gets every answer")
    func halfCloseOverTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let daemon = try await TestDaemon.start {
            $0.tls = ServerTLS(certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath)
        }
        let token = try await TLSTests.adminToken(daemon)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .file(certificates.caPath)
        let context = try NIOSSLContext(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let closed = group.any().makePromise(of: Void.self)
        let collector = Collector(closed: closed)
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(try NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                    try sync.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try sync.addHandler(collector)
                }
            }
            .connect(host: "127.0.0.1", port: daemon.bound.tcpPort!).get()
        var frames = ByteBuffer()
        for index in 0..<5 {
            frames.writeBytes(try DrainTests.createFrame(UInt32(2 * index + 1), name: "Half-closed TLS \(index)", token: token))
        }
        try await channel.writeAndFlush(frames).get()
        try await channel.close(mode: .output).get()
        try await closed.futureResult.get()
        #expect(collector.codes.withLockedValue { $0 } == [0, 0, 0, 0, 0])
        await daemon.stop()
    }
}
