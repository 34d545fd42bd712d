import Foundation
import GRDB
import OrgdCore

/// One transaction's view of the store. Its methods are the only way data is
/// read or changed, so every rule that spans rows lives in one place.
/// Created by `Store.read` and `Store.write`; it must not escape their closure.
public struct StoreTransaction {
    let db: Database
    /// The transaction's clock reading: every timestamp it writes is this one.
    public let now: Date
    /// What the writer must do after the commit (nil in reads).
    let effects: TransactionEffects?

    init(db: Database, now: Date, effects: TransactionEffects? = nil) {
        self.db = db
        self.now = now
        self.effects = effects
    }

    /// Says that this write erased a secret (a plain invitation token): once
    /// it commits, the writer scrubs the old page images out of the
    /// write-ahead log (`Store.waitForSecretScrub`).
    func erasedSecret() {
        effects?.erasedSecret = true
    }

    func fetchOne(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    func fetchAll(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }

    func execute(_ sql: String, _ arguments: StatementArguments = StatementArguments()) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// Rows changed by the last statement.
    var changes: Int { db.changesCount }
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
