import Foundation

/// Who is making the administrative change under way, and how. Set (as a
/// task-local) by whoever runs the call, once it has passed the access check;
/// every `Store.write` made while it is set that changes a row also appends an
/// audit row, in the same savepoint as the change, so a change and its audit
/// record commit together or not at all — and a write that fails, or changes
/// nothing, leaves none.
public struct AuditRecord: Sendable {
    /// The most bytes of request JSON an audit row keeps; the rest is cut off
    /// with a marker saying how long it was.
    public static let maximumRequestJSONBytes = 8192

    public var actor: String
    public var actingFor: String
    public var method: String
    public var requestJSON: String

    /// `requestJSON` is truncated to `maximumRequestJSONBytes`.
    public init(actor: String, actingFor: String, method: String, requestJSON: String) {
        self.actor = actor
        self.actingFor = actingFor
        self.method = method
        self.requestJSON = Self.truncated(requestJSON)
    }

    /// `json` if it fits, else its first bytes (on a character boundary) and
    /// `…(truncated, N bytes)`, N being the whole length.
    public static func truncated(_ json: String, totalBytes: Int? = nil) -> String {
        let total = totalBytes ?? json.utf8.count
        guard total > maximumRequestJSONBytes else { return json }
        let utf8 = json.utf8
        var end = utf8.index(utf8.startIndex, offsetBy: min(maximumRequestJSONBytes, utf8.count))
        while end > utf8.startIndex, end < utf8.endIndex, UTF8.isContinuation(utf8[end]) { utf8.formIndex(before: &end) }
        return String(json[..<end]) + "…(truncated, \(total) bytes)"
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

    /// The most bytes of entries in one page of the audit log: a page always
    /// fits well inside the 4 MiB answer limit, whatever its page size.
    public static let maximumAuditPageBytes = 1 << 20

    /// One page of the audit log, oldest first: at most `limit` entries and
    /// about `maximumAuditPageBytes` (at least one entry). Request JSON is
    /// truncated as `AuditRecord` truncates it, also in rows written before
    /// there was a cap.
    public func listAudit(method: String, after: Int64?, limit: Int) throws -> Page<AuditLogEntry> {
        // Rows this version wrote are at most the cap plus the marker; only
        // longer ones (written before the cap) are cut when read.
        let head = AuditRecord.maximumRequestJSONBytes + 64
        let rows = try fetchAll(
            """
            SELECT seq, time, actor, acting_for, method, substr(request_json, 1, CAST(? AS INTEGER)) AS head,
              \(dialect.octetLength("request_json")) AS bytes
            FROM audit_log WHERE seq > ? AND (? = '' OR method = ?) ORDER BY seq LIMIT ?
            """,
            [head, after ?? 0, method, method, limit + 1]
        )
        var items: [AuditLogEntry] = []
        var bytes = 0
        for row in rows.prefix(limit) {
            let entry = AuditLogEntry(
                sequence: row["seq"], time: Date(storedMicros: row["time"]), actor: row["actor"], actingFor: row["acting_for"],
                method: row["method"], requestJSON: (row["bytes"] as Int) > head ? AuditRecord.truncated(row["head"], totalBytes: row["bytes"]) : row["head"]
            )
            let size = entry.requestJSON.utf8.count + entry.actor.utf8.count + entry.actingFor.utf8.count + entry.method.utf8.count + 64
            if !items.isEmpty && bytes + size > Self.maximumAuditPageBytes { break }
            items.append(entry)
            bytes += size
        }
        let more = rows.count > items.count
        return Page(items: items, nextAfter: more ? items.last?.sequence : nil)
    }
}
