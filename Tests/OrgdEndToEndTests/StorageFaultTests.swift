import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdStore
import Testing

/// Secrets leave the disk once erased, and faults of the database files are
/// refused loudly instead of being acknowledged and lost.
@Suite("Storage faults and secrets on disk", .sqliteOnly("SQLite\'s files: deleted, replaced, read-only, scrubbed"))
struct StorageFaultTests {
    static func organization(_ name: String) -> Orgd_V1_CreateOrganizationRequest {
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = name
        request.type = .gpPractice
        return request
    }

    /// Every byte of the database's three files, read raw.
    static func files(_ daemon: TestDaemon) -> [String: [UInt8]] {
        var contents: [String: [UInt8]] = [:]
        for suffix in ["", "-wal", "-shm"] {
            let path = daemon.directory + "/orgd.sqlite" + suffix
            contents["orgd.sqlite" + suffix] = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
        }
        return contents
    }

    /// The files among `files` that contain `needle`.
    static func holding(_ needle: String, in files: [String: [UInt8]]) -> [String] {
        let bytes = Array(needle.utf8)
        return files.filter { _, content in
            guard content.count >= bytes.count else { return false }
            return (0...(content.count - bytes.count)).contains { start in
                content[start] == bytes[0] && Array(content[start..<(start + bytes.count)]) == bytes
            }
        }.keys.sorted()
    }

    @Test("an invitation's plain token is in none of orgd.sqlite, -wal, -shm once the mailer acknowledged it, or once it was withdrawn")
    func tokensLeaveTheDisk() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let organization = try await local.organizations.createOrganization(Self.organization("Secrets Practice"))
            let mailerToken = try await daemon.serviceToken(role: .none, name: "mailer", mailer: true)
            let mailer = try await daemon.client(daemon.tcp, token: mailerToken.secret)
            func invite(_ email: String) async throws -> String {
                var request = Orgd_V1_InviteMemberRequest()
                request.organizationID = organization.id
                request.title = "Dr"
                request.givenName = "Dana"
                request.familyName = "Scully"
                request.email = email
                request.role = "agent"
                return try await local.invitations.inviteMember(request).invitation.id
            }
            let delivered = try await invite("delivered@fbi.example")
            let withdrawn = try await invite("withdrawn@fbi.example")
            var claim = Orgd_V1_ClaimOutboxRequest()
            claim.mailerID = "mailer-1"
            claim.maxMessages = 10
            let mail = try await mailer.invitations.claimOutbox(claim).messages
            let tokens = Dictionary(uniqueKeysWithValues: mail.map { ($0.invitationID, $0.token) })
            let deliveredToken = try #require(tokens[delivered])
            let withdrawnToken = try #require(tokens[withdrawn])
            // The search works: before the erasure, the tokens are on disk.
            #expect(!Self.holding(deliveredToken, in: Self.files(daemon)).isEmpty)
            #expect(!Self.holding(withdrawnToken, in: Self.files(daemon)).isEmpty)

            // Delivered and acknowledged; then accepted (as the invitee would).
            var ack = Orgd_V1_AckOutboxRequest()
            ack.id = try #require(mail.first { $0.invitationID == delivered }).id
            ack.mailerID = "mailer-1"
            ack.delivered = true
            _ = try await mailer.invitations.ackOutbox(ack)
            var accept = Orgd_V1_AcceptInvitationRequest()
            accept.token = deliveredToken
            _ = try await local.invitations.acceptInvitation(accept)
            // Withdrawn while its e-mail was still unsent.
            var withdraw = Orgd_V1_WithdrawInvitationRequest()
            withdraw.id = withdrawn
            _ = try await local.invitations.withdrawInvitation(withdraw)

            await daemon.store.waitForSecretScrub()
            let files = Self.files(daemon)
            #expect(Self.holding(deliveredToken, in: files) == [])
            #expect(Self.holding(withdrawnToken, in: files) == [])
            // The daemon goes on working, its data intact.
            #expect(try await local.organizations.createOrganization(Self.organization("After the scrub")).name == "After the scrub")
            #expect(try await daemon.store.integrityCheck() == "ok")
            await mailer.close()
            await local.close()
        }
    }

    @Test("deleting the database files under a running daemon: the next write is UNAVAILABLE, none is acknowledged after, health is NOT_SERVING")
    func deletedDatabase() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            _ = try await local.organizations.createOrganization(Self.organization("Before"))
            #expect(try await local.health.check().status == .serving)
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(atPath: daemon.directory + "/orgd.sqlite" + suffix)
            }
            for attempt in 0..<3 {
                let error = await rpcError { _ = try await local.organizations.createOrganization(Self.organization("After \(attempt)")) }
                #expect(error?.code == .unavailable, "\(String(describing: error))")
                #expect(error?.message.contains("was deleted while orgd was running") == true, "\(String(describing: error))")
                #expect(error?.message.contains("restart orgd") == true)
            }
            #expect(try await local.health.check().status == .notServing)
            await local.close()
        }
    }

    @Test("replacing the database file (same name, another file) under a running daemon: writes are UNAVAILABLE")
    func replacedDatabase() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            _ = try await local.organizations.createOrganization(Self.organization("Before"))
            let path = daemon.directory + "/orgd.sqlite"
            try FileManager.default.copyItem(atPath: path, toPath: path + ".copy")
            #expect(rename(path + ".copy", path) == 0)
            let error = await rpcError { _ = try await local.organizations.createOrganization(Self.organization("After")) }
            #expect(error?.code == .unavailable && error?.message.contains("was replaced") == true, "\(String(describing: error))")
            await local.close()
        }
    }

    // Without the lock the second daemon would run on: fail, not hang.
    @Test("a second orgd on the same database exits non-zero naming the lock file and the first one's pid; the first is unharmed", .timeLimit(.minutes(1)))
    func secondDaemonRefused() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/a.sock"])
        _ = try await first.waitUntilListening(count: 1)
        let second = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/b.sock"])
        let status = try await RawSocket.offPool { second.process.waitUntilExit(); return second.process.terminationStatus }
        #expect(status != 0)
        let message = second.errorOutput()
        #expect(message.contains("orgd.sqlite.lock"), "\(message)")
        #expect(message.contains("pid \(first.process.processIdentifier)"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/b.sock"))
        let client = try await OrgdClient.connect(to: .unix(path: directory + "/a.sock"))
        #expect(try await client.organizations.createOrganization(Self.organization("Still mine")).name == "Still mine")
        await client.close()
        #expect(try await first.stop() == 0)
        // Once the first has stopped, the database is free again.
        let third = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/c.sock"])
        #expect(try await third.waitUntilListening(count: 1) == ["orgd listening on unix:\(directory)/c.sock"])
        #expect(try await third.stop() == 0)
    }

    @Test("a daemon started on a read-only database file exits non-zero saying so (run as nobody: root ignores file modes)")
    func readOnlyDatabaseAtStart() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Made by a first run, then handed to nobody and made read-only.
        let made = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/s"])
        _ = try await made.waitUntilListening(count: 1)
        #expect(try await made.stop() == 0)
        for name in ["", "/orgd.sqlite", "/orgd.sqlite.lock"] { #expect(chown(directory + name, 65534, 65534) == 0, "\(name)") }
        #expect(chmod(directory + "/orgd.sqlite", 0o444) == 0)
        let orgd = Subprocess.binDirectory.appendingPathComponent("orgd").path
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", orgd, "--database", directory + "/orgd.sqlite", "--socket", directory + "/s"]
        let result = try await Subprocess.run("/usr/bin/setpriv", asNobody)
        #expect(result.status != 0)
        #expect(result.stderr.contains("read-only") && result.stderr.contains(directory + "/orgd.sqlite"), "\(result.stderr)")
    }

    @Test("SQLite's I/O, read-only and corruption errors map to UNAVAILABLE and DATA_LOSS with a clear message, never INTERNAL")
    func errorMapping() {
        // SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_IOERR_WRITE, SQLITE_READONLY_DBMOVED
        for code: Int32 in [8, 10, 14, 10 | (3 << 8), 8 | (4 << 8)] {
            let mapped = SQLiteErrors.rpcError(sqliteResultCode: code)
            #expect(mapped.code == .unavailable, "\(code)")
            #expect(mapped.message.contains("restart orgd"), "\(mapped.message)")
        }
        #expect(SQLiteErrors.rpcError(sqliteResultCode: 8).message.contains("read-only"))
        // SQLITE_CORRUPT, SQLITE_NOTADB
        for code: Int32 in [11, 26] {
            let mapped = SQLiteErrors.rpcError(sqliteResultCode: code)
            #expect(mapped.code == .dataLoss && mapped.message.contains("damaged"), "\(code)")
        }
    }
}
