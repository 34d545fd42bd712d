import Foundation
import Logging
import OrgdStore
import PostgresNIO

/// Which database the tests run over, and fresh PostgreSQL databases for them.
///
/// `scripts/test` starts a throwaway PostgreSQL cluster and exports its
/// superuser URL as `ORGD_TEST_POSTGRES_URL`; `ORGD_TEST_BACKEND` chooses the
/// backend the suites run over (`sqlite`, the default, or `postgres`). Each
/// test that uses PostgreSQL takes a database of its own from
/// `freshPostgres()`, so tests running at once never see each other's rows.
/// URLs are read by the daemon's own parser (OrgdStore's `PostgresLocation`).
public enum TestDatabase {
    /// The backends a suite can run over.
    public enum Backend: String, Sendable {
        case sqlite
        case postgres
    }

    /// The superuser URL of the tests' PostgreSQL server, if there is one.
    public static var postgresURL: String? {
        guard let url = ProcessInfo.processInfo.environment["ORGD_TEST_POSTGRES_URL"], !url.isEmpty else { return nil }
        return url
    }

    /// The backend the suites run over: `ORGD_TEST_BACKEND`, SQLite unless set.
    /// A value that names neither stops the run: a typo must not quietly test
    /// SQLite again.
    public static var backend: Backend {
        let name = ProcessInfo.processInfo.environment["ORGD_TEST_BACKEND"] ?? ""
        if name.isEmpty { return .sqlite }
        guard let backend = Backend(rawValue: name) else {
            preconditionFailure("ORGD_TEST_BACKEND=\(name): sqlite or postgres")
        }
        return backend
    }

    /// Creates an empty database `orgdtest_<random hex>` on the tests' server
    /// and returns its URL, and a function that drops it (`WITH (FORCE)`:
    /// a daemon a failed test left connected does not keep it alive).
    /// Throws when `ORGD_TEST_POSTGRES_URL` is unset or the server refuses.
    public static func freshPostgres() async throws -> (url: String, drop: @Sendable () async -> Void) {
        guard let adminURL = postgresURL else {
            throw TestDatabaseError("ORGD_TEST_POSTGRES_URL is not set (scripts/test sets it; or name a server by hand)")
        }
        let server: PostgresLocation
        do {
            server = try PostgresLocation(url: adminURL)
        } catch {
            throw TestDatabaseError("ORGD_TEST_POSTGRES_URL: \(error)")
        }
        let name = "orgdtest_" + (0..<8).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max)) }.joined()
        try await withAdminConnection(server) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        let drop: @Sendable () async -> Void = {
            do {
                try await withAdminConnection(server) { admin in
                    try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
                }
            } catch {
                // A database left behind is removed with the cluster; say so rather than fail the test.
                FileHandle.standardError.write(Data("TestDatabase: could not drop \(name): \(String(reflecting: error))\n".utf8))
            }
        }
        var fresh = server
        fresh.database = name
        return (url(fresh), drop)
    }

    /// postgres-nio logs its own events; the tests want only its errors.
    static let logger: Logger = {
        var logger = Logger(label: "orgd.test.postgres")
        logger.logLevel = .error
        return logger
    }()

    /// Runs `body` on a connection to the database the admin URL names, closed after.
    static func withAdminConnection(_ server: PostgresLocation, _ body: (PostgresConnection) async throws -> Void) async throws {
        let connection = try await PostgresConnection.connect(
            configuration: try configuration(server), id: Int.random(in: 1...Int(Int32.max)), logger: logger)
        do {
            try await body(connection)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// How postgres-nio reaches `server`: its Unix socket, or TCP with the URL's sslmode
    /// (`prefer` and `require` check no certificate, as libpq; `verify-*` check it).
    static func configuration(_ server: PostgresLocation) throws -> PostgresConnection.Configuration {
        if let socket = server.socketPath {
            return .init(unixSocketPath: socket, username: server.user, password: server.password, database: server.database)
        }
        var tlsConfiguration = TLSConfiguration.makeClientConfiguration()
        if let roots = server.rootCertificatePath { tlsConfiguration.trustRoots = .file(roots) }
        switch server.tlsMode {
        case .disable, .prefer, .require: tlsConfiguration.certificateVerification = .none
        case .verifyCA: tlsConfiguration.certificateVerification = .noHostnameVerification
        case .verifyFull: tlsConfiguration.certificateVerification = .fullVerification
        }
        let tls: PostgresConnection.Configuration.TLS
        switch server.tlsMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try NIOSSLContext(configuration: tlsConfiguration))
        case .require, .verifyCA, .verifyFull: tls = .require(try NIOSSLContext(configuration: tlsConfiguration))
        }
        return .init(host: server.host ?? "localhost", port: server.port, username: server.user,
                     password: server.password, database: server.database, tls: tls)
    }
}

extension TestDatabase {
    /// `location` as a libpq URL, password included (the daemon under test
    /// is handed it); `PostgresLocation.description` leaves the password out.
    static func url(_ location: PostgresLocation) -> String {
        var query: [String] = []
        if let directory = location.socketDirectory {
            query.append("host=\(encode(directory))")
            if location.port != 5432 { query.append("port=\(location.port)") }
        }
        if location.tlsMode != .prefer { query.append("sslmode=\(location.tlsMode.rawValue)") }
        if let roots = location.rootCertificatePath { query.append("sslrootcert=\(encode(roots))") }
        let credentials = encode(location.user) + (location.password.map { ":" + encode($0) } ?? "")
        let host = location.host.map { ($0.contains(":") ? "[\($0)]" : encode($0)) + ":\(location.port)" } ?? ""
        return "postgresql://\(credentials)@\(host)/\(encode(location.database))"
            + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    private static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// Why the tests could not get a database.
public struct TestDatabaseError: Error, CustomStringConvertible {
    /// What went wrong, naming the setting or URL at fault.
    public var description: String

    init(_ description: String) {
        self.description = description
    }
}
