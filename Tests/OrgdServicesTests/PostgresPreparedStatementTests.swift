import Foundation
import OrgdCore
import Testing
@testable import OrgdStore

/// The PostgreSQL store's named prepared statements, seen from the session
/// itself (`pg_prepared_statements` lists only the asking session's).
@Suite("PostgreSQL prepared statements", .enabled(if: ScratchPostgres.url != nil, "ORGD_TEST_POSTGRES_URL names no PostgreSQL server"))
struct PostgresPreparedStatementTests {
    /// The session's prepared statements whose text is `sql`'s start.
    static func prepared(_ store: Store, like sql: String) async throws -> Int64 {
        try await store.read { tx in
            let rows = try tx.sql.fetchAll(
                "SELECT count(*) AS n FROM pg_prepared_statements WHERE name LIKE 'nio-postgres-%' AND statement LIKE ?",
                [sql + "%"])
            let count: Int64 = rows[0]["n"]
            return count
        }
    }

    @Test("a read is prepared once per connection and reused; a session that lost its statements prepares them again")
    func preparedOnceAndAgain() async throws {
        try await ScratchPostgres.with { scratch in
            let store = try await Store(postgres: scratch.location, poolSize: 1)
            defer { try? store.close() }
            let created = try await store.write { tx in
                try tx.createOrganization(NewOrganization(name: "Prepared GP", kind: .department, identifier: nil))
            }
            for _ in 0..<3 { _ = try await store.read { tx in try tx.organization(id: created.id) } }
            let all = try await Self.prepared(store, like: "")
            #expect(all >= 2, "the organisation's read and the count itself")
            for _ in 0..<3 { _ = try await store.read { tx in try tx.organization(id: created.id) } }
            #expect(try await Self.prepared(store, like: "") == all, "the same texts again prepare nothing new")

            // What a pooler handing out another session, or DISCARD ALL, does:
            // the read still answers, and orgd stops preparing (a pooler would
            // do it again to every session).
            _ = try await store.read { tx in try tx.sql.execute("DEALLOCATE ALL", []) }
            let again = try await store.read { tx in try tx.organization(id: created.id) }
            #expect(again.name == "Prepared GP")
            #expect(try await Self.prepared(store, like: "") == 0, "prepared statements are off after a session lost them")
        }
    }

    @Test("a column added under a prepared SELECT * (another daemon's migration): the read prepares again and sees it")
    func schemaChange() async throws {
        try await ScratchPostgres.with { scratch in
            let store = try await Store(postgres: scratch.location, poolSize: 1)
            defer { try? store.close() }
            let created = try await store.write { tx in
                try tx.createOrganization(NewOrganization(name: "Widened GP", kind: .department, identifier: nil))
            }
            let sql = "SELECT * FROM organization WHERE id = ?"
            let before = try await store.read { tx in try tx.sql.fetchAll(sql, [created.id]).count }
            let preparedBefore = try await Self.prepared(store, like: "SELECT * FROM organization")
            #expect(preparedBefore == 1)
            let connection = try await scratch.connect()
            try await connection.run("ALTER TABLE organization ADD COLUMN widened integer NOT NULL DEFAULT 7")
            let widened = try await store.read { tx -> Int64 in
                let rows = try tx.sql.fetchAll(sql, [created.id])
                return rows.count == 1 ? rows[0]["widened"] : -1
            }
            #expect(before == 1)
            #expect(widened == 7)
            // Prepared again under a new name (the stale one stays with the
            // session until it closes): still on.
            #expect(try await Self.prepared(store, like: "SELECT * FROM organization") == 2)
        }
    }

    @Test("prepared_statements=off in the URL: nothing is prepared, and the store works the same")
    func off() async throws {
        try await ScratchPostgres.with { scratch in
            var location = scratch.location
            let url = try #require(ScratchPostgres.url)
            let parsed = try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "prepared_statements=off")
            #expect(!parsed.preparedStatements)
            #expect(try PostgresLocation(url: url).preparedStatements)
            #expect(throws: PostgresLocationError.self) { try PostgresLocation(url: url + (url.contains("?") ? "&" : "?") + "prepared_statements=maybe") }
            location.preparedStatements = false
            let store = try await Store(postgres: location, poolSize: 1)
            defer { try? store.close() }
            let created = try await store.write { tx in
                try tx.createOrganization(NewOrganization(name: "Unprepared GP", kind: .department, identifier: nil))
            }
            #expect(try await store.read { tx in try tx.organization(id: created.id) }.name == "Unprepared GP")
            #expect(try await Self.prepared(store, like: "") == 0)
        }
    }
}
