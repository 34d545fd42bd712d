import Foundation
import OrgdCore

/// One transaction's view of the store. Its methods are the only way data is
/// read or changed, so every rule that spans rows lives in one place.
/// Created by `Store.read` and `Store.write`; it must not escape their closure.
public struct StoreTransaction {
    let sql: any SQLExecutor
    /// The transaction's clock reading: every timestamp it writes is this one.
    public let now: Date
    /// What the writer must do after the commit (nil in reads).
    let effects: TransactionEffects?

    init(sql: any SQLExecutor, now: Date, effects: TransactionEffects? = nil) {
        self.sql = sql
        self.now = now
        self.effects = effects
    }

    /// Says that this write erased a secret (a plain invitation token): once
    /// it commits, the writer scrubs the old page images out of the
    /// write-ahead log (`Store.waitForSecretScrub`).
    func erasedSecret() {
        effects?.erasedSecret = true
    }

    /// Which database this transaction runs on, for the few statements
    /// whose SQL differs.
    public var dialect: SQLDialect { sql.dialect }

    func fetchOne(_ statement: String, _ arguments: SQLArguments = []) throws -> SQLRow? {
        try sql.fetchAll(statement, arguments).first
    }

    func fetchAll(_ statement: String, _ arguments: SQLArguments = []) throws -> [SQLRow] {
        try sql.fetchAll(statement, arguments)
    }

    /// The first column of the first row, or nil when there is no row or it
    /// is NULL.
    func fetchValue<T: SQLDecodable>(_ type: T.Type, _ statement: String, _ arguments: SQLArguments = []) throws -> T? {
        guard let row = try fetchOne(statement, arguments) else { return nil }
        let value: T? = row[0]
        return value
    }

    /// Runs `statement`; returns the number of rows it changed.
    @discardableResult
    func execute(_ statement: String, _ arguments: SQLArguments = []) throws -> Int {
        try sql.execute(statement, arguments)
    }

    /// Rows changed so far on this transaction's connection (to tell whether
    /// a write changed anything).
    var totalChanges: Int { sql.totalChanges }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { sql.lastChanges }

    /// Runs `body` in a savepoint: if it throws, only its own changes are undone.
    public func savepoint<T>(_ body: () throws -> T) throws -> T {
        try sql.savepoint(body)
    }
}

extension StoreTransaction {
    func idempotentResponse(for key: IdempotencyKey) throws -> [UInt8]? {
        guard let row = try fetchOne(
            "SELECT request_digest, response FROM idempotency_key WHERE principal = ? AND method = ? AND key = ?",
            [key.principal, key.method, key.key]
        ) else { return nil }
        let digest: Data = row["request_digest"]
        guard [UInt8](digest) == key.requestDigest else {
            throw RPCError.invalidArgument(field: "idempotency-key", "already used for a different request")
        }
        let response: Data = row["response"]
        return [UInt8](response)
    }

    func recordIdempotentResponse(_ response: [UInt8], for key: IdempotencyKey) throws {
        try execute(
            """
            INSERT INTO idempotency_key (principal, method, key, request_digest, response, create_time)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [key.principal, key.method, key.key, Data(key.requestDigest), Data(response), now.storedMicros]
        )
    }
}
