import Foundation
import NIOCore
import NIOPosix
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServer
import Testing

/// Certificates made for one test run with openssl: a CA, a server
/// certificate for the name localhost (not for an address, so that name
/// checks are really exercised), a client certificate from the same CA, and a
/// client certificate from a CA the server does not trust.
struct TestCertificates {
    let directory: String
    var caPath: String { directory + "/ca.pem" }
    var serverCertificatePath: String { directory + "/server.pem" }
    var serverKeyPath: String { directory + "/server.key" }
    var clientCertificatePath: String { directory + "/client.pem" }
    var clientKeyPath: String { directory + "/client.key" }
    var strangerCertificatePath: String { directory + "/stranger.pem" }
    var strangerKeyPath: String { directory + "/stranger.key" }

    static let openssl = "/usr/bin/openssl"

    static func make() async throws -> TestCertificates {
        try #require(FileManager.default.isExecutableFile(atPath: openssl), "openssl is needed (scripts/install-deps --test)")
        let directory = try TestDaemon.makeTemporaryDirectory()
        let certificates = TestCertificates(directory: directory)
        try await certificates.authority("ca", "orgd test CA")
        try await certificates.authority("other-ca", "somebody else's CA")
        try await certificates.leaf("server", signedBy: "ca", subject: "localhost",
                                    extensions: "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try await certificates.leaf("client", signedBy: "ca", subject: "orgd test client", extensions: "extendedKeyUsage=clientAuth\n")
        try await certificates.leaf("stranger", signedBy: "other-ca", subject: "stranger", extensions: "extendedKeyUsage=clientAuth\n")
        return certificates
    }

    private func openssl(_ arguments: [String]) async throws {
        let result = try await Subprocess.run(Self.openssl, arguments)
        try #require(result.status == 0, "openssl \(arguments.joined(separator: " ")): \(result.stderr)")
    }

    private func authority(_ name: String, _ subject: String) async throws {
        try await openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                           "-keyout", "\(directory)/\(name).key", "-out", "\(directory)/\(name).pem", "-days", "2", "-subj", "/CN=\(subject)"])
    }

    func leaf(_ name: String, signedBy ca: String, subject: String, extensions: String) async throws {
        let path = "\(directory)/\(name)"
        try extensions.write(toFile: path + ".ext", atomically: true, encoding: .utf8)
        try await openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                           "-keyout", path + ".key", "-out", path + ".csr", "-subj", "/CN=\(subject)"])
        try await openssl(["x509", "-req", "-in", path + ".csr", "-CA", "\(directory)/\(ca).pem", "-CAkey", "\(directory)/\(ca).key",
                           "-CAcreateserial", "-out", path + ".pem", "-days", "2", "-extfile", path + ".ext"])
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("TLS on TCP")
struct TLSTests {
    /// A health check and a created-then-read organisation, with a token.
    static func fullCall(_ client: OrgdClient, name: String) async throws {
        #expect(try await client.health.check().status == .serving)
        let created = try await MembershipEndToEndTests.organization(client, name)
        var get = Orgd_V1_GetOrganizationRequest()
        get.id = created.id
        #expect(try await client.organizations.getOrganization(get).organization.name == name)
    }

    static func adminToken(_ daemon: TestDaemon) async throws -> String {
        let local = try await daemon.client()
        defer { Task { await local.close() } }
        let admin = try await MembershipEndToEndTests.user(local, role: .admin)
        return try await MembershipEndToEndTests.token(local, user: admin.id)
    }

    /// Expects `body` to fail as UNAVAILABLE: at connect (handshake) or at the first call.
    static func expectRefused(_ what: String, _ body: () async throws -> Void) async {
        do {
            try await body()
            Issue.record("\(what): expected the connection to be refused")
        } catch let error as RPCError {
            #expect(error.code == .unavailable, "\(what): \(error)")
        } catch {
            Issue.record("\(what): \(error)")
        }
    }

    @Test("TLS: a full call with a trusted CA; plain TCP, an untrusted CA and a wrong name are refused, and the server goes on")
    func serverTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let daemon = try await TestDaemon.start {
            $0.tls = ServerTLS(certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath)
        }
        defer { Task { await daemon.stop() } }
        #expect(daemon.bound.tcpTLS)
        let token = try await Self.adminToken(daemon)
        let trusted = OrgdTLS(trustRootsPath: certificates.caPath)
        let byName = OrgdEndpoint.tcp(host: "localhost", port: daemon.bound.tcpPort!)

        let client = try await OrgdClient.connect(to: byName, token: token, tls: trusted)
        try await Self.fullCall(client, name: "Over TLS")
        // By address, naming the host the certificate is for.
        let byAddress = try await OrgdClient.connect(to: daemon.tcp, token: token, tls: OrgdTLS(trustRootsPath: certificates.caPath, serverHostname: "localhost"))
        try await Self.fullCall(byAddress, name: "By address")

        // Plain ttrpc to the TLS port: the server sees no TLS hello and closes.
        await Self.expectRefused("plain TCP to the TLS port") {
            let plain = try await OrgdClient.connect(to: daemon.tcp, token: token)
            defer { Task { await plain.close() } }
            _ = try await plain.health.check()
        }
        // The system's CAs do not know the test CA.
        await Self.expectRefused("untrusted server certificate") {
            _ = try await OrgdClient.connect(to: byName, token: token, tls: OrgdTLS())
        }
        await Self.expectRefused("a name the certificate does not carry") {
            _ = try await OrgdClient.connect(to: byName, token: token, tls: OrgdTLS(trustRootsPath: certificates.caPath, serverHostname: "orgd.example"))
        }
        await Self.expectRefused("an address the certificate does not carry") {
            _ = try await OrgdClient.connect(to: daemon.tcp, token: token, tls: trusted)
        }

        // Still serving the first connection, and tokens are still required over TLS.
        try await Self.fullCall(client, name: "Still here")
        let anonymous = try await OrgdClient.connect(to: byName, tls: trusted)
        await #expect(throws: RPCError.self) { _ = try await anonymous.organizations.listOrganizations(Orgd_V1_ListOrganizationsRequest()) }
        for connection in [client, byAddress, anonymous] { await connection.close() }
    }

    @Test("a client that connects to the TLS port and never completes a handshake is closed after the frame timeout")
    func silentHandshake() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let daemon = try await TestDaemon.start {
            $0.tls = ServerTLS(certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath)
            // Long enough for a real handshake under TSan on a loaded 2-core machine
            // (300 ms was not, in CI); short next to the idle timeout and the watchdog.
            $0.frameTimeout = .seconds(3)
            $0.idleTimeout = .seconds(600)
        }
        defer { Task { await daemon.stop() } }
        let silent = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: daemon.bound.tcpPort!).get()
        let started = ContinuousClock.now
        // The idle timeout is ten minutes: only the handshake deadline can close
        // it this soon. The watchdog closes it itself, so a broken deadline fails rather than hangs.
        let watchdog = silent.eventLoop.scheduleTask(in: .seconds(30)) { silent.close(promise: nil) }
        try await silent.closeFuture.get()
        watchdog.cancel()
        #expect(ContinuousClock.now - started < .seconds(20), "closed by the server's handshake deadline, not the watchdog")
        // A client that does shake hands in time is served, and stays open past the deadline.
        let token = try await Self.adminToken(daemon)
        let client = try await OrgdClient.connect(
            to: .tcp(host: "localhost", port: daemon.bound.tcpPort!), token: token, tls: OrgdTLS(trustRootsPath: certificates.caPath))
        try await Task.sleep(for: .milliseconds(3500))
        try await Self.fullCall(client, name: "Shook hands in time")
        await client.close()
    }

    @Test("mutual TLS: a client certificate from the configured CA gets in; none, or one from another CA, does not")
    func mutualTLS() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let daemon = try await TestDaemon.start {
            $0.tls = ServerTLS(certificateChainPath: certificates.serverCertificatePath, privateKeyPath: certificates.serverKeyPath,
                               clientCAPath: certificates.caPath)
        }
        defer { Task { await daemon.stop() } }
        let token = try await Self.adminToken(daemon)

        let withCertificate = OrgdTLS(trustRootsPath: certificates.caPath, certificateChainPath: certificates.clientCertificatePath,
                                      privateKeyPath: certificates.clientKeyPath, serverHostname: "localhost")
        let client = try await OrgdClient.connect(to: daemon.tcp, token: token, tls: withCertificate)
        try await Self.fullCall(client, name: "Mutual")

        await Self.expectRefused("no client certificate") {
            let bare = try await OrgdClient.connect(to: daemon.tcp, token: token, tls: OrgdTLS(trustRootsPath: certificates.caPath, serverHostname: "localhost"))
            defer { Task { await bare.close() } }
            _ = try await bare.health.check()
        }
        await Self.expectRefused("a client certificate from another CA") {
            let stranger = try await OrgdClient.connect(to: daemon.tcp, token: token, tls: OrgdTLS(
                trustRootsPath: certificates.caPath, certificateChainPath: certificates.strangerCertificatePath,
                privateKeyPath: certificates.strangerKeyPath, serverHostname: "localhost"))
            defer { Task { await stranger.close() } }
            _ = try await stranger.health.check()
        }
        try await Self.fullCall(client, name: "Mutual, still")
        await client.close()
    }

    @Test("orgd --tls-cert/--tls-key/--tls-client-ca and orgctl --tls-ca/--tls-cert/--tls-key, as processes")
    func executables() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: [
            "--socket", directory + "/s", "--listen", "127.0.0.1:0",
            "--tls-cert", certificates.serverCertificatePath, "--tls-key", certificates.serverKeyPath,
            "--tls-client-ca", certificates.caPath,
        ])
        let lines = try await daemon.waitUntilListening(count: 2)
        #expect(lines.contains { $0.hasPrefix("orgd listening on tls:127.0.0.1:") }, "\(lines)")
        let port = try #require(daemon.tcpPort)
        let made = try await Subprocess.run("orgctl", ["token", "create", "--user", try await Self.adminUser(socket: directory + "/s"), "--socket", directory + "/s", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(made.stdout.utf8)) as? [String: Any]
        let secret = try #require(json?["secret"] as? String, "\(made.stdout)\(made.stderr)")

        let tls = ["--address", "localhost:\(port)", "--token", secret, "--tls-ca", certificates.caPath,
                   "--tls-cert", certificates.clientCertificatePath, "--tls-key", certificates.clientKeyPath]
        let created = try await Subprocess.run("orgctl", ["org", "create", "--name", "Via orgctl over mTLS", "--type", "hospital_team"] + tls)
        #expect(created.status == 0, "\(created.stdout)\(created.stderr)")
        let listed = try await Subprocess.run("orgctl", ["org", "list"] + tls)
        #expect(listed.stdout.contains("Via orgctl over mTLS"), "\(listed.stdout)\(listed.stderr)")
        // Without a client certificate the server refuses; orgctl says so in one line.
        let refused = try await Subprocess.run("orgctl", ["org", "list", "--address", "127.0.0.1:\(port)", "--tls-server-name", "localhost", "--token", secret, "--tls-ca", certificates.caPath])
        #expect(refused.status == 24 && refused.stderr.hasPrefix("orgctl: UNAVAILABLE"), "\(refused.stderr)")
        #expect(!refused.stderr.contains(".cc:") && !refused.stderr.contains("/check/"), "no build paths: \(refused.stderr)")
        #expect(try await daemon.stop() == 0)

        // A key file that is not there stops orgd at start, naming the file.
        let broken = try await Subprocess.run("orgd", [
            "--database", directory + "/b.sqlite", "--socket", "none", "--listen", "127.0.0.1:0",
            "--tls-cert", certificates.serverCertificatePath, "--tls-key", directory + "/missing.key",
        ])
        #expect(broken.status != 0 && broken.stderr.contains(directory + "/missing.key"), "\(broken.stderr)")
        let alone = try await Subprocess.run("orgd", ["--socket", directory + "/t", "--tls-cert", certificates.serverCertificatePath, "--tls-key", certificates.serverKeyPath])
        #expect(alone.status != 0 && alone.stderr.contains("--listen"), "\(alone.stderr)")
    }

    static func adminUser(socket: String) async throws -> String {
        let client = try await OrgdClient.connect(to: .unix(path: socket))
        defer { Task { await client.close() } }
        return try await MembershipEndToEndTests.user(client, role: .admin).id
    }
}
