import Foundation
import OrgdClient
import OrgdProto
import Testing

@Suite("orgctl and orgd as processes")
struct ExecutableTests {
    @Test("orgctl: create, get and list round trip, in JSON and as a table")
    func orgctlRoundTrip() async throws {
        try await withDaemon { daemon in
            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let created = try await Subprocess.run("orgctl", ["org", "create", "--name", "Hillside Practice", "--type", "gp_practice",
                                                           "--identifier", "https://ods|H1", "--json"] + socket)
            #expect(created.status == 0, "\(created.stderr)")
            let organization = try Orgd_V1_Organization(jsonString: created.stdout)
            #expect(organization.name == "Hillside Practice" && organization.type == .gpPractice)

            let got = try await Subprocess.run("orgctl", ["org", "get", organization.id, "--json"] + socket)
            #expect(try Orgd_V1_GetOrganizationResponse(jsonString: got.stdout).organization == organization)

            let table = try await Subprocess.run("orgctl", ["org", "list"] + socket)
            #expect(table.status == 0)
            let lines = table.stdout.split(separator: "\n")
            #expect(lines.first?.hasPrefix("ID") == true)
            #expect(lines.count == 2 && lines[1].contains(organization.id) && lines[1].contains("Hillside Practice"))

            let listed = try await Subprocess.run("orgctl", ["org", "list", "--json"], environment: ["ORGD_SOCKET": daemon.bound.unixSocketPath!])
            #expect(try Orgd_V1_ListOrganizationsResponse(jsonString: listed.stdout).organizations == [organization])
        }
    }

    @Test("orgctl: a failure is one line on stderr and an exit status of 10 + its code (NOT_FOUND 15, UNAUTHENTICATED 26, UNAVAILABLE 24)")
    func orgctlFailure() async throws {
        try await withDaemon { daemon in
            let missing = try await Subprocess.run("orgctl", ["org", "get", UUID().uuidString, "--socket", daemon.bound.unixSocketPath!])
            #expect(missing.status == 15)
            #expect(missing.stderr.hasPrefix("orgctl: NOT_FOUND: organization "))
            #expect(missing.stderr.split(separator: "\n").count == 1)
            let tcp = try await Subprocess.run("orgctl", ["org", "list", "--address", "127.0.0.1:\(daemon.bound.tcpPort!)"])
            #expect(tcp.status == 26 && tcp.stderr.hasPrefix("orgctl: UNAUTHENTICATED"))
            let nowhere = try await Subprocess.run("orgctl", ["health", "--socket", daemon.directory + "/absent.sock"])
            #expect(nowhere.status == 24 && nowhere.stderr.hasPrefix("orgctl: UNAVAILABLE"))
        }
    }

    @Test("orgctl: a token made over the socket works over TCP, and stops when revoked")
    func orgctlTokens() async throws {
        try await withDaemon { daemon in
            let socket = ["--socket", daemon.bound.unixSocketPath!]
            let account = try await Subprocess.run("orgctl", ["service-account", "create", "--name", "bff", "--role", "admin", "--json"] + socket)
            let accountID = try Orgd_V1_ServiceAccount(jsonString: account.stdout).id
            let token = try await Subprocess.run("orgctl", ["token", "create", "--service-account", accountID, "--json"] + socket)
            let issued = try Orgd_V1_CreateTokenResponse(jsonString: token.stdout)
            let tcp = ["--address", "127.0.0.1:\(daemon.bound.tcpPort!)"]
            #expect(try await Subprocess.run("orgctl", ["org", "list"] + tcp, environment: ["ORGD_TOKEN": issued.secret]).status == 0)
            #expect(try await Subprocess.run("orgctl", ["token", "revoke", issued.token.id] + socket).status == 0)
            #expect(try await Subprocess.run("orgctl", ["org", "list", "--token", issued.secret] + tcp).status == 26)
        }
    }

    @Test("orgd: starts on defaults in its directory, prints a TCP port for port 0, shuts down on SIGTERM")
    func daemonLifecycle() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess(directory: directory, arguments: ["--listen", "127.0.0.1:0"])
        let lines = try await daemon.waitUntilListening(count: 2)
        #expect(lines.contains("orgd listening on unix:orgd.sock"))
        let port = try #require(daemon.tcpPort)
        #expect(FileManager.default.fileExists(atPath: directory + "/orgd.sqlite"))

        let client = try await OrgdClient.connect(to: .unix(path: directory + "/orgd.sock"))
        var create = Orgd_V1_CreateOrganizationRequest()
        create.name = "Persisted"
        create.type = .department
        let created = try await client.organizations.createOrganization(create)
        await client.close()
        let tcp = try await OrgdClient.connect(to: .tcp(host: "127.0.0.1", port: port))
        #expect(try await tcp.health.check().status == .serving)
        await tcp.close()

        #expect(try await daemon.stop(signal: SIGTERM) == 0)
        #expect(!FileManager.default.fileExists(atPath: directory + "/orgd.sock"), "socket removed at shutdown")

        // The data is still there after a restart.
        let again = try DaemonProcess(directory: directory, arguments: [])
        _ = try await again.waitUntilListening(count: 1)
        let reader = try await OrgdClient.connect(to: .unix(path: directory + "/orgd.sock"))
        var get = Orgd_V1_GetOrganizationRequest()
        get.id = created.id
        #expect(try await reader.organizations.getOrganization(get).organization == created)
        await reader.close()
        #expect(try await again.stop(signal: SIGINT) == 0)
    }

    @Test("orgd: a stale socket file is replaced, a live one is not")
    func staleAndLiveSockets() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/orgd.sock"
        // A socket file nobody listens on, as a killed daemon leaves behind.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        #expect(FileManager.default.fileExists(atPath: path))

        let first = try DaemonProcess(directory: directory, arguments: ["--socket", path])
        #expect(try await first.waitUntilListening(count: 1) == ["orgd listening on unix:\(path)"])

        let second = try DaemonProcess(directory: directory, arguments: ["--socket", path, "--database", directory + "/other.sqlite"])
        let secondStatus = try await RawSocket.offPool { second.process.waitUntilExit(); return second.process.terminationStatus }
        #expect(secondStatus != 0)
        #expect(second.errorOutput().contains("already answering on \(path)"))

        // The first is unharmed.
        let client = try await OrgdClient.connect(to: .unix(path: path))
        #expect(try await client.health.check().status == .serving)
        await client.close()
        #expect(try await first.stop() == 0)
    }
}

@Suite("orgctl consent")
struct OrgctlConsentTests {
    @Test("orgctl consent check exits 0 when allowed and 3 when denied, saying why")
    func consentCheck() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("CLI study", [world.bloodPressure])
            try await world.ask(study)
            try await world.answer(study, [(world.bloodPressure, true)])
            let socket = ["--socket", world.daemon.bound.unixSocketPath!]
            let scope = "\(ConsentWorld.openMHealth)|omh:blood-pressure:4.0"
            let allowed = try await Subprocess.run("orgctl", ["consent", "check", "--agent", world.agent.id, "--patient", world.patient.id, "--scope", scope] + socket)
            #expect(allowed.status == 0 && allowed.stdout.hasPrefix("ALLOWED"), "\(allowed.stdout)\(allowed.stderr)")
            let denied = try await Subprocess.run("orgctl", ["consent", "check", "--agent", world.manager.id, "--patient", world.patient.id, "--scope", scope] + socket)
            #expect(denied.status == 3 && denied.stdout.contains("a membership manager is not an agent"))
            let view = try await Subprocess.run("orgctl", ["consent", "view", world.patient.id, "--json"] + socket)
            #expect(try Orgd_V1_PatientConsents(jsonString: view.stdout).consolidatedConsentedScopes == [world.bloodPressure])
        }
    }
}
