import Foundation

/// One table the change feed follows: every row inserted, updated or deleted
/// in it files `kind` and the entity id made from `key` (its columns joined
/// with "/") in `change_entry`, by a trigger, so no write can forget it.
struct ChangeFeedSource: Sendable {
    /// The table, as SQL names it (`"user"` is quoted: a keyword in PostgreSQL).
    var table: String
    var kind: String
    /// The columns whose values, joined with "/", are the entity's id.
    var key: [String]

    /// A name for the table's triggers and functions, without quotes.
    var name: String { table.replacingOccurrences(of: "\"", with: "") }

    /// The entity id of the row `OLD` or `NEW`.
    func id(_ row: String) -> String {
        key.map { "\(row).\($0)" }.joined(separator: " || '/' || ")
    }
}

extension Migrations {
    /// What the change feed records (part of v11 on both backends; changing
    /// this list is a new migration):
    ///
    /// | kind              | entity id                                  | from the tables |
    /// |-------------------|--------------------------------------------|-----------------|
    /// | `organization`    | organisation id                            | organization |
    /// | `user`            | user id                                    | user |
    /// | `service_account` | service account id                         | service_account |
    /// | `token`           | token id                                   | api_token |
    /// | `patient`         | patient id                                 | patient |
    /// | `staff_member`    | `organization_id/user_id`                  | organization_staff_member |
    /// | `patient_member`  | `organization_id/patient_id`               | organization_patient_member |
    /// | `consent_request` | request id                                 | consent_request, consent_request_scope, consent_request_data_source |
    /// | `consent_ask`     | `patient_id/consent_request_id`            | consent_ask |
    /// | `consent`         | `patient_id/consent_request_id/scope_id`   | consent |
    /// | `invitation`      | invitation id                              | invitation |
    /// | `scope`           | scope id                                   | scope |
    ///
    /// One entry per row changed, in the order the rows changed: an entity
    /// can appear more than once under one revision (a request and its
    /// scopes, say). An UPDATE that rewrites a row's key files the old id
    /// before the new one. Not followed: consent history and the audit log
    /// (append-only records of these changes), idempotency keys, invitation
    /// tokens and sends, the outbox, and the feed's own tables.
    static let changeFeedSources: [ChangeFeedSource] = [
        ChangeFeedSource(table: "organization", kind: "organization", key: ["id"]),
        ChangeFeedSource(table: "\"user\"", kind: "user", key: ["id"]),
        ChangeFeedSource(table: "service_account", kind: "service_account", key: ["id"]),
        ChangeFeedSource(table: "api_token", kind: "token", key: ["id"]),
        ChangeFeedSource(table: "patient", kind: "patient", key: ["id"]),
        ChangeFeedSource(table: "organization_staff_member", kind: "staff_member", key: ["organization_id", "user_id"]),
        ChangeFeedSource(table: "organization_patient_member", kind: "patient_member", key: ["organization_id", "patient_id"]),
        ChangeFeedSource(table: "consent_request", kind: "consent_request", key: ["id"]),
        ChangeFeedSource(table: "consent_request_scope", kind: "consent_request", key: ["consent_request_id"]),
        ChangeFeedSource(table: "consent_request_data_source", kind: "consent_request", key: ["consent_request_id"]),
        ChangeFeedSource(table: "consent_ask", kind: "consent_ask", key: ["patient_id", "consent_request_id"]),
        ChangeFeedSource(table: "consent", kind: "consent", key: ["patient_id", "consent_request_id", "scope_id"]),
        ChangeFeedSource(table: "invitation", kind: "invitation", key: ["id"]),
        ChangeFeedSource(table: "scope", kind: "scope", key: ["id"]),
    ]

    /// SQLite's triggers for the feed: entries go in with tx_key NULL, and
    /// the write's end (`recordRevision`) files them under its revision.
    static var sqliteChangeFeedTriggers: String {
        changeFeedSources.map { source in
            let entry = "INSERT INTO change_entry (kind, entity_id)"
            return """
                CREATE TRIGGER \(source.name)_feed_insert AFTER INSERT ON \(source.table)
                  BEGIN \(entry) VALUES ('\(source.kind)', \(source.id("NEW"))); END;
                CREATE TRIGGER \(source.name)_feed_update AFTER UPDATE ON \(source.table)
                  BEGIN
                    \(entry) SELECT '\(source.kind)', \(source.id("OLD")) WHERE (\(source.id("OLD"))) IS NOT (\(source.id("NEW")));
                    \(entry) VALUES ('\(source.kind)', \(source.id("NEW")));
                  END;
                CREATE TRIGGER \(source.name)_feed_delete AFTER DELETE ON \(source.table)
                  BEGIN \(entry) VALUES ('\(source.kind)', \(source.id("OLD"))); END;
                """
        }.joined(separator: "\n")
    }
}
