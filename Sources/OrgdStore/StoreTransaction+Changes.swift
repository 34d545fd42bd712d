import Foundation
import OrgdCore

/// One entity a committed write changed, under the write's revision.
public struct ChangeRecord: Sendable, Hashable {
    public var revision: Int64
    /// Its position in the feed (to continue after it).
    public var entry: Int64
    /// What changed: "organization", "user", "service_account", "token",
    /// "patient", "staff_member", "patient_member", "consent_request",
    /// "consent_ask", "consent", "invitation", "scope".
    public var kind: String
    /// Its id; for memberships "organization/user" or
    /// "organization/patient", for an ask "patient/request", for a consent
    /// "patient/request/scope".
    public var entityID: String
    public var commitTime: Date
}

/// A page of the change feed.
public struct ChangePage: Sendable {
    public var changes: [ChangeRecord]
    /// The newest revision committed when the page was read: a consumer
    /// that has read up to it is up to date.
    public var latestRevision: Int64
    /// Whether more changes follow this page.
    public var more: Bool
}

/// A position in the change feed: after `revision`'s entry `entry`, or
/// after the whole of `revision` when `entry` is 0.
public struct ChangeCursor: Sendable, Hashable {
    public var revision: Int64
    public var entry: Int64

    public init(revision: Int64, entry: Int64 = 0) {
        self.revision = revision
        self.entry = entry
    }
}

extension StoreTransaction {
    /// Gives this write its revision: the next one, in commit order, and
    /// files the entities the triggers recorded under it. Runs last in each
    /// write that changed a row (`Store.write`); returns the revision.
    ///
    /// SQLite has one writer, so the revision after the newest is the next
    /// in commit order. On PostgreSQL, writers commit concurrently: a
    /// transaction advisory lock, taken here and held to the commit, orders
    /// the commits of all writers, so a revision becomes visible only after
    /// every smaller one has — a reader can never see n+1 and miss n.
    func recordRevision() throws -> Int64 {
        switch dialect {
        case .sqlite:
            let revision = try latestRevision() + 1
            try execute("INSERT INTO change_revision (revision, tx_key, commit_time) VALUES (?, ?, ?)", [revision, revision, now.storedMicros])
            try execute("UPDATE change_entry SET tx_key = ? WHERE tx_key IS NULL", [revision])
            return revision
        case .postgres:
            _ = try fetchAll("SELECT pg_advisory_xact_lock(?)", [Self.changeFeedLock])
            guard let revision = try fetchValue(
                Int64.self,
                "INSERT INTO change_revision (revision, tx_key, commit_time) VALUES (nextval('change_revision_seq'), txid_current(), ?) RETURNING revision",
                [now.storedMicros])
            else { throw RPCError(.internal, "the change feed gave this write no revision") }
            return revision
        }
    }

    /// The newest revision this transaction sees committed (0 before the
    /// first write).
    public func latestRevision() throws -> Int64 {
        try fetchValue(Int64.self, "SELECT max(revision) FROM change_revision") ?? 0
    }

    /// The key of the transaction advisory lock that orders commits on
    /// PostgreSQL ("orgdfeed" in ASCII).
    static let changeFeedLock: Int64 = 0x6f72_6764_6665_6564

    /// Entities changed after `cursor`, oldest first: at most `limit`.
    public func listChanges(after cursor: ChangeCursor, limit: Int) throws -> ChangePage {
        let latest = try latestRevision()
        let rows = try fetchAll(
            """
            SELECT r.revision, r.commit_time, e.seq, e.kind, e.entity_id
            FROM change_revision r JOIN change_entry e ON e.tx_key = r.tx_key
            WHERE r.revision > ? OR (r.revision = ? AND ? > 0 AND e.seq > ?)
            ORDER BY r.revision, e.seq LIMIT ?
            """,
            [cursor.revision, cursor.revision, cursor.entry, cursor.entry, limit + 1]
        )
        let changes = rows.prefix(limit).map { row in
            ChangeRecord(
                revision: row["revision"], entry: row["seq"], kind: row["kind"], entityID: row["entity_id"],
                commitTime: Date(storedMicros: row["commit_time"]))
        }
        return ChangePage(changes: Array(changes), latestRevision: latest, more: rows.count > limit)
    }
}
