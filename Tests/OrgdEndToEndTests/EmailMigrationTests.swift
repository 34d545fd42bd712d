import Foundation
import OrgdClient
import OrgdProto
import OrgdStore
import Testing

/// Migration v7 on a database written before it: addresses stored as typed
/// (one decomposed) and keyed by the old rule. Two that are now one identity
/// stop the migration, naming both; nothing is merged or changed. Once one is
/// changed, the migration stores every address NFC and keys it by the new rule.
@Suite("e-mail migration v7")
struct EmailMigrationTests {
    static let sqlite = "/usr/bin/sqlite3"

    static func sql(_ path: String, _ statement: String) async throws -> String {
        let result = try await TTRPCInteropTests.run(sqlite, [path, statement], environment: [:])
        #expect(result.status == 0, "\(statement): \(result.output)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("a clash under NFC and case stops v7 naming both users and changes nothing; resolved, v7 stores NFC and the new keys", .sqliteOnly("SQLite's migration v7"))
    func clashStopsTheMigration() async throws {
        let daemon = try await TestDaemon.start()
        let local = try await daemon.client()
        func create(_ email: String) async throws -> String {
            var user = Orgd_V1_CreateUserRequest()
            user.email = email
            user.givenName = "Jos\u{00E9}"
            user.familyName = "Migrated"
            return try await local.memberships.createUser(user).id
        }
        let first = try await create("jos\u{00E9}@example.com")
        let second = try await create("placeholder@example.com")
        await local.close()
        // Stopped, but its directory kept for the database file.
        await daemon.server.shutdown()
        try daemon.store.close()
        defer { try? FileManager.default.removeItem(atPath: daemon.directory) }
        let path = daemon.directory + "/orgd.sqlite"

        // As an orgd before v7 would have stored it: the decomposed form as
        // typed, keyed by ASCII lowercasing only, and v7 not yet applied.
        let decomposed = "JOSE\u{0301}@example.com"
        _ = try await Self.sql(path, """
            UPDATE user SET email = '\(decomposed)', email_normalized = lower('\(decomposed)') WHERE id = '\(second)';
            DELETE FROM grdb_migrations WHERE identifier LIKE 'v7:%';
            """)

        let error = #expect(throws: StoreOpenError.self) { _ = try Store(path: path) }
        #expect(error?.description.contains("migration v7") == true, "\(String(describing: error))")
        #expect(error?.description.contains(first) == true && error?.description.contains(second) == true, "\(String(describing: error))")
        // Nothing changed: the decomposed address is still there, byte for byte, and v7 is still pending.
        let stored = try await Self.sql(path, "SELECT hex(email) FROM user WHERE id = '\(second)'")
        #expect(stored == decomposed.utf8.map { String(format: "%02X", $0) }.joined())
        #expect(try await Self.sql(path, "SELECT count(*) FROM grdb_migrations WHERE identifier LIKE 'v7:%'") == "0")

        // Resolved by hand (another decomposed address, no clash): v7 runs.
        let other = "Zoe\u{0308}@example.com"
        _ = try await Self.sql(path, "UPDATE user SET email = '\(other)', email_normalized = lower('\(other)') WHERE id = '\(second)'")
        let store = try Store(path: path)
        let migrated = try await store.read { tx in try tx.user(id: second) }
        #expect(Array(migrated.email.utf8) == Array("Zo\u{00EB}@example.com".utf8), "stored NFC")
        let found = try await store.read { tx in try tx.user(email: "zo\u{00EB}@EXAMPLE.com") }
        #expect(found?.id == second, "found by the new key")
        try store.close()
    }
}
