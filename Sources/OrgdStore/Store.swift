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

/// The database: one `Sendable` value that owns the connection pool and the
/// migrator, and exposes transactions whose methods keep the data consistent.
///
/// Reads run concurrently on GRDB's reader pool; writes go through one
/// `GroupCommitWriter` on GRDB's single writer. Both run on GRDB's own
/// threads, never on a NIO event loop.
public struct Store: Sendable {
    private let pool: DatabasePool
    private let writer: GroupCommitWriter
    private let files: DatabaseFiles
    /// Where timestamps come from; tests inject a fixed clock.
    public let clock: @Sendable () -> Date
    public let path: String

    /// How long a connection waits for another's lock before SQLITE_BUSY.
    static let busyTimeoutMilliseconds: Int32 = 10_000

    /// Opens (creating if needed) the database at `path` and migrates it.
    public init(
        path: String,
        durability: Durability = .full,
        clock: @escaping @Sendable () -> Date = { Date() },
        logger: Logger = Logger(label: "orgd.store"),
        metrics: any MetricsFactory = NOOPMetricsHandler.instance,
        sqlTrace: (@Sendable (String) -> Void)? = nil
    ) throws {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(TimeInterval(Self.busyTimeoutMilliseconds) / 1000)
        configuration.maximumReaderCount = 8
        let synchronous = durability == .full ? "FULL" : "NORMAL"
        // Every statement goes to `sqlTrace` when given, else to the log at trace level.
        var trace = sqlTrace
        if trace == nil && logger.logLevel <= .trace {
            trace = { @Sendable statement in logger.trace("sql", metadata: ["sql": "\(statement)"]) }
        }
        let statementTrace = trace
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            // Deleted and overwritten content is zeroed in the pages (and
            // freed pages), so an erased secret leaves no copy in the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            if let statementTrace { db.trace { statementTrace($0.description) } }
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Migrations.migrator.migrate(pool)
        } catch let error as DatabaseError where StoreErrors.isStorageFault(error.resultCode) {
            // Said plainly, naming the file, rather than as the statement
            // that happened to fail.
            throw StoreOpenError(description: "cannot open the database \(path): \(StoreErrors.rpcError(from: error).message)")
        }
        // The migrations have run, so the WAL file exists too.
        let files = DatabaseFiles(path: path, logger: logger)
        self.pool = pool
        self.files = files
        self.writer = GroupCommitWriter(pool: pool, clock: clock, files: files, logger: logger, metrics: metrics)
        self.clock = clock
        self.path = path
        logger.info("store opened", metadata: ["store.path": "\(path)", "store.durability": "\(durability.rawValue)"])
    }

    /// Runs `body` in a read-only transaction with a consistent snapshot.
    public func read<T: Sendable>(_ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        let clock = self.clock
        let check = TransactionCheck.current
        return try await mapErrors {
            try await pool.read { db in
                let tx = StoreTransaction(db: db, now: clock())
                try check?.run(tx)
                return try body(tx)
            }
        }
    }

    /// Runs `body` on a reader thread in a read-only transaction, and calls
    /// back there — no Swift task in between. For the read fast path: the
    /// caller hops back to its event loop itself.
    public func asyncRead(_ body: @escaping @Sendable (Result<StoreTransaction, RPCError>) -> Void) {
        let clock = self.clock
        pool.asyncRead { result in
            switch result {
            case .success(let db): body(.success(StoreTransaction(db: db, now: clock())))
            case .failure(let error): body(.failure(Self.rpcError(from: error)))
            }
        }
    }

    /// The status for an error thrown inside a transaction: RPCErrors as
    /// they are, SQLite's refusals mapped, anything else INTERNAL.
    public static func rpcError(from error: Error) -> RPCError {
        switch error {
        case let error as RPCError: error
        case let error as DatabaseError: StoreErrors.rpcError(from: error)
        default: RPCError(.internal, "internal error")
        }
    }

    /// Runs `body` as one write: all of it commits, durably, or none. Writes
    /// that arrive together share a transaction and its fsync (group commit),
    /// each in its own savepoint; this returns once the commit is durable.
    public func write<T: Sendable>(_ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        let audit = AuditRecord.current
        let check = TransactionCheck.current
        return try await mapErrors {
            // The writer hands back exactly what `body` returned.
            try await writer.submit { tx in
                try check?.run(tx)
                let before = tx.totalChanges
                let result = try body(tx)
                // Audit what changed: a write that changed no row (a bulk
                // invite whose rows were all refused, an idempotent repeat)
                // leaves no audit row.
                if let audit, tx.totalChanges != before { try tx.appendAudit(audit) }
                return result
            } as! T
        }
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

    /// Writes waiting for the next group commit.
    public var queuedWrites: Int { writer.queued }

    /// False once the database files were deleted or replaced under this
    /// process: writes are refused from then on (health reports NOT_SERVING).
    public var isUsable: Bool { files.problem() == nil }

    /// Returns once no secret erased by a committed write (an invitation
    /// token, after the mailer's acknowledgement or a cancellation) is left
    /// in the WAL file. The writer scrubs within about 50 ms of the erasure.
    public func waitForSecretScrub() async {
        await writer.waitForScrub()
    }

    /// Closes every connection; later calls fail.
    public func close() throws {
        writer.close()
        try pool.close()
    }

    /// Runs `PRAGMA integrity_check`; "ok" when the file is sound.
    public func integrityCheck() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }

    private func mapErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DatabaseError {
            throw StoreErrors.rpcError(from: error)
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

/// Maps SQLite's refusals to status codes. Specific cases (a taken unique
/// identifier, say) are caught where they happen and named precisely; this is
/// the fallback for what slips through.
public enum StoreErrors {
    static func rpcError(from error: DatabaseError) -> RPCError {
        rpcError(resultCode: error.resultCode, extendedResultCode: error.extendedResultCode, message: error.message)
    }

    /// Faults of the files or the disk rather than refusals of a request.
    static func isStorageFault(_ code: ResultCode) -> Bool {
        [.SQLITE_READONLY, .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL, .SQLITE_NOLFS, .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_FULL].contains(code)
    }

    /// The status for an SQLite result code (primary or extended), as a
    /// client sees it; public for tests.
    public static func rpcError(sqliteResultCode code: Int32) -> RPCError {
        let extended = ResultCode(rawValue: code)
        return rpcError(resultCode: extended.primaryResultCode, extendedResultCode: extended, message: nil)
    }

    static func rpcError(resultCode: ResultCode, extendedResultCode: ResultCode, message: String?) -> RPCError {
        let error = (extendedResultCode: extendedResultCode, message: message)
        switch resultCode {
        case .SQLITE_CONSTRAINT:
            if error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
                || error.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY
            {
                return RPCError(.alreadyExists, "already exists (\(error.message ?? "unique constraint"))")
            }
            if error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY {
                return RPCError(.failedPrecondition, "a referenced record does not exist or is still referenced")
            }
            return RPCError(.invalidArgument, "refused by the schema: \(error.message ?? "constraint failed")")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return RPCError(.unavailable, "the database is busy; retry")
        case .SQLITE_FULL:
            return RPCError(.resourceExhausted, "the disk is full")
        case .SQLITE_READONLY:
            return RPCError(.unavailable, "the database is read-only (SQLite error \(error.extendedResultCode.rawValue)): check the permissions of the database file, its directory and file system, then restart orgd")
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL, .SQLITE_NOLFS:
            return RPCError(.unavailable, "the database file could not be read or written (SQLite I/O error \(error.extendedResultCode.rawValue)): check the disk and the database file, then restart orgd")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return RPCError(.dataLoss, "the database file is damaged (SQLite error \(error.extendedResultCode.rawValue)): stop orgd and restore it from a backup")
        default:
            return RPCError(.internal, "database error \(resultCode.rawValue)")
        }
    }
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
