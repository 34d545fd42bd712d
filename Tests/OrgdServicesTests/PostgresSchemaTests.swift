import Foundation
import Logging
import NIOConcurrencyHelpers
import OrgdTestSupport
import PostgresNIO
import Testing
@testable import OrgdStore

/// A fresh database per test (`TestDatabase.freshPostgres`, on the server
/// `ORGD_TEST_POSTGRES_URL` names), dropped afterwards, with every connection
/// the test opened to it closed first, also when the test throws
/// (postgres-nio traps on a connection dropped open).
final class ScratchPostgres: Sendable {
    static let url = TestDatabase.postgresURL
    static let logger = Logger(label: "orgd.test.postgres")

    /// Where the scratch database is.
    let location: PostgresLocation
    private let opened = NIOLockedValueBox<[PostgresConnection]>([])

    private init(location: PostgresLocation) {
        self.location = location
    }

    static func configuration(_ location: PostgresLocation) -> PostgresConnection.Configuration {
        if let socket = location.socketPath {
            return .init(unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
        }
        // A throwaway test server: plain TCP.
        return .init(host: location.host ?? "localhost", port: location.port, username: location.user, password: location.password, database: location.database, tls: .disable)
    }

    /// A new connection to the scratch database, closed when the test ends.
    func connect() async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(
            configuration: Self.configuration(location), id: Int.random(in: 1...1_000_000), logger: Self.logger)
        opened.withLockedValue { $0.append(connection) }
        return connection
    }

    /// Runs `body` with a database of its own, created empty and dropped after.
    static func with(_ body: (ScratchPostgres) async throws -> Void) async throws {
        let (url, drop) = try await TestDatabase.freshPostgres()
        let scratch = ScratchPostgres(location: try PostgresLocation(url: url))
        let outcome: Result<Void, Error>
        do {
            try await body(scratch)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        for connection in scratch.opened.withLockedValue({ $0 }) where !connection.isClosed {
            try? await connection.close()
        }
        await drop()
        try outcome.get()
    }
}

extension PostgresConnection {
    /// Every row of `sql`, each as its cells' text (NULL as "NULL").
    func rows(_ sql: String) async throws -> [[String]] {
        var rows: [[String]] = []
        for try await row in try await query(PostgresQuery(unsafeSQL: sql), logger: ScratchPostgres.logger) {
            rows.append(row.map { cell in
                guard cell.bytes != nil else { return "NULL" }
                switch cell.dataType {
                case .int8, .int4, .int2: return (try? cell.decode(Int64.self)).map { "\($0)" } ?? "?"
                case .bool: return (try? cell.decode(Bool.self)).map { "\($0)" } ?? "?"
                default: return (try? cell.decode(String.self)) ?? "?"
                }
            })
        }
        return rows
    }

    func run(_ sql: String) async throws {
        try await query(PostgresQuery(unsafeSQL: sql), logger: ScratchPostgres.logger)
    }

    /// Runs `sql` and returns the server's refusal of it (nil when it was not refused).
    func refusal(_ sql: String) async -> (state: String, message: String, constraint: String)? {
        do {
            try await run(sql)
            return nil
        } catch let error as PSQLError {
            return (error.serverInfo?[.sqlState] ?? "", error.serverInfo?[.message] ?? "", error.serverInfo?[.constraintName] ?? "")
        } catch {
            return ("not a PSQLError: \(error)", "", "")
        }
    }
}

/// The PostgreSQL schema and its migrator, on a real server (skipped without
/// `ORGD_TEST_POSTGRES_URL`).
@Suite("PostgreSQL schema", .enabled(if: ScratchPostgres.url != nil, "ORGD_TEST_POSTGRES_URL names no PostgreSQL server"))
struct PostgresSchemaTests {
    static let logger = ScratchPostgres.logger

    @Test("an empty database migrates to the latest version: each version recorded once, the same tables, columns and indexes as SQLite")
    func migratesEmptyDatabase() async throws {
        try await ScratchPostgres.with { scratch in
            let connection = try await scratch.connect()
            try await PostgresSchema.migrate(connection, logger: Self.logger)
            let versions = try await connection.rows("SELECT version, name FROM orgd_schema_migration ORDER BY version")
            #expect(versions.map(\.[0]) == PostgresSchema.migrations.map { "\($0.version)" })
            #expect(versions.first == ["10", "v1–v10: the schema as SQLite has it after v10"])
            #expect(PostgresSchema.latestVersion == PostgresSchema.migrations.last?.version)

            let columns = try await connection.rows(
                """
                SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name <> 'orgd_schema_migration'
                """)
            let postgresColumns = Set(columns.map { "\($0[0]).\($0[1]) \($0[2]) \($0[3] == "NO" ? "NOT NULL" : "NULL")" })
            let indexes = try await connection.rows(
                """
                SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
                AND indexname NOT IN (SELECT conname FROM pg_constraint)
                """)

            let (sqliteColumns, sqliteIndexes) = try await Self.sqliteSchema()
            // change_entry.tx_key is NULL until the write's end on SQLite; on
            // PostgreSQL it is the transaction's id from the start.
            let expected = sqliteColumns.subtracting(["change_entry.tx_key bigint NULL"]).union(["change_entry.tx_key bigint NOT NULL"])
            #expect(postgresColumns.subtracting(expected).sorted() == [], "only in PostgreSQL")
            #expect(expected.subtracting(postgresColumns).sorted() == [], "only in SQLite")
            // change_entry_pending serves SQLite's NULL tx_key only.
            #expect(Set(indexes.map(\.[0])) == sqliteIndexes.subtracting(["change_entry_pending"]))
        }
    }

    /// SQLite's tables after all its migrations, as "table.column type NULL|NOT NULL"
    /// (types named as PostgreSQL's), and its explicitly created indexes.
    static func sqliteSchema() async throws -> (columns: Set<String>, indexes: Set<String>) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try Store(path: directory + "/orgd.sqlite")
        defer { try? store.close() }
        return try await store.read { tx in
            let columns = try tx.fetchAll(
                """
                SELECT m.name AS t, p.name AS c, p.type AS type, p."notnull" OR p.pk > 0 AS required
                FROM sqlite_master m, pragma_table_info(m.name) p
                WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> 'grdb_migrations'
                """)
            let types = ["INTEGER": "bigint", "TEXT": "text", "BLOB": "bytea"]
            let described = columns.map { row -> String in
                let type: String = row["type"]
                let required: Int64 = row["required"]
                return "\(row["t"] as String).\(row["c"] as String) \(types[type] ?? type) \(required == 1 ? "NOT NULL" : "NULL")"
            }
            let indexes = try tx.fetchAll("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").map { $0["name"] as String }
            return (Set(described), Set(indexes))
        }
    }

    @Test("migrating a migrated database changes nothing")
    func migratingAgainChangesNothing() async throws {
        try await ScratchPostgres.with { scratch in
            let connection = try await scratch.connect()
            try await PostgresSchema.migrate(connection, logger: Self.logger)
            let schema = """
                SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() ORDER BY 1
                """
            let before = try await connection.rows("SELECT * FROM orgd_schema_migration ORDER BY version")
            let objects = try await connection.rows(schema)
            try await PostgresSchema.migrate(connection, logger: Self.logger)
            #expect(try await connection.rows("SELECT * FROM orgd_schema_migration ORDER BY version") == before)
            #expect(try await connection.rows(schema) == objects)
            // The lock was released: this session holds no advisory lock.
            #expect(try await connection.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == [["0"]])
        }
    }

    @Test("daemons migrating at once: one waits for the lock, then finds nothing to do; each version is applied once")
    func concurrentMigrations() async throws {
        try await ScratchPostgres.with { scratch in
            let connections = try await withThrowingTaskGroup(of: PostgresConnection.self) { group in
                for _ in 0..<3 { group.addTask { try await scratch.connect() } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for connection in connections {
                    group.addTask { try await PostgresSchema.migrate(connection, logger: Self.logger) }
                }
                try await group.waitForAll()
            }
            let versions = try await connections[0].rows("SELECT version FROM orgd_schema_migration ORDER BY version")
            #expect(versions == PostgresSchema.migrations.map { ["\($0.version)"] })
        }
    }

    @Test("a database at a newer version than this orgd knows is refused, naming both versions, and left as it was")
    func newerSchemaRefused() async throws {
        try await ScratchPostgres.with { scratch in
            let connection = try await scratch.connect()
            try await PostgresSchema.migrate(connection, logger: Self.logger)
            let future = PostgresSchema.latestVersion + 1
            try await connection.run("INSERT INTO orgd_schema_migration VALUES (\(future), 'v\(future): from a newer orgd', 0)")
            try await connection.run("DROP TABLE change_entry") // a newer orgd's doing; this one must not recreate it
            let recorded = try await connection.rows("SELECT * FROM orgd_schema_migration ORDER BY version")

            let error = await #expect(throws: StoreOpenError.self) { try await PostgresSchema.migrate(connection, logger: Self.logger) }
            #expect(error?.description.contains("at version \(future)") == true, "\(String(describing: error))")
            #expect(error?.description.contains("up to \(PostgresSchema.latestVersion)") == true, "\(String(describing: error))")
            #expect(error?.description.contains("run a newer orgd") == true, "\(String(describing: error))")
            #expect(try await connection.rows("SELECT * FROM orgd_schema_migration ORDER BY version") == recorded)
            #expect(try await connection.rows("SELECT count(*) FROM pg_tables WHERE tablename = 'change_entry'") == [["0"]])
            #expect(try await connection.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == [["0"]])

            // Opening a store says the same.
            let opened = await #expect(throws: StoreOpenError.self) { _ = try await Store(postgres: scratch.location, poolSize: 1) }
            #expect(opened?.description.contains("at version \(future)") == true, "\(String(describing: opened))")
        }
    }

    /// Rows every refusal test builds on: two organisations, a user, a patient,
    /// a scope and a request asked of the patient.
    static let fixtures = """
        INSERT INTO organization (id, name, type, create_time, update_time) VALUES
          ('00000000-0000-0000-0000-0000000000a1', 'One', 'gp_practice', 0, 0),
          ('00000000-0000-0000-0000-0000000000a2', 'Two', 'gp_practice', 0, 0);
        INSERT INTO "user" (id, email, email_normalized, given_name, family_name, system_role, status, create_time, update_time) VALUES
          ('00000000-0000-0000-0000-0000000000b1', 'Ann@example.com', 'ann@example.com', 'Ann', 'Lee', 'none', 'active', 0, 0);
        INSERT INTO patient (id, given_name, family_name, create_time, update_time) VALUES
          ('00000000-0000-0000-0000-0000000000c1', 'Pat', 'Doe', 0, 0);
        INSERT INTO scope (id, coding_system, coding_code, text) VALUES
          ('00000000-0000-0000-0000-0000000000d1', 'http://loinc.org', '1234-5', 'Heart rate');
        INSERT INTO consent_request (id, organization_id, kind, name, create_time, update_time) VALUES
          ('00000000-0000-0000-0000-0000000000e1', '00000000-0000-0000-0000-0000000000a1', 'study', 'Study', 0, 0);
        INSERT INTO consent_history (id, patient_id, consent_request_id, action, actor, time) VALUES
          ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000e1', 'asked', 'test', 0);
        INSERT INTO audit_log (time, actor, method, request_json) VALUES (0, 'test', '/orgd.v1.Test/Do', '{}');
        INSERT INTO idempotency_key (principal, method, key, request_digest, response, create_time) VALUES
          ('user:1', '/orgd.v1.Test/Do', 'k1', '\\x00', '\\x00', 0);
        """

    @Test("the schema refuses what it must: a second primary organisation, changing history or audit, a missing reference, a CHECK, a duplicate key")
    func constraintsRefuse() async throws {
        try await ScratchPostgres.with { scratch in
            let db = try await scratch.connect()
            try await PostgresSchema.migrate(db, logger: Self.logger)
            for statement in Self.fixtures.split(separator: ";\n") { try await db.run(String(statement)) }
            let (org1, org2, user, patient) = (
                "'00000000-0000-0000-0000-0000000000a1'", "'00000000-0000-0000-0000-0000000000a2'",
                "'00000000-0000-0000-0000-0000000000b1'", "'00000000-0000-0000-0000-0000000000c1'"
            )

            // One primary organisation per user and per patient.
            try await db.run("INSERT INTO organization_staff_member (organization_id, user_id, is_membership_manager, is_agent, is_primary, create_time, update_time) VALUES (\(org1), \(user), 0, 1, 1, 0, 0)")
            let staff = await db.refusal("INSERT INTO organization_staff_member (organization_id, user_id, is_membership_manager, is_agent, is_primary, create_time, update_time) VALUES (\(org2), \(user), 0, 1, 1, 0, 0)")
            #expect(staff?.state == "23505" && staff?.constraint == "staff_one_primary_per_user", "\(String(describing: staff))")
            try await db.run("INSERT INTO organization_patient_member (organization_id, patient_id, is_primary, create_time, update_time) VALUES (\(org1), \(patient), 1, 0, 0)")
            let member = await db.refusal("INSERT INTO organization_patient_member (organization_id, patient_id, is_primary, create_time, update_time) VALUES (\(org2), \(patient), 1, 0, 0)")
            #expect(member?.state == "23505" && member?.constraint == "patient_one_primary_per_patient", "\(String(describing: member))")
            // A second, non-primary membership is fine.
            try await db.run("INSERT INTO organization_patient_member (organization_id, patient_id, is_primary, create_time, update_time) VALUES (\(org2), \(patient), 0, 0, 0)")

            // Append-only history and audit.
            for (sql, message) in [
                ("UPDATE consent_history SET actor = 'someone else'", "consent history is append-only"),
                ("DELETE FROM consent_history", "consent history is append-only"),
                ("TRUNCATE consent_history", "consent history is append-only"),
                ("UPDATE audit_log SET actor = 'someone else'", "the audit log is append-only"),
                ("DELETE FROM audit_log", "the audit log is append-only"),
                ("TRUNCATE audit_log", "the audit log is append-only"),
            ] {
                let refused = await db.refusal(sql)
                #expect(refused?.state == "P0001" && refused?.message == message, "\(sql): \(String(describing: refused))")
            }
            #expect(try await db.rows("SELECT actor FROM consent_history") == [["test"]])
            #expect(try await db.rows("SELECT actor FROM audit_log") == [["test"]])

            // Foreign keys.
            let dangling = await db.refusal("INSERT INTO organization_staff_member (organization_id, user_id, is_membership_manager, is_agent, create_time, update_time) VALUES ('00000000-0000-0000-0000-000000000000', \(user), 0, 1, 0, 0)")
            #expect(dangling?.state == "23503", "\(String(describing: dangling))")
            let consent = await db.refusal("INSERT INTO consent (patient_id, scope_id, consent_request_id, consented, answer_time) VALUES (\(patient), '00000000-0000-0000-0000-0000000000d1', '00000000-0000-0000-0000-0000000000e1', 1, 0)")
            #expect(consent?.state == "23503", "a consent needs its ask and the request's scope: \(String(describing: consent))")
            let referenced = await db.refusal("DELETE FROM organization WHERE id = \(org1)")
            #expect(referenced?.state == "23503", "still referenced: \(String(describing: referenced))")

            // CHECK constraints: trimmed names, IN lists, cross-column rules, ASCII-lowercase keys, byte lengths.
            for sql in [
                "INSERT INTO organization (id, name, type, create_time, update_time) VALUES ('00000000-0000-0000-0000-0000000000a3', 'Padded ', 'gp_practice', 0, 0)",
                "INSERT INTO organization (id, name, type, create_time, update_time) VALUES ('00000000-0000-0000-0000-0000000000a3', 'Three', 'hospital', 0, 0)",
                "INSERT INTO organization (id, name, type, identifier_system, create_time, update_time) VALUES ('00000000-0000-0000-0000-0000000000a3', 'Three', 'gp_practice', 'ods', 0, 0)",
                "INSERT INTO organization (id, name, type, create_time, update_time) VALUES ('short', 'Three', 'gp_practice', 0, 0)",
                "UPDATE organization_staff_member SET is_agent = 0",
                "UPDATE organization_staff_member SET is_primary = 2",
                "UPDATE \"user\" SET email_normalized = 'Ann@example.com'",
                "INSERT INTO consent_request (id, organization_id, kind, name, start_time, end_time, create_time, update_time) VALUES ('00000000-0000-0000-0000-0000000000e2', \(org1), 'study', 'Late', 10, 5, 0, 0)",
                "INSERT INTO invitation_token (token_hash, invitation_id, expire_time, state, create_time) VALUES ('\\x00', 'x', 0, 'live', 0)",
            ] {
                let refused = await db.refusal(sql)
                #expect(refused?.state == "23514", "\(sql): \(String(describing: refused))")
            }
            // SQLite's lower() folds ASCII only, and so does the key's CHECK here.
            try await db.run("UPDATE \"user\" SET email_normalized = 'Änn@example.com'")

            // Unique keys.
            let idempotency = await db.refusal("INSERT INTO idempotency_key (principal, method, key, request_digest, response, create_time) VALUES ('user:1', '/orgd.v1.Test/Do', 'k1', '\\x01', '\\x01', 1)")
            #expect(idempotency?.state == "23505" && idempotency?.constraint == "idempotency_key_pkey", "\(String(describing: idempotency))")
            try await db.run("INSERT INTO invitation (id, organization_id, invitee_user_id, email, title, given_name, family_name, role, status, invited_by, create_time, last_sent_time, expire_time, send_count) VALUES ('00000000-0000-0000-0000-000000000011', \(org1), \(user), 'ann@example.com', 'Dr', 'Ann', 'Lee', 'agent', 'pending', 'x', 0, 0, 0, 1)")
            let pending = await db.refusal("INSERT INTO invitation (id, organization_id, invitee_user_id, email, title, given_name, family_name, role, status, invited_by, create_time, last_sent_time, expire_time, send_count) VALUES ('00000000-0000-0000-0000-000000000012', \(org1), \(user), 'ann@example.com', 'Dr', 'Ann', 'Lee', 'agent', 'pending', 'x', 0, 0, 0, 1)")
            #expect(pending?.state == "23505" && pending?.constraint == "invitation_one_pending", "\(String(describing: pending))")
        }
    }

    @Test("triggers file each changed entity under its transaction: kind and id, the old id too when a key is rewritten, nothing for untracked tables")
    func changeFeedTriggersRecord() async throws {
        try await ScratchPostgres.with { scratch in
            let db = try await scratch.connect()
            try await PostgresSchema.migrate(db, logger: Self.logger)
            try await db.run("BEGIN")
            for statement in Self.fixtures.split(separator: ";\n") { try await db.run(String(statement)) }
            try await db.run("INSERT INTO organization_staff_member (organization_id, user_id, is_membership_manager, is_agent, create_time, update_time) VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000b1', 0, 1, 0, 0)")
            let entries = try await db.rows("SELECT kind, entity_id FROM change_entry WHERE tx_key = txid_current() ORDER BY seq")
            try await db.run("COMMIT")
            // Organisations, user, patient, scope, request; not history, audit or idempotency keys.
            #expect(entries == [
                ["organization", "00000000-0000-0000-0000-0000000000a1"],
                ["organization", "00000000-0000-0000-0000-0000000000a2"],
                ["user", "00000000-0000-0000-0000-0000000000b1"],
                ["patient", "00000000-0000-0000-0000-0000000000c1"],
                ["scope", "00000000-0000-0000-0000-0000000000d1"],
                ["consent_request", "00000000-0000-0000-0000-0000000000e1"],
                ["staff_member", "00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1"],
            ])

            // One statement, its own transaction: moving a membership files both ids; a delete files the old.
            try await db.run("UPDATE organization_staff_member SET organization_id = '00000000-0000-0000-0000-0000000000a2'")
            try await db.run("DELETE FROM organization_staff_member")
            let later = try await db.rows("SELECT kind, entity_id FROM change_entry WHERE kind = 'staff_member' ORDER BY seq")
            #expect(later == [
                ["staff_member", "00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1"],
                ["staff_member", "00000000-0000-0000-0000-0000000000a1/00000000-0000-0000-0000-0000000000b1"],
                ["staff_member", "00000000-0000-0000-0000-0000000000a2/00000000-0000-0000-0000-0000000000b1"],
                ["staff_member", "00000000-0000-0000-0000-0000000000a2/00000000-0000-0000-0000-0000000000b1"],
            ])
            #expect(try await db.rows("SELECT count(DISTINCT tx_key) FROM change_entry") == [["3"]])
        }
    }
}
