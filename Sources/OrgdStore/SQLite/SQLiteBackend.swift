import CoreMetrics
import Foundation
import GRDB
import Logging
import OrgdCore

/// The embedded backend: one SQLite file in WAL mode. Reads run concurrently
/// on GRDB's reader pool; writes go through one `GroupCommitWriter` on GRDB's
/// single writer. Both run on GRDB's own threads, never on a NIO event loop.
struct SQLiteBackend: Sendable {
    let pool: DatabasePool
    let writer: GroupCommitWriter
    let files: DatabaseFiles
    let path: String
    let pageTokenKey: [UInt8]

    /// How long a connection waits for another's lock before SQLITE_BUSY.
    static let busyTimeoutMilliseconds: Int32 = 10_000

    /// Page cache per connection, KiB.
    static let pageCacheKiB = 16384

    init(
        path: String, durability: Durability, clock: @escaping @Sendable () -> Date, logger: Logger,
        metrics: any MetricsFactory, sqlTrace: (@Sendable (String) -> Void)?
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
            // 16 MiB of page cache per connection (SQLite's default is 2 MiB):
            // with less, a GetOrganization of 200 patients spent a quarter
            // of its CPU in pread, the membership, patient and user pages
            // it walks evicting each other. Each connection keeps its own
            // cache; nine (eight readers and the writer) at most.
            try db.execute(sql: "PRAGMA cache_size = -\(Self.pageCacheKiB)")
            if let statementTrace { db.trace { statementTrace($0.description) } }
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try Migrations.migrate(pool)
            pageTokenKey = try pool.write { db in
                try StoreTransaction(sql: SQLiteExecutor(db: db), now: clock()).sharedSecret(named: "page_token_key")
            }
        } catch let error as DatabaseError where SQLiteErrors.isStorageFault(error.resultCode) {
            // Said plainly, naming the file, rather than as the statement
            // that happened to fail.
            throw StoreOpenError(description: "cannot open the database \(path): \(SQLiteErrors.rpcError(from: error).message)")
        }
        // The migrations have run, so the WAL file exists too.
        let files = DatabaseFiles(path: path, logger: logger)
        self.pool = pool
        self.files = files
        self.writer = GroupCommitWriter(pool: pool, clock: clock, files: files, logger: logger, metrics: metrics)
        self.path = path
        logger.info("store opened", metadata: ["store.path": "\(path)", "store.durability": "\(durability.rawValue)"])
    }

    func read<T: Sendable>(now: @escaping @Sendable () -> Date, _ body: @escaping @Sendable (StoreTransaction) throws -> T) async throws -> T {
        try await pool.read { db in try body(StoreTransaction(sql: SQLiteExecutor(db: db), now: now())) }
    }

    func asyncRead(now: @escaping @Sendable () -> Date, _ body: @escaping @Sendable (Result<StoreTransaction, RPCError>) -> Void) {
        pool.asyncRead { result in
            switch result {
            case .success(let db): body(.success(StoreTransaction(sql: SQLiteExecutor(db: db), now: now())))
            case .failure(let error): body(.failure(Store.rpcError(from: error)))
            }
        }
    }

    func close() throws {
        writer.close()
        try pool.close()
    }

    func integrityCheck() async throws -> String {
        try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") ?? "" }
    }
}

/// Maps SQLite's refusals to status codes. Specific cases (a taken unique
/// identifier, say) are caught where they happen and named precisely; this is
/// the fallback for what slips through.
public enum SQLiteErrors {
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
