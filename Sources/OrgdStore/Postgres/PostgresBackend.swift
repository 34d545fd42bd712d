import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import OrgdCore
import PostgresNIO

/// The shared backend: a PostgreSQL database that several orgd use at once.
///
/// Connections come from postgres-nio's `PostgresClient` pool. A transaction
/// leases one, then runs whole — BEGIN, the store's statements, COMMIT — on a
/// thread of this backend's own pool, each statement waiting for its answer:
/// the store's transactions are synchronous code shared with SQLite, and no
/// event loop or Swift concurrency thread ever blocks.
///
/// Writes are SERIALIZABLE: PostgreSQL refuses any interleaving that no
/// serial order could give, and the write runs again (up to
/// `maximumAttempts`) — so the rules the store checks inside a transaction
/// hold across daemons without a lock per rule. Reads are REPEATABLE READ,
/// READ ONLY: one snapshot, never refused.
final class PostgresBackend: Sendable {
    /// How often a write refused for a serialization failure or a deadlock
    /// runs, in all, before its caller hears ABORTED.
    static let maximumAttempts = 12
    /// How long a transaction waits for a connection before UNAVAILABLE.
    static let leaseTimeout: Duration = .seconds(5)

    private let client: PostgresClient
    private let running: Task<Void, Never>
    private let threads: NIOThreadPool
    private let logger: Logger
    private let underWay = NIOLockedValueBox(0)
    private let progress = LeaseProgress()
    /// Each connection's named prepared statements; nil when they are off
    /// (`?prepared_statements=off` in the URL, for a pooler in transaction
    /// mode in front of PostgreSQL).
    private let prepared: PreparedStatementCache?
    private let retries: Counter
    /// The same series as SQLite's group commit: here every batch is one write.
    private let batchSize: Recorder
    private let commitDuration: CoreMetrics.Timer
    /// Read from the database once it is migrated (`Store.pageTokenKey`).
    private let sharedKey = NIOLockedValueBox<[UInt8]>([])
    var pageTokenKey: [UInt8] { sharedKey.withLockedValue { $0 } }

    init(location: PostgresLocation, poolSize: Int, logger: Logger, metrics: any MetricsFactory) async throws {
        var configuration: PostgresClient.Configuration
        if let socket = location.socketPath {
            configuration = PostgresClient.Configuration(
                unixSocketPath: socket, username: location.user, password: location.password, database: location.database)
        } else {
            configuration = PostgresClient.Configuration(
                host: location.host ?? "localhost", port: location.port, username: location.user, password: location.password,
                database: location.database, tls: try Self.tls(location))
        }
        configuration.options.maximumConnections = poolSize
        configuration.options.minimumConnections = 0
        configuration.options.connectTimeout = .seconds(5)
        // A statement stuck behind a lock, or a server that stopped
        // answering, fails the call rather than holding a thread forever.
        configuration.options.additionalStartupParameters = [
            ("application_name", location.applicationName),
            ("statement_timeout", "30000"),
            ("idle_in_transaction_session_timeout", "60000"),
        ]
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        running = Task { await client.run() }
        threads = NIOThreadPool(numberOfThreads: poolSize)
        threads.start()
        prepared = location.preparedStatements ? PreparedStatementCache(poolSize: poolSize) : nil
        self.logger = logger
        retries = Counter(label: "orgd_store_retries_total", dimensions: [], factory: metrics)
        batchSize = Recorder(label: "orgd_commit_batch_size", dimensions: [], aggregate: true, factory: metrics)
        commitDuration = CoreMetrics.Timer(label: "orgd_commit_duration_seconds", dimensions: [], factory: metrics)
        do {
            try await Self.withLeaseTimeout(Self.leaseTimeout * 6) {
                try await client.withConnection { connection in
                    try await PostgresSchema.migrate(connection, logger: logger)
                }
            }
            let key = try await write(now: { Date() }) { tx in try tx.sharedSecret(named: "page_token_key") } as! [UInt8]
            sharedKey.withLockedValue { $0 = key }
        } catch {
            close()
            if let error = error as? StoreOpenError { throw error }
            throw StoreOpenError(description: "cannot open the PostgreSQL database \(location): \(Store.rpcError(from: error).message)")
        }
        logger.info("store opened", metadata: ["store.url": "\(location)", "store.pool_size": "\(poolSize)"])
    }

    static func tls(_ location: PostgresLocation) throws -> PostgresClient.Configuration.TLS {
        var tls = TLSConfiguration.makeClientConfiguration()
        switch location.tlsMode {
        case .disable: return .disable
        case .prefer, .require: tls.certificateVerification = .none
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        if let roots = location.rootCertificatePath { tls.trustRoots = .file(roots) }
        return location.tlsMode == .prefer ? .prefer(tls) : .require(tls)
    }

    /// Writes started and not yet answered.
    var writesUnderWay: Int { underWay.withLockedValue { $0 } }

    func read<T: Sendable>(now: @escaping @Sendable () -> Date, _ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        let run = {
            try await self.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { executor in
                try body(StoreTransaction(sql: executor, now: now()))
            }
        }
        do {
            return try await run()
        } catch let error where PostgresErrors.refusal(error)?.isStalePreparedStatement == true {
            // The session lost its prepared statements, or a schema change
            // altered one's columns (the executor forgot them): once more.
            noteStale(error)
            return try await run()
        }
    }

    func asyncRead(now: @escaping @Sendable () -> Date, _ body: @escaping @Sendable (Result<StoreTransaction, RPCError>) -> Void) {
        Task {
            // `body` hears exactly once: once it has had the transaction, a
            // failure after it (the read-only COMMIT) changes nothing it read.
            let delivered = NIOLockedValueBox(false)
            do {
                try await transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") { executor in
                    delivered.withLockedValue { $0 = true }
                    body(.success(StoreTransaction(sql: executor, now: now())))
                }
            } catch {
                if !delivered.withLockedValue({ $0 }) { body(.failure(Store.rpcError(from: error))) }
            }
        }
    }

    func write(now: @escaping @Sendable () -> Date, _ body: @escaping @Sendable (StoreTransaction) throws -> any Sendable) async throws -> any Sendable {
        underWay.withLockedValue { $0 += 1 }
        defer { underWay.withLockedValue { $0 -= 1 } }
        var attempt = 1
        while true {
            do {
                let started = ContinuousClock.now
                let result = try await transaction("BEGIN ISOLATION LEVEL SERIALIZABLE") { executor in
                    try body(StoreTransaction(sql: executor, now: now()))
                }
                commitDuration.recordInterval(since: started)
                batchSize.record(1)
                return result
            } catch let error where PostgresErrors.isRetryable(error) {
                noteStale(error)
                guard attempt < Self.maximumAttempts else {
                    throw RPCError(.aborted, "the write conflicted with concurrent writes \(attempt) times; retry")
                }
                retries.increment()
                // Jittered, growing pauses so that the conflicting writers
                // do not meet again at once.
                let pause = Double.random(in: 0.5...1.5) * min(0.001 * Double(1 << min(attempt, 7)), 0.1)
                try? await Task.sleep(for: .seconds(pause))
                attempt += 1
            }
        }
    }

    /// After SQLSTATE 26000 (a session without orgd's prepared statements:
    /// a pooler in transaction mode, or DISCARD ALL), prepared statements
    /// are turned off for this process, with a warning once.
    private func noteStale(_ error: any Error) {
        guard PostgresErrors.refusal(error)?.state == "26000", prepared?.disable() == true else { return }
        logger.warning("PostgreSQL sessions lose orgd's prepared statements (a pooler in transaction mode?): prepared statements are off until orgd restarts; add prepared_statements=off to the URL")
    }

    /// Leases a connection and runs `begin`, `body` and COMMIT on a pool
    /// thread; rolls back when anything throws.
    private func transaction<T: Sendable>(_ begin: String, _ body: @escaping @Sendable (PostgresExecutor) throws -> T) async throws -> T {
        let logger = self.logger
        let threads = self.threads
        do {
            return try await leased(begin, body, logger: logger, threads: threads)
        } catch let error as RPCError {
            throw error
        } catch let error as PSQLError {
            throw error
        } catch let error as PostgresRefusal {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as PostgresDecodingError {
            // A value orgd cannot read back: a bug of ours, not an outage.
            logger.error("PostgreSQL answer not decodable", metadata: ["column": "\(error.columnName)", "type": "\(error.postgresType)"])
            throw RPCError(.internal, "internal error")
        } catch {
            // What the pool and the socket throw when the server is gone
            // (a refused or missing socket, a connect timeout, the circuit
            // breaker): an outage, never INTERNAL.
            logger.debug("PostgreSQL unreachable", metadata: ["error": "\(error)"])
            throw RPCError(.unavailable, "PostgreSQL is unreachable (\(type(of: error))); retry")
        }
    }

    private func leased<T: Sendable>(
        _ begin: String, _ body: @escaping @Sendable (PostgresExecutor) throws -> T, logger: Logger, threads: NIOThreadPool
    ) async throws -> T {
        try await Self.withLeaseTimeout(Self.leaseTimeout, progress: progress) { [client, prepared, progress] in
            try await client.withConnection { connection in
                defer { progress.noteTransactionEnded() }
                return try await threads.runIfActive {
                    let executor = PostgresExecutor(
                        connection: connection, statements: prepared?.statements(for: connection.id), logger: logger)
                    _ = try executor.run(begin, [])
                    do {
                        let result = try body(executor)
                        _ = try executor.run("COMMIT", [])
                        return result
                    } catch {
                        if connection.isClosed == false { _ = try? executor.run("ROLLBACK", []) }
                        throw error
                    }
                }
            }
        }
    }

    /// Runs `body`, which waits for a connection first; when none comes
    /// within `timeout` of the pool's last finished transaction (the pool
    /// makes no progress: the database is down or every connection is
    /// stuck), or within `longest` in all, cancels the wait and throws
    /// UNAVAILABLE. A burst of calls longer than the pool can serve in
    /// `timeout` waits its turn while transactions keep finishing. A
    /// transaction that already runs on a pool thread is not interrupted:
    /// it finishes, and its outcome is returned.
    static func withLeaseTimeout<T: Sendable>(
        _ timeout: Duration, longest: Duration = .seconds(30), progress: LeaseProgress? = nil,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                let start = ContinuousClock.now
                var deadline = start + timeout
                while true {
                    try await Task.sleep(until: deadline)
                    guard let last = progress?.lastTransactionEnded, last + timeout > deadline, deadline < start + longest else {
                        return nil
                    }
                    deadline = min(last + timeout, start + longest)
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
                // The timer fired: stop waiting for a connection.
                group.cancelAll()
                // The cancelled wait ends with the pool's own cancellation
                // error (ConnectionPoolError.requestCancelled, which is not
                // public API), a CancellationError or PSQLError.queryCancelled:
                // all mean "no connection came". A transaction already running
                // finishes and its outcome is returned.
                do {
                    while let late = try await group.next() {
                        if let value = late { return value }
                    }
                } catch let error as RPCError {
                    throw error
                } catch let error where PostgresErrors.refusal(error) != nil {
                    throw error
                } catch {
                }
                throw RPCError(.unavailable, "no PostgreSQL connection within \(timeout) of the last finished transaction (or \(longest) in all): the database is down or every connection is busy; retry")
            }
            throw CancellationError()
        }
    }

    func close() {
        running.cancel()
        threads.shutdownGracefully { _ in }
    }
}

/// When the pool last gave a connection back: a call waiting for one keeps
/// waiting while transactions keep finishing (`withLeaseTimeout`).
final class LeaseProgress: Sendable {
    private let last = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    var lastTransactionEnded: ContinuousClock.Instant? { last.withLockedValue { $0 } }

    func noteTransactionEnded() { last.withLockedValue { $0 = .now } }
}

/// Maps PostgreSQL's refusals and outages to status codes.
enum PostgresErrors {
    /// Serialization failures, deadlocks, and a connection that lost its
    /// prepared statements (its executor forgot them; the next attempt
    /// prepares them again): the transaction may run again.
    static func isRetryable(_ error: any Error) -> Bool {
        guard let refusal = refusal(error) else { return false }
        return refusal.state == "40001" || refusal.state == "40P01" || refusal.isStalePreparedStatement
    }

    /// PostgreSQL's refusal of a statement, from either API of postgres-nio.
    static func refusal(_ error: any Error) -> PostgresRefusal? {
        if let error = error as? PostgresRefusal { return error }
        guard let error = error as? PSQLError, error.code == .server, let info = error.serverInfo else { return nil }
        return PostgresRefusal(state: info[.sqlState] ?? "", message: info[.message] ?? "refused", constraint: info[.constraintName])
    }

    /// The status for an error from postgres-nio or its pool, or nil when
    /// it is not one.
    static func rpcError(from error: Error) -> RPCError? {
        if error is NIOThreadPoolError.ThreadPoolInactive {
            return RPCError(.unavailable, "orgd is shutting down")
        }
        if let refusal = refusal(error) {
            let (state, message) = (refusal.state, refusal.message)
            switch state {
            case "23505": return RPCError(.alreadyExists, "already exists (\(refusal.constraint ?? "unique constraint"))")
            case "23503": return RPCError(.failedPrecondition, "a referenced record does not exist or is still referenced")
            case "40001", "40P01": return RPCError(.aborted, "the write conflicted with concurrent writes; retry")
            case "57014": return RPCError(.unavailable, "the database statement timed out; retry")
            case "25006": return RPCError(.unavailable, "the PostgreSQL server is read-only (a standby?): point orgd at the primary")
            case "0A000" where refusal.isStalePreparedStatement:
                return RPCError(.unavailable, "the database schema changed under orgd's prepared statements; retry")
            case "26000":
                return RPCError(.unavailable, "the PostgreSQL session lost orgd's prepared statements (a pooler in transaction mode? add prepared_statements=off to the URL); retry")
            default:
                if state.hasPrefix("23") || state.hasPrefix("22") || state == "P0001" {
                    return RPCError(.invalidArgument, "refused by the schema: \(message)")
                }
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return RPCError(.unavailable, "PostgreSQL cannot serve now (SQLSTATE \(state)); retry")
                }
                return RPCError(.internal, "database error (SQLSTATE \(state))")
            }
        }
        guard let error = error as? PSQLError else {
            if error is ChannelError || error is IOError { return unreachable }
            return nil
        }
        switch error.code {
        case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed, .queryCancelled,
             .sslUnsupported, .failedToAddSSLHandler:
            return unreachable
        default:
            return RPCError(.unavailable, "PostgreSQL connection failed (\(error.code)); retry")
        }
    }

    static let unreachable = RPCError(.unavailable, "PostgreSQL is unreachable or closed the connection; retry (a write in flight may or may not have committed)")
}

/// PostgreSQL refused a statement: its SQLSTATE, message and constraint.
/// postgres-nio's prepared statements (its older API) report a refusal as
/// `PostgresError.server`; the executor restates it so, and the rest of the
/// store reads both kinds through `PostgresErrors.refusal`.
struct PostgresRefusal: Error, CustomStringConvertible {
    let state: String
    let message: String
    let constraint: String?

    init(state: String, message: String, constraint: String?) {
        self.state = state
        self.message = message
        self.constraint = constraint
    }

    init(_ error: PostgresMessage.Error) {
        self.init(state: error.fields[.sqlState] ?? "", message: error.fields[.message] ?? "refused", constraint: error.fields[.constraintName])
    }

    var description: String { "PostgreSQL refused the statement (SQLSTATE \(state)): \(message)" }

    /// A prepared statement that cannot run as prepared: the session does
    /// not know it (26000), or a schema change altered its result columns
    /// ("cached plan must not change result type", 0A000). Prepared again,
    /// it runs.
    var isStalePreparedStatement: Bool {
        state == "26000" || (state == "0A000" && message.contains("cached plan"))
    }
}
