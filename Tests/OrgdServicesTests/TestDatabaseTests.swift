import Foundation
import Logging
import PostgresNIO
import OrgdStore
import Testing
@testable import OrgdTestSupport

/// The shared helper's own tests: every PostgreSQL test relies on each
/// getting a database of its own that starts empty and goes away after.
@Suite("the tests' PostgreSQL databases", .enabled(if: TestDatabase.postgresURL != nil, "ORGD_TEST_POSTGRES_URL is not set"))
struct TestDatabaseTests {
    @Test("two fresh databases are distinct and empty, and dropping one removes it and leaves the other")
    func freshAndDropped() async throws {
        let first = try await TestDatabase.freshPostgres()
        let second = try await TestDatabase.freshPostgres()
        let firstURL = try PostgresLocation(url: first.url)
        let secondURL = try PostgresLocation(url: second.url)
        #expect(firstURL.database != secondURL.database)
        #expect(firstURL.database.hasPrefix("orgdtest_"))

        for url in [firstURL, secondURL] {
            try await TestDatabase.withAdminConnection(url) { connection in
                let current = try await Self.names(connection, "SELECT current_database()")
                let relations = try await Self.names(connection, """
                    SELECT relname::text FROM pg_class JOIN pg_namespace ON pg_namespace.oid = relnamespace
                    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
                    """)
                #expect(current == [url.database])
                #expect(relations == [])
            }
        }
        // A table in one is not in the other.
        try await TestDatabase.withAdminConnection(firstURL) { connection in
            try await connection.query("CREATE TABLE marker (id integer)", logger: TestDatabase.logger)
        }
        try await TestDatabase.withAdminConnection(secondURL) { connection in
            let markers = try await Self.names(connection, "SELECT tablename::text FROM pg_tables WHERE tablename = 'marker'")
            #expect(markers == [])
        }

        await first.drop()
        let admin = try PostgresLocation(url: try #require(TestDatabase.postgresURL))
        try await TestDatabase.withAdminConnection(admin) { connection in
            let left = try await Self.names(connection, """
                SELECT datname::text FROM pg_database WHERE datname IN ('\(firstURL.database)', '\(secondURL.database)')
                """)
            #expect(left == [secondURL.database])
        }
        await second.drop()
        try await TestDatabase.withAdminConnection(admin) { connection in
            let left = try await Self.names(connection, "SELECT datname::text FROM pg_database WHERE datname = '\(secondURL.database)'")
            #expect(left == [])
        }
    }

    @Test("drop succeeds while a connection to the database is still open (WITH FORCE)")
    func dropWhileConnected() async throws {
        let database = try await TestDatabase.freshPostgres()
        let url = try PostgresLocation(url: database.url)
        let lingering = try await PostgresConnection.connect(
            configuration: try TestDatabase.configuration(url), id: 1, logger: TestDatabase.logger)
        await database.drop()
        let admin = try PostgresLocation(url: try #require(TestDatabase.postgresURL))
        try await TestDatabase.withAdminConnection(admin) { connection in
            let left = try await Self.names(connection, "SELECT datname::text FROM pg_database WHERE datname = '\(url.database)'")
            #expect(left == [])
        }
        try? await lingering.close()
    }

    /// The first column of every row `sql` returns.
    static func names(_ connection: PostgresConnection, _ sql: String) async throws -> [String] {
        var names: [String] = []
        for try await name in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).decode(String.self) {
            names.append(name)
        }
        return names
    }
}

/// The helper's URL handling needs no server.
@Suite("the tests' PostgreSQL URLs")
struct TestDatabaseURLTests {
    @Test("the URL handed to a daemon names the same server and database, password and sslmode kept", arguments: [
        "postgresql://orgdtest@/orgdtest_1?host=/tmp/orgd-pg.abc",
        "postgresql://u:p%40ss@db.example:6543/orgdtest_1?sslmode=require",
        "postgresql://u@/orgdtest_1?host=/run/postgresql&port=5433",
        "postgresql://u@[::1]:5432/orgdtest_1?sslmode=disable",
    ])
    func urlRoundTrip(url: String) throws {
        let location = try PostgresLocation(url: url)
        #expect(TestDatabase.url(location) == url)
        let again = try PostgresLocation(url: TestDatabase.url(location))
        #expect(again.user == location.user && again.password == location.password && again.host == location.host)
        #expect(again.socketDirectory == location.socketDirectory && again.port == location.port)
        #expect(again.database == location.database && again.tlsMode == location.tlsMode)
    }
}
