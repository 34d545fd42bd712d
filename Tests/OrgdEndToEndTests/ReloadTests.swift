import Foundation
import Testing

/// SIGHUP on a real orgd process: the TLS files and the log level file are
/// read again; what cannot be used is refused and the old setting stays;
/// the daemon never stops for it.
@Suite("SIGHUP reloads")
struct ReloadTests {
    /// The subject of the certificate orgd serves on `port`, as openssl sees it.
    static func servedSubject(port: Int) async throws -> String {
        let result = try await Subprocess.run("/bin/sh", ["-c",
            "\(TestCertificates.openssl) s_client -connect 127.0.0.1:\(port) -servername localhost </dev/null 2>/dev/null"
            + " | \(TestCertificates.openssl) x509 -noout -subject"])
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("SIGHUP: new TLS connections get the new certificate, a broken file keeps the old one, the log level file applies, orgd stays up")
    func hangUp() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await certificates.leaf("rotated", signedBy: "ca", subject: "localhost rotated",
                                    extensions: "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let levelFile = directory + "/log-level"
        try "info\n".write(toFile: levelFile, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(directory: directory, arguments: [
            "--socket", directory + "/s", "--listen", "127.0.0.1:0",
            "--tls-cert", certificates.serverCertificatePath, "--tls-key", certificates.serverKeyPath,
            "--log-level-file", levelFile,
        ])
        _ = try await daemon.waitUntilListening(count: 2)
        let port = try #require(daemon.tcpPort)
        let pid = daemon.process.processIdentifier
        #expect(try await Self.servedSubject(port: port) == "subject=CN = localhost")

        // Rotate the files (as a certificate manager would: rename over), and raise the level.
        let manager = FileManager.default
        for (from, to) in [("rotated.pem", certificates.serverCertificatePath), ("rotated.key", certificates.serverKeyPath)] {
            try #require(rename(certificates.directory + "/" + from, to) == 0, "rename \(from): errno \(errno)")
        }
        try "debug\n".write(toFile: levelFile, atomically: true, encoding: .utf8)
        kill(pid, SIGHUP)
        #expect(try await daemon.waitForErrorOutput(containing: "TLS certificates reloaded"))
        #expect(try await daemon.waitForErrorOutput(containing: "log.level=debug"))
        #expect(try await Self.servedSubject(port: port) == "subject=CN = localhost rotated")

        // A certificate file that is not PEM, and a level that is not one: both kept.
        try "not a certificate\n".write(toFile: certificates.serverCertificatePath, atomically: true, encoding: .utf8)
        try "loud\n".write(toFile: levelFile, atomically: true, encoding: .utf8)
        kill(pid, SIGHUP)
        #expect(try await daemon.waitForErrorOutput(containing: "TLS certificates kept"))
        #expect(try await daemon.waitForErrorOutput(containing: "log level kept"))
        #expect(try await Self.servedSubject(port: port) == "subject=CN = localhost rotated")

        // Still serving, and it still stops cleanly.
        let health = try await Subprocess.run("orgctl", ["health", "--socket", directory + "/s"])
        #expect(health.status == 0, "\(health.stdout)\(health.stderr)")
        #expect(try await daemon.stop() == 0)
        #expect(!manager.fileExists(atPath: directory + "/s"), "the socket file is removed at exit")
    }
}
