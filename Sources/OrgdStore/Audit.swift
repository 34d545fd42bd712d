import Foundation
import GRDB

/// Who is making the administrative change under way, and how. Set (as a
/// task-local) by whoever runs the call; every `Store.write` made while it is
/// set also appends an audit row, in the same savepoint as the change, so a
/// change and its audit record commit together or not at all.
public struct AuditRecord: Sendable {
    public var actor: String
    public var actingFor: String
    public var method: String
    public var requestJSON: String

    public init(actor: String, actingFor: String, method: String, requestJSON: String) {
        self.actor = actor
        self.actingFor = actingFor
        self.method = method
        self.requestJSON = requestJSON
    }

    @TaskLocal public static var current: AuditRecord?
}

/// One row of the audit log.
public struct AuditLogEntry: Sendable, Equatable {
    public var sequence: Int64
    public var time: Date
    public var actor: String
    public var actingFor: String
    public var method: String
    public var requestJSON: String
}

extension StoreTransaction {
    func appendAudit(_ record: AuditRecord) throws {
        try execute(
            "INSERT INTO audit_log (time, actor, acting_for, method, request_json) VALUES (?, ?, ?, ?, ?)",
            [now.storedMicros, record.actor, record.actingFor, record.method, record.requestJSON]
        )
    }

    /// One page of the audit log, oldest first.
    public func listAudit(method: String, after: Int64?, limit: Int) throws -> Page<AuditLogEntry> {
        let rows = try fetchAll(
            "SELECT * FROM audit_log WHERE seq > ? AND (? = '' OR method = ?) ORDER BY seq LIMIT ?",
            [after ?? 0, method, method, limit + 1]
        )
        return Self.page(rows, limit: limit) { row in
            AuditLogEntry(
                sequence: row["seq"], time: Date(storedMicros: row["time"]), actor: row["actor"], actingFor: row["acting_for"],
                method: row["method"], requestJSON: row["request_json"]
            )
        }
    }
}
