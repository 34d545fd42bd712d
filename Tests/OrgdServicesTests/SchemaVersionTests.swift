import Foundation
import Testing
@testable import OrgdStore

/// The SQLite schema's versions: a file a newer orgd migrated is refused
/// untouched, and v11's triggers file what each write changed.
@Suite("SQLite schema versions")
struct SchemaVersionTests {
    /// A migrated database file in a directory of its own.
    static func migratedFile() throws -> (directory: String, path: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/orgd.sqlite"
        try Store(path: path).close()
        return (directory, path)
    }

    /// Runs statements in the sqlite3 shell (not through orgd) and returns its output.
    @discardableResult
    static func sqlite(_ path: String, _ sql: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, sql]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(process.terminationStatus == 0, "\(sql): \(text)")
        return text
    }

    /// Everything the file holds, schema and rows, as the sqlite3 shell dumps it.
    /// (Not its bytes: opening any GRDB pool writes and drops a table of its
    /// own when no WAL file exists, moving pages but no content.)
    static func dump(_ path: String) throws -> String {
        try sqlite(path, ".dump")
    }

    @Test("a file holding a migration this orgd does not know is refused, naming it, and nothing in it changes")
    func newerMigrationRefused() throws {
        let (directory, path) = try Self.migratedFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.sqlite(path, "INSERT INTO grdb_migrations VALUES ('v99: from a newer orgd'); CREATE TABLE newer_thing (x INTEGER)")
        let before = try Self.dump(path)

        let error = #expect(throws: StoreOpenError.self) { _ = try Store(path: path) }
        #expect(error?.description.contains("\"v99: from a newer orgd\"") == true, "\(String(describing: error))")
        #expect(error?.description.contains("run a newer orgd") == true, "\(String(describing: error))")
        #expect(error?.description.contains(Migrations.migrator.migrations.last ?? "?") == true, "names the newest it knows: \(String(describing: error))")
        #expect(try Self.dump(path) == before)
        #expect(before.contains("v99: from a newer orgd"))

        // Without the unknown migration the same file opens.
        try Self.sqlite(path, "DELETE FROM grdb_migrations WHERE identifier LIKE 'v99:%'")
        try Store(path: path).close()
    }

    @Test("v11's triggers file each changed entity with tx_key NULL: kind and id, the old id too when a key is rewritten, nothing for untracked tables")
    func changeFeedTriggersRecord() throws {
        let (directory, path) = try Self.migratedFile()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.sqlite(path, """
            PRAGMA foreign_keys = ON;
            INSERT INTO organization (id, name, type, create_time, update_time) VALUES
              ('00000000-0000-0000-0000-0000000000a1', 'One', 'gp_practice', 0, 0),
              ('00000000-0000-0000-0000-0000000000a2', 'Two', 'gp_practice', 0, 0);
            INSERT INTO user (id, email, email_normalized, given_name, family_name, system_role, status, create_time, update_time) VALUES
              ('00000000-0000-0000-0000-0000000000b1', 'Ann@example.com', 'ann@example.com', 'Ann', 'Lee', 'none', 'active', 0, 0);
            INSERT INTO audit_log (time, actor, method, request_json) VALUES (0, 'test', '/orgd.v1.Test/Do', '{}');
            INSERT INTO organization_staff_member (organization_id, user_id, is_membership_manager, is_agent, create_time, update_time)
              VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 0, 1, 0, 0);
            UPDATE organization_staff_member SET is_agent = 1;
            UPDATE organization_staff_member SET organization_id = '00000000-0000-0000-0000-0000000000a2';
            DELETE FROM organization_staff_member;
            """)
        let entries = try Self.sqlite(path, "SELECT kind || ' ' || entity_id || ' ' || ifnull(tx_key, 'NULL') FROM change_entry ORDER BY seq")
        #expect(entries.split(separator: "\n") == [
            "organization 00000000-0000-0000-0000-0000000000a1 NULL",
            "organization 00000000-0000-0000-0000-0000000000a2 NULL",
            "user 00000000-0000-0000-0000-0000000000b1 NULL",
            "staff_member 00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1 NULL",
            "staff_member 00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1 NULL",
            "staff_member 00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1 NULL",
            "staff_member 00000000-0000-0000-0000-0000000000a2/00000000-0000-0000-0000-0000000000b1 NULL",
            "staff_member 00000000-0000-0000-0000-0000000000a2/00000000-0000-0000-0000-0000000000b1 NULL",
        ])
    }
}
