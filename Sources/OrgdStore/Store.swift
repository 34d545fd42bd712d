import CoreMetrics
import Crypto
import Foundation
import GRDB
import Logging
import OrgdCore

/// How hard SQLite works to make a commit survive power loss.
public enum Durability: String, Sendable, CaseIterable {
    /// `synchronous=FULL`: a commit is on disk before it is acknowledged.
    case full
    /// `synchronous=NORMAL`: a commit survives a crash of orgd, but may be lost
    /// with the machine's power.
    case normal
}

/// The database: one `Sendable` value over one of two backends — an SQLite
/// file (the embedded default) or a PostgreSQL database shared by several
/// orgd — exposing transactions whose methods keep the data consistent. The
/// queries and their rules are the same on both (`StoreTransaction`); the
/// backends differ only in how transactions are opened and committed.
public struct Store: Sendable {
    enum Backend: Sendable {
        case sqlite(SQLiteBackend)
        case postgres(PostgresBackend)
    }

    let backend: Backend
    /// PostgreSQL connections per daemon, unless told otherwise.
    public static let defaultPoolSize = 16
    /// Where timestamps come from; tests inject a fixed clock.
    public let clock: @Sendable () -> Date
    /// Where the data is, for logs: the file's path or the URL without its password.
    public let location: String
    /// The access relation and the tokens in memory, once `startAccessIndex`
    /// has built it (until then, and if it is never started, every question
    /// goes to the database).
    public let accessIndex: AccessIndex

    /// The key page tokens are signed with: 256 random bits made once and
    /// kept in the database, so a token one daemon issued works on every
    /// daemon over the same database, and after a restart.
    public var pageTokenKey: [UInt8] {
        switch backend {
        case .sqlite(let sqlite): sqlite.pageTokenKey
        case .postgres(let postgres): postgres.pageTokenKey
        }
    }

    /// The newest schema this orgd knows, on each backend (it refuses to
    /// open a database a newer orgd migrated further): SQLite's last
    /// migration ("v12") and PostgreSQL's schema version.
    public static var schemaVersions: (sqlite: String, postgres: Int) {
        (Migrations.migrator.migrations.last.map { String($0.prefix { $0 != ":" }) } ?? "", PostgresSchema.latestVersion)
    }

    /// Opens (creating if needed) the SQLite file at `path` and migrates it.
    public init(
        path: String,
        durability: Durability = .full,
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "orgd.store"),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        sqlTrace: (@Sendable (String) -> Void)? = nil
    ) throws {
        backend = .sqlite(try SQLiteBackend(path: path, durability: durability, clock: clock, logger: logger, metrics: metrics, sqlTrace: sqlTrace))
        self.clock = clock
        location = path
        accessIndex = AccessIndex(metrics: metrics, logger: logger)
    }

    /// Connects to the PostgreSQL database at `location`, creating or
    /// migrating its schema (under an advisory lock, so daemons starting
    /// together do not race).
    public init(
        postgres location: PostgresLocation,
        poolSize: Int = Store.defaultPoolSize,
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "orgd.store"),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) async throws {
        backend = .postgres(try await PostgresBackend(location: location, poolSize: poolSize, logger: logger, metrics: metrics))
        self.clock = clock
        self.location = location.description
        accessIndex = AccessIndex(metrics: metrics, logger: logger)
    }

    /// Which database the store runs on.
    public var dialect: SQLDialect {
        switch backend {
        case .sqlite: .sqlite
        case .postgres: .postgres
        }
    }

    /// Runs `body` in a read-only transaction with a consistent snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        let check = TransactionCheck.current
        let guarded: @Sendable (StoreTransaction) throws -> T = { tx in
            try check?.run(tx)
            return try body(tx)
        }
        return try await mapErrors {
            switch backend {
            case .sqlite(let sqlite): try await sqlite.read(now: clock, guarded)
            case .postgres(let postgres): try await postgres.read(now: clock, guarded)
            }
        }
    }

    /// Runs `body` in a read-only transaction and calls back on the
    /// backend's thread — no Swift task in between on SQLite. For the read
    /// fast path: the caller hops back to its event loop itself.
    public func asyncRead(_ body: @escaping @Sendable (Result<StoreTransaction, RPCError>) -> Void) {
        switch backend {
        case .sqlite(let sqlite): sqlite.asyncRead(now: clock, body)
        case .postgres(let postgres): postgres.asyncRead(now: clock, body)
        }
    }

    /// The status for an error thrown inside a transaction: RPCErrors as
    /// they are, the database's refusals mapped, anything else INTERNAL.
    public static func rpcError(from error: Error) -> RPCError {
        switch error {
        case let error as RPCError: error
        case let error as DatabaseError: SQLiteErrors.rpcError(from: error)
        default: PostgresErrors.rpcError(from: error) ?? RPCError(.internal, "internal error")
        }
    }

    /// Runs `body` as one write: all of it commits, durably, or none. On
    /// SQLite, writes that arrive together share a transaction and its fsync
    /// (group commit), each in its own savepoint; on PostgreSQL each is a
    /// SERIALIZABLE transaction, run again when PostgreSQL could not
    /// serialise it. This returns once the commit is durable.
    ///
    /// Around `body`, on both backends and in the same transaction: the
    /// call's data-dependent access check first; after it, the audit row
    /// and the change feed's revision, when it changed anything.
    public func write<T: Sendable>(_ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        let audit = AuditRecord.current
        let check = TransactionCheck.current
        let job: @Sendable (StoreTransaction) throws -> any Sendable = { tx in
            try check?.run(tx)
            let before = tx.totalChanges
            let result = try body(tx)
            // A write that changed no row (a bulk invite whose rows were all
            // refused, an idempotent repeat) leaves no audit row and no
            // revision; its answer is as fresh as the newest revision it saw.
            guard tx.totalChanges != before else { return Committed(result: result, revision: try tx.latestRevision()) }
            if let audit { try tx.appendAudit(audit) }
            return Committed(result: result, revision: try tx.recordRevision())
        }
        let committed = try await mapErrors {
            // The backend hands back exactly what `job` returned.
            switch backend {
            case .sqlite(let sqlite): try await sqlite.writer.submit(job) as! Committed<T>
            case .postgres(let postgres): try await postgres.write(now: clock, job) as! Committed<T>
            }
        }
        // Acknowledged only once the access index answers with this write.
        await accessIndex.caughtUp(to: committed.revision, self)
        CommittedRevision.current?.note(committed.revision)
        return committed.result
    }

    /// Builds the access index from the database and keeps it in step:
    /// this daemon's writes are applied before they are acknowledged; over
    /// PostgreSQL, other daemons' writes are looked for every
    /// `pollInterval`. Returns at once; calls are answered from the database
    /// until the index is built (`accessIndex.isServing`).
    public func startAccessIndex(pollInterval: Duration = .milliseconds(10)) {
        let index = accessIndex
        let store = self
        // Detached: nothing of the caller's task-locals runs in its reads.
        Task.detached {
            while !index.isStopped {
                do {
                    try await index.build(store)
                    break
                } catch {
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        if dialect == .postgres { index.poll(store, every: pollInterval) }
    }

    private struct Committed<T: Sendable>: Sendable {
        var result: T
        var revision: Int64
    }

    /// The newest revision committed, as a read sees it now.
    public func latestRevision() async throws -> Int64 {
        try await read { try $0.latestRevision() }
    }

    /// A write that a client may safely retry: the first result for
    /// (`key.principal`, `key.method`, `key.key`) is stored with the change, in
    /// the same transaction, and a repeat returns it instead of writing again.
    ///
    /// `encode` turns the result into the bytes that are kept; a repeat gets
    /// those bytes back. Reusing a key with a different request is refused.
    public func write(
        idempotency key: IdempotencyKey?,
        _ body: @escaping @Sendable (StoreTransaction) throws -> [UInt8]
    ) async throws -> [UInt8] {
        guard let key else { return try await write(body) }
        return try await write { tx in
            if let stored = try tx.idempotentResponse(for: key) { return stored }
            let response = try body(tx)
            try tx.recordIdempotentResponse(response, for: key)
            return response
        }
    }

    /// Writes waiting for the next group commit (SQLite), or under way (PostgreSQL).
    public var queuedWrites: Int {
        switch backend {
        case .sqlite(let sqlite): sqlite.writer.queued
        case .postgres(let postgres): postgres.writesUnderWay
        }
    }

    /// False once the database files were deleted or replaced under this
    /// process (SQLite): writes are refused from then on (health reports
    /// NOT_SERVING). PostgreSQL's outages are answered call by call.
    public var isUsable: Bool {
        switch backend {
        case .sqlite(let sqlite): sqlite.files.problem() == nil
        case .postgres: true
        }
    }

    /// Returns once no secret erased by a committed write (an invitation
    /// token, after the mailer's acknowledgement or a cancellation) is left
    /// in the WAL file. The writer scrubs within about 50 ms of the erasure.
    /// On PostgreSQL, VACUUM reclaims the old row versions; see SECURITY.md.
    public func waitForSecretScrub() async {
        if case .sqlite(let sqlite) = backend { await sqlite.writer.waitForScrub() }
    }

    /// Closes every connection; later calls fail.
    public func close() throws {
        accessIndex.stop()
        switch backend {
        case .sqlite(let sqlite): try sqlite.close()
        case .postgres(let postgres): postgres.close()
        }
    }

    /// Runs `PRAGMA integrity_check` on SQLite; "ok" when the file is sound
    /// (PostgreSQL checks its own pages: always "ok" here).
    public func integrityCheck() async throws -> String {
        switch backend {
        case .sqlite(let sqlite): try await sqlite.integrityCheck()
        case .postgres: "ok"
        }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RPCError {
            throw error
        } catch {
            throw Self.rpcError(from: error)
        }
    }
}

/// Names one retryable create: who asked, which method, and the client's key.
public struct IdempotencyKey: Sendable, Hashable {
    public var principal: String
    public var method: String
    public var key: String
    /// SHA-256 of the serialized request, so a key reused for another request is caught.
    public var requestDigest: [UInt8]

    public init(principal: String, method: String, key: String, request: [UInt8]) {
        self.principal = principal
        self.method = method
        self.key = key
        self.requestDigest = Array(SHA256.hash(data: request))
    }
}

/// Why the store could not be opened (a read-only or damaged file, say).
public struct StoreOpenError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }
}

extension Date {
    /// Microseconds since the Unix epoch, as stored. Never traps: a date
    /// beyond what Int64 microseconds hold (about ±292,000 years) is clamped
    /// to Int64.min/max, and NaN is stored as the epoch. Requests cannot get
    /// here with such dates (`Validation.timestamp` refuses anything outside
    /// 0001–9999); this keeps a bad date from anywhere else from killing orgd.
    var storedMicros: Int64 {
        let micros = (timeIntervalSince1970 * 1_000_000).rounded()
        // 2^63 is exactly representable as a Double; Int64.max is not.
        if micros >= 9_223_372_036_854_775_808.0 { return .max }
        if micros <= -9_223_372_036_854_775_808.0 { return .min }
        return Int64(exactly: micros) ?? 0
    }

    init(storedMicros: Int64) {
        self.init(timeIntervalSince1970: Double(storedMicros) / 1_000_000)
    }
}
