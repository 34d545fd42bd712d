import Foundation
import Logging
import OrgdClient
import OrgdServer
import OrgdServices
import OrgdStore
import OrgdTestSupport
import Prometheus
import Testing

/// A real orgd server, in this process, on a temporary Unix socket and TCP
/// port 0, over a real SQLite file — or, with ORGD_TEST_BACKEND=postgres, a
/// fresh database of its own on the test cluster (or the one it is given).
/// Stop it with `stop()`.
final class TestDaemon: Sendable {
    let directory: String
    let store: Store
    let server: OrgdServer
    let bound: BoundAddresses
    /// The daemon's metrics, as its endpoint would serve them.
    let registry: PrometheusCollectorRegistry

    /// Drops the daemon's own PostgreSQL database, when it made one.
    private let dropDatabase: (@Sendable () async -> Void)?
    /// The PostgreSQL database it runs over, or nil on SQLite.
    let postgresURL: String?

    private init(
        directory: String, store: Store, server: OrgdServer, bound: BoundAddresses, registry: PrometheusCollectorRegistry,
        dropDatabase: (@Sendable () async -> Void)?, postgresURL: String?
    ) {
        self.dropDatabase = dropDatabase
        self.postgresURL = postgresURL
        self.directory = directory
        self.store = store
        self.server = server
        self.bound = bound
        self.registry = registry
    }

    static func start(
        maximumFrameLength: Int? = nil, invitations: InvitationPolicy = InvitationPolicy(), postgresURL: String? = nil,
        accessIndex: Bool = true, configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> TestDaemon {
        let directory = try makeTemporaryDirectory()
        let registry = PrometheusCollectorRegistry()
        let metrics = OrgdMetrics(registry: registry)
        let store: Store
        var dropDatabase: (@Sendable () async -> Void)?
        var url = postgresURL
        if url == nil && TestDatabase.backend == .postgres {
            let database = try await TestDatabase.freshPostgres()
            dropDatabase = database.drop
            url = database.url
        }
        if let url {
            store = try await Store(postgres: try PostgresLocation(url: url), poolSize: 4, metrics: metrics)
        } else {
            store = try Store(path: directory + "/orgd.sqlite", metrics: metrics)
        }
        // As orgd does by default; built before the first call, so every
        // test's CheckAccess goes through the index.
        if accessIndex {
            store.startAccessIndex(pollInterval: .milliseconds(5))
            while !store.accessIndex.isServing { try await Task.sleep(for: .milliseconds(1)) }
        }
        // Short socket paths: sun_path holds 108 bytes.
        var configuration = ServerConfiguration(unixSocketPath: directory + "/s", tcpHost: "127.0.0.1", tcpPort: 0)
        configuration.metricsHost = "127.0.0.1"
        if let maximumFrameLength { configuration.maximumFrameLength = maximumFrameLength }
        configuration.drainTimeout = .seconds(5)
        // Some tests keep a connection whose every call fails authentication
        // (a revoked token) for a long while; the deadline has its own test.
        configuration.authenticationTimeout = .seconds(600)
        configure(&configuration)
        var logger = Logger(label: "orgd.test")
        // ORGD_TEST_LOG_LEVEL=debug shows why a test daemon closed a connection.
        logger.logLevel = ProcessInfo.processInfo.environment["ORGD_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        let server = OrgdServer(
            configuration: configuration, dispatcher: Dispatcher(store: store, logger: logger, invitations: invitations, metrics: metrics),
            logger: logger, metrics: metrics)
        let bound = try await server.start()
        return TestDaemon(directory: directory, store: store, server: server, bound: bound, registry: registry, dropDatabase: dropDatabase, postgresURL: url)
    }

    /// Calls of `method` ("service/Method") answered so far, whatever their code (orgd_calls_total).
    func answeredCalls(_ method: String) -> Int {
        registry.emitToString().split(separator: "\n")
            .filter { $0.hasPrefix("orgd_calls_total{") && $0.contains("method=\"\(method)\"") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0) { $0 + Int($1) }
    }

    /// Calls answered from the access index so far (orgd_access_index_answers_total).
    var indexAnswers: Int {
        registry.emitToString().split(separator: "\n")
            .first { $0.hasPrefix("orgd_access_index_answers_total ") }
            .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }.map { Int($0) } ?? 0
    }

    var unix: OrgdEndpoint { .unix(path: bound.unixSocketPath!) }
    var tcp: OrgdEndpoint { .tcp(host: "127.0.0.1", port: bound.tcpPort!) }
    /// The gRPC port; start the daemon with `configure: { $0.grpcHost = "127.0.0.1" }` (port 0).
    var grpcPort: Int { bound.grpcPort! }

    func client(_ endpoint: OrgdEndpoint? = nil, token: String? = nil) async throws -> OrgdClient {
        try await OrgdClient.connect(to: endpoint ?? unix, token: token)
    }

    /// A token for a new service account with `role`, made through the API.
    func serviceToken(role: Orgd_V1_SystemRole, name: String = UUID().uuidString, mayActAs: Bool = false, mailer: Bool = false) async throws -> (id: String, secret: String) {
        let local = try await client()
        defer { Task { await local.close() } }
        var account = Orgd_V1_CreateServiceAccountRequest()
        account.name = name
        account.systemRole = role
        account.mayActAs = mayActAs
        account.mailer = mailer
        let created = try await local.tokens.createServiceAccount(account)
        var token = Orgd_V1_CreateTokenRequest()
        token.serviceAccountID = created.id
        let issued = try await local.tokens.createToken(token)
        return (issued.token.id, issued.secret)
    }

    /// Runs `statement` straight on the daemon's database, not through orgd:
    /// with sqlite3 on its file, or psql on its PostgreSQL database
    /// (`postgres`, when that needs other SQL). Returns the exit status and
    /// everything printed.
    func sql(_ statement: String, postgres: String? = nil) async throws -> (status: Int32, output: String) {
        if let postgresURL {
            return try await TTRPCInteropTests.run(
                "/usr/bin/psql", ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", postgresURL, "-c", postgres ?? statement], environment: [:])
        }
        return try await TTRPCInteropTests.run("/usr/bin/sqlite3", [directory + "/orgd.sqlite", statement], environment: [:])
    }

    func stop() async {
        await server.shutdown()
        try? store.close()
        await dropDatabase?()
        try? FileManager.default.removeItem(atPath: directory)
    }

    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/orgd-e2e-XXXXXX".utf8CString)
        guard let path = mkdtemp(&template) else { throw POSIXError(.EIO) }
        return String(cString: path)
    }
}

import OrgdProto

/// Runs `body` against a fresh daemon and always stops it.
func withDaemon(
    maximumFrameLength: Int? = nil, configure: (inout ServerConfiguration) -> Void = { _ in }, _ body: (TestDaemon) async throws -> Void
) async throws {
    let daemon = try await TestDaemon.start(maximumFrameLength: maximumFrameLength, configure: configure)
    do {
        try await body(daemon)
    } catch {
        await daemon.stop()
        throw error
    }
    await daemon.stop()
}

extension Trait where Self == ConditionTrait {
    /// For tests of SQLite itself — its files, its write lock, its
    /// migrations, its group commit — which the run over PostgreSQL
    /// (ORGD_TEST_BACKEND=postgres) skips.
    static func sqliteOnly(_ why: Comment) -> Self {
        .enabled(if: TestDatabase.backend == .sqlite, why)
    }
}
