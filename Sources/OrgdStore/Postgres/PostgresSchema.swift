import Foundation
import Logging
import PostgresNIO

/// The PostgreSQL schema's versions, and the migrator that brings a database
/// to the newest at start-up.
///
/// Versions are numbered as SQLite's migrations (a future migration gets the
/// same number on both backends); PostgreSQL begins at 10, one baseline for
/// SQLite's v1…v10. Each applied version is a row of
/// `orgd_schema_migration`. Daemons starting together serialise on a
/// session advisory lock (`migrationLock`): the first migrates, the others
/// wait, then find nothing to do. A database at a version newer than this
/// binary knows is refused, untouched.
public enum PostgresSchema {
    /// One version: its statements run in one transaction (DDL is
    /// transactional in PostgreSQL), so a version is applied whole or not at all.
    struct Migration: Sendable {
        var version: Int
        var name: String
        var statements: [String]
    }

    static let migrations: [Migration] = [
        Migration(version: 10, name: "v1–v10: the schema as SQLite has it after v10", statements: baseline),
        Migration(version: 11, name: "v11: the change feed", statements: changeFeed),
        Migration(version: 12, name: "v12: secrets kept in the database (the page-token key)", statements: [
            "CREATE TABLE orgd_secret (name TEXT PRIMARY KEY, value BYTEA NOT NULL CHECK (octet_length(value) >= 32))",
        ]),
        Migration(version: 13, name: "v13: an organisation's staff and patients by (organisation, seq)", statements: [
            "CREATE INDEX staff_by_organization ON organization_staff_member(organization_id, seq)",
            "CREATE INDEX patient_member_by_organization ON organization_patient_member(organization_id, seq)",
        ]),
    ]

    /// The newest version this binary knows.
    public static let latestVersion = migrations.map(\.version).max() ?? 0

    /// The key of the session advisory lock held while migrating: "orgdmigr"
    /// in ASCII. (The change feed's commit-order lock is "orgdfeed".)
    public static let migrationLock: Int64 = 0x6f72_6764_6d69_6772

    /// Brings the database behind `connection` to `latestVersion`, under the
    /// migration lock, released on every path (on an error the session
    /// ends the transaction first, so the unlock can run). Throws
    /// `StoreOpenError` when the database is newer than this binary, or a
    /// version fails.
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query("SELECT pg_advisory_lock(\(migrationLock))", logger: logger)
        do {
            try await migrateHoldingLock(connection, logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            _ = try? await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger)
            throw error
        }
        try await connection.query("SELECT pg_advisory_unlock(\(migrationLock))", logger: logger)
    }

    private static func migrateHoldingLock(_ connection: PostgresConnection, logger: Logger) async throws {
        // The schema's CHECKs count characters, as SQLite's do: in another
        // encoding (SQL_ASCII counts bytes) they would mean something else.
        let encodings = try await connection.query("SELECT current_setting('server_encoding')", logger: logger)
        for try await encoding in encodings.decode(String.self) where encoding != "UTF8" {
            throw StoreOpenError(description:
                "the PostgreSQL database's encoding is \(encoding), not UTF8: create orgd's database with ENCODING 'UTF8'")
        }
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS orgd_schema_migration (
              version BIGINT PRIMARY KEY,
              name TEXT NOT NULL,
              apply_time BIGINT NOT NULL
            )
            """, logger: logger)
        var applied: [Int: String] = [:]
        let rows = try await connection.query("SELECT version, name FROM orgd_schema_migration", logger: logger)
        for try await (version, name) in rows.decode((Int64, String).self) {
            applied[Int(version)] = name
        }
        if let newest = applied.keys.max(), newest > latestVersion {
            throw StoreOpenError(description:
                "the database's schema is at version \(newest) (\"\(applied[newest] ?? "")\"), newer than this orgd knows "
                + "(up to \(latestVersion)): run a newer orgd")
        }
        for migration in migrations where applied[migration.version] == nil {
            try await apply(migration, connection, logger: logger)
        }
    }

    private static func apply(_ migration: Migration, _ connection: PostgresConnection, logger: Logger) async throws {
        do {
            try await connection.query("BEGIN", logger: logger)
            for statement in migration.statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let now = Date().storedMicros
            try await connection.query(
                "INSERT INTO orgd_schema_migration (version, name, apply_time) VALUES (\(Int64(migration.version)), \(migration.name), \(now))",
                logger: logger)
            try await connection.query("COMMIT", logger: logger)
        } catch let error as PSQLError where error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "refused"
            // duplicate_table, duplicate_object, duplicate_function
            if ["42P07", "42710", "42723"].contains(state) {
                throw StoreOpenError(description:
                    "the PostgreSQL database already holds objects orgd would create (\(message)) but no record of orgd's schema version: "
                    + "give orgd an empty database of its own")
            }
            throw StoreOpenError(description:
                "migrating the PostgreSQL schema to version \(migration.version) (\"\(migration.name)\") failed: \(message) (SQLSTATE \(state))")
        }
        logger.info("schema migrated", metadata: ["store.schema_version": "\(migration.version)", "store.migration": "\(migration.name)"])
    }
}
