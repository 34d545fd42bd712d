import Foundation
import Logging
import NIOCore
import NIOEmbedded
import OrgdCore
import OrgdProto
@testable import OrgdServer
import Prometheus
import Testing

/// orgd under a tight file-descriptor limit (as a service manager may set
/// it): it lowers its connection limits to fit and says so, and a TCP flood
/// past them cannot starve the Unix socket of descriptors.
@Suite("file-descriptor limit", .timeLimit(.minutes(2)))
struct DescriptorLimitTests {
    @Test("with ulimit -n 200, orgd lowers --max-connections to fit, logs it, and the Unix socket is served through a TCP flood")
    func descriptorLimit() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        let daemon = try DaemonProcess(directory: directory, arguments: [
            "--database", directory + "/orgd.sqlite", "--socket", directory + "/s", "--listen", "127.0.0.1:0",
        ], descriptorLimit: 200)
        _ = try await daemon.waitUntilListening(count: 2)
        let port = try #require(daemon.tcpPort)
        // 200 less what is kept for the database and the rest; the Unix
        // socket keeps a quarter, TCP gets the others (on 2 cores: 32 and 96).
        let spare = 200 - ServerConfiguration.reservedDescriptors
        let (unixLimit, tcpLimit) = (spare / 4, spare - spare / 4)
        #expect(tcpLimit < 130)
        var flood: [RawSocket] = []
        for _ in 0..<130 {
            flood.append(try RawSocket(tcpHost: "127.0.0.1", port: port))
        }
        let unix = try RawSocket(unixPath: directory + "/s")
        try await unix.sendFrame(streamID: 1, body: try LimitTests.healthFrame(1))
        #expect(try await unix.receiveResponse().response.status.code == 0, "the operator's socket is served")
        #expect(try await flood.last!.closedByServer(within: 5), "TCP connections past the lowered limit are closed")
        flood.removeAll()
        #expect(try await daemon.stop() == 0)
        let log = daemon.errorOutput()
        #expect(log.contains("--max-connections lowered from 10000 to \(tcpLimit)"), "\(log)")
        #expect(log.contains("--max-unix-connections lowered from 1024 to \(unixLimit)"), "\(log)")
    }
}

/// A listener that cannot accept (EMFILE) says so, at most every ten seconds,
/// and counts every failure.
@Suite("accept failures")
struct AcceptFailureTests {
    @Test("failed accepts are counted each time and logged once per ten seconds, with the count of those not logged")
    func acceptErrorsLoggedAndCounted() throws {
        let registry = PrometheusCollectorRegistry()
        let lines = LockedLines()
        var logger = Logger(label: "test") { _ in CapturingLogHandler(lines: lines) }
        logger.logLevel = .info
        let handler = AcceptErrorLogger(transport: .tcp, logger: logger, metrics: ServerMetrics(factory: OrgdMetrics(registry: registry)))
        let channel = EmbeddedChannel(handler: handler)
        for _ in 0..<5 {
            channel.pipeline.fireErrorCaught(IOError(errnoCode: EMFILE, reason: "accept"))
        }
        #expect(lines.value.count == 1, "logged once")
        #expect(lines.value.first?.contains("accepting a connection failed") == true)
        #expect(registry.emitToString().contains("orgd_accept_errors_total 5"))
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var value: [String] { lock.withLock { lines } }
}

struct CapturingLogHandler: LogHandler {
    let lines: LockedLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        lines.append("\(message)")
    }
}
