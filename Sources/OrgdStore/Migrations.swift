import Foundation
import GRDB

/// The schema's history. Each migration runs once, in order, at start-up;
/// a shipped migration is never edited, only followed by a new one.
enum Migrations {
    /// Migrates the file behind `pool` — unless it holds migrations this
    /// orgd does not know: a newer orgd wrote it, and this one could
    /// misread or damage what it added. Then nothing is written and the
    /// error names them. (GRDB itself would skip the unknown ones and open
    /// the file.)
    static func migrate(_ pool: DatabasePool) throws {
        let migrator = self.migrator
        let known = migrator.migrations
        let unknown = try pool.read { db in try migrator.appliedIdentifiers(db) }.subtracting(known)
        if !unknown.isEmpty {
            let listed = unknown.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
            throw StoreOpenError(description:
                "the database \(pool.path) has migrations newer than this orgd knows: \(listed) "
                + "(it knows up to \"\(known.last ?? "")\"): run a newer orgd")
        }
        try migrator.migrate(pool)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: organisations, principals, tokens, idempotency") { db in
            try db.execute(sql: v1)
        }
        migrator.registerMigration("v2: patients, staff and patient memberships") { db in
            try db.execute(sql: v2)
        }
        migrator.registerMigration("v3: scopes, consent requests, consents, history") { db in
            try db.execute(sql: v3)
        }
        migrator.registerMigration("v4: invitations, invitation tokens, mail outbox") { db in
            try db.execute(sql: v4)
        }
        migrator.registerMigration("v5: audit log") { db in
            try db.execute(sql: v5)
        }
        migrator.registerMigration("v6: the mailer permission on service accounts") { db in
            try db.execute(sql: v6)
        }
        migrator.registerMigration("v7: e-mail addresses stored NFC, keyed by NFC and full Unicode lowercasing") { db in
            try v7(db)
        }
        migrator.registerMigration("v8: the data sources of consent requests") { db in
            try db.execute(sql: v8)
        }
        migrator.registerMigration("v9: consent history says when leaving ended an answer or withdrew an ask") { db in
            try db.execute(sql: v9)
        }
        migrator.registerMigration("v10: outbox retries with backoff, invitations whose delivery failed") { db in
            try db.execute(sql: v10)
        }
        migrator.registerMigration("v11: the change feed") { db in
            try db.execute(sql: v11 + sqliteChangeFeedTriggers)
        }
        migrator.registerMigration("v12: secrets kept in the database (the page-token key)") { db in
            try db.execute(sql: v12)
        }
        migrator.registerMigration("v13: an organisation's staff and patients by (organisation, seq)") { db in
            try db.execute(sql: v13)
        }
        return migrator
    }

    // Constraints live here, not only in Swift: SQLite refuses what the
    // services would refuse, whoever writes. Times are microseconds since the
    // Unix epoch; public ids are UUID strings; `seq` gives a stable order for
    // paging that concurrent inserts never disturb.
    private static let v1 = """
        CREATE TABLE organization (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200 AND name = trim(name)),
          type TEXT NOT NULL CHECK (type IN ('hospital_team', 'gp_practice', 'private_clinic', 'department', 'teaching_establishment')),
          identifier_system TEXT CHECK (length(identifier_system) BETWEEN 1 AND 200),
          identifier_value TEXT CHECK (length(identifier_value) BETWEEN 1 AND 200),
          active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
          CHECK ((identifier_system IS NULL) = (identifier_value IS NULL))
        ) STRICT;
        CREATE UNIQUE INDEX organization_identifier ON organization(identifier_system, identifier_value)
          WHERE identifier_system IS NOT NULL;
        CREATE INDEX organization_type ON organization(type, seq);

        CREATE TABLE user (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
          email_normalized TEXT NOT NULL UNIQUE CHECK (email_normalized = lower(email_normalized)),
          title TEXT NOT NULL DEFAULT '' CHECK (length(title) <= 50),
          given_name TEXT NOT NULL CHECK (length(given_name) BETWEEN 1 AND 200),
          family_name TEXT NOT NULL CHECK (length(family_name) BETWEEN 1 AND 200),
          system_role TEXT NOT NULL CHECK (system_role IN ('none', 'admin', 'superadmin')),
          status TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1)
        ) STRICT;

        CREATE TABLE service_account (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200 AND name = trim(name)),
          system_role TEXT NOT NULL CHECK (system_role IN ('none', 'admin', 'superadmin')),
          may_act_as INTEGER NOT NULL CHECK (may_act_as IN (0, 1)),
          create_time INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE api_token (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          prefix TEXT NOT NULL,
          secret_hash BLOB NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
          user_id TEXT REFERENCES user(id),
          service_account_id TEXT REFERENCES service_account(id),
          description TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
          create_time INTEGER NOT NULL,
          expire_time INTEGER,
          revoke_time INTEGER,
          CHECK ((user_id IS NULL) <> (service_account_id IS NULL))
        ) STRICT;

        CREATE TABLE idempotency_key (
          principal TEXT NOT NULL,
          method TEXT NOT NULL,
          key TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
          request_digest BLOB NOT NULL,
          response BLOB NOT NULL,
          create_time INTEGER NOT NULL,
          PRIMARY KEY (principal, method, key)
        ) STRICT, WITHOUT ROWID;
        """

    // Staff and patients live in separate tables (seed 001's GDPR segregation):
    // no query that lists one reads the other. Roles are two flags so that the
    // access check can find agents with an index. At most one primary
    // membership per user and per patient is the schema's rule, not the code's.
    private static let v2 = """
        CREATE TABLE patient (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          title TEXT NOT NULL DEFAULT '' CHECK (length(title) <= 50),
          given_name TEXT NOT NULL CHECK (length(given_name) BETWEEN 1 AND 200),
          family_name TEXT NOT NULL CHECK (length(family_name) BETWEEN 1 AND 200),
          user_id TEXT UNIQUE REFERENCES user(id),
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1)
        ) STRICT;
        CREATE INDEX patient_family_name ON patient(family_name COLLATE NOCASE, seq);

        CREATE TABLE organization_staff_member (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          organization_id TEXT NOT NULL REFERENCES organization(id),
          user_id TEXT NOT NULL REFERENCES user(id),
          is_membership_manager INTEGER NOT NULL CHECK (is_membership_manager IN (0, 1)),
          is_agent INTEGER NOT NULL CHECK (is_agent IN (0, 1)),
          is_primary INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          UNIQUE (organization_id, user_id),
          CHECK (is_membership_manager = 1 OR is_agent = 1)
        ) STRICT;
        CREATE UNIQUE INDEX staff_one_primary_per_user ON organization_staff_member(user_id) WHERE is_primary = 1;
        CREATE INDEX staff_by_user ON organization_staff_member(user_id, organization_id);

        CREATE TABLE organization_patient_member (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          organization_id TEXT NOT NULL REFERENCES organization(id),
          patient_id TEXT NOT NULL REFERENCES patient(id),
          is_primary INTEGER NOT NULL DEFAULT 0 CHECK (is_primary IN (0, 1)),
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          UNIQUE (organization_id, patient_id)
        ) STRICT;
        CREATE UNIQUE INDEX patient_one_primary_per_patient ON organization_patient_member(patient_id) WHERE is_primary = 1;
        CREATE INDEX patient_member_by_patient ON organization_patient_member(patient_id, organization_id);
        """

    // Consents. A patient is asked for a request (consent_ask); each scope is
    // pending until a row in `consent` answers it. The primary key of
    // `consent` leads with (patient, scope), so the access check is a handful
    // of B-tree lookups; `consent_by_request` serves the reverse question.
    // History is append-only: triggers refuse every UPDATE and DELETE.
    private static let v3 = """
        CREATE TABLE scope (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          coding_system TEXT NOT NULL CHECK (length(coding_system) BETWEEN 1 AND 500),
          coding_code TEXT NOT NULL CHECK (length(coding_code) BETWEEN 1 AND 200),
          text TEXT NOT NULL CHECK (length(text) <= 500),
          UNIQUE (coding_system, coding_code)
        ) STRICT;

        CREATE TABLE consent_request (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          organization_id TEXT NOT NULL REFERENCES organization(id),
          kind TEXT NOT NULL CHECK (kind IN ('study', 'agency')),
          name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200 AND name = trim(name)),
          start_time INTEGER,
          end_time INTEGER,
          create_time INTEGER NOT NULL,
          update_time INTEGER NOT NULL,
          version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
          CHECK (start_time IS NULL OR end_time IS NULL OR start_time < end_time)
        ) STRICT;
        CREATE INDEX consent_request_by_organization ON consent_request(organization_id, seq);

        CREATE TABLE consent_request_scope (
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          scope_id TEXT NOT NULL REFERENCES scope(id),
          position INTEGER NOT NULL,
          PRIMARY KEY (consent_request_id, scope_id)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE consent_ask (
          patient_id TEXT NOT NULL REFERENCES patient(id),
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          ask_time INTEGER NOT NULL,
          PRIMARY KEY (patient_id, consent_request_id)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE consent (
          patient_id TEXT NOT NULL,
          scope_id TEXT NOT NULL REFERENCES scope(id),
          consent_request_id TEXT NOT NULL,
          consented INTEGER NOT NULL CHECK (consented IN (0, 1)),
          answer_time INTEGER NOT NULL,
          PRIMARY KEY (patient_id, scope_id, consent_request_id),
          FOREIGN KEY (patient_id, consent_request_id) REFERENCES consent_ask(patient_id, consent_request_id),
          FOREIGN KEY (consent_request_id, scope_id) REFERENCES consent_request_scope(consent_request_id, scope_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX consent_by_request ON consent(consent_request_id, scope_id, consented, patient_id);

        CREATE TABLE consent_history (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          patient_id TEXT NOT NULL REFERENCES patient(id),
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          scope_id TEXT REFERENCES scope(id),
          action TEXT NOT NULL CHECK (action IN ('asked', 'answered', 'updated', 'revoked')),
          before INTEGER CHECK (before IN (0, 1)),
          after INTEGER CHECK (after IN (0, 1)),
          actor TEXT NOT NULL,
          acting_for TEXT NOT NULL DEFAULT '',
          time INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX consent_history_by_patient ON consent_history(patient_id, seq);
        CREATE TRIGGER consent_history_no_update BEFORE UPDATE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        CREATE TRIGGER consent_history_no_delete BEFORE DELETE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        """

    // Invitations. "Expired" is not stored: a pending invitation whose
    // expire_time has passed reads as expired, with no job having to run.
    // Every token ever issued keeps a row (its hash only), so a link that was
    // replaced, used or withdrawn fails saying which. The outbox holds the
    // plain token only until the mail is delivered, failed or superseded.
    private static let v4 = """
        CREATE TABLE invitation (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          organization_id TEXT NOT NULL REFERENCES organization(id),
          invitee_user_id TEXT NOT NULL REFERENCES user(id),
          email TEXT NOT NULL,
          title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 50),
          given_name TEXT NOT NULL CHECK (length(given_name) BETWEEN 1 AND 200),
          family_name TEXT NOT NULL CHECK (length(family_name) BETWEEN 1 AND 200),
          role TEXT NOT NULL CHECK (role IN ('agent', 'membership_manager')),
          status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'withdrawn')),
          invited_by TEXT NOT NULL,
          create_time INTEGER NOT NULL,
          last_sent_time INTEGER NOT NULL,
          expire_time INTEGER NOT NULL,
          send_count INTEGER NOT NULL CHECK (send_count >= 0),
          respond_time INTEGER
        ) STRICT;
        CREATE UNIQUE INDEX invitation_one_pending ON invitation(organization_id, invitee_user_id) WHERE status = 'pending';
        CREATE INDEX invitation_by_organization ON invitation(organization_id, seq);

        CREATE TABLE invitation_token (
          token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
          invitation_id TEXT NOT NULL REFERENCES invitation(id),
          expire_time INTEGER NOT NULL,
          state TEXT NOT NULL CHECK (state IN ('live', 'superseded', 'used')),
          create_time INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX invitation_token_by_invitation ON invitation_token(invitation_id, state);

        CREATE TABLE invitation_send (
          invitation_id TEXT NOT NULL REFERENCES invitation(id),
          send_time INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX invitation_send_by_invitation ON invitation_send(invitation_id, send_time);

        CREATE TABLE outbox (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          recipient TEXT NOT NULL,
          template TEXT NOT NULL,
          organization_id TEXT NOT NULL REFERENCES organization(id),
          invitation_id TEXT NOT NULL REFERENCES invitation(id),
          token TEXT,
          status TEXT NOT NULL CHECK (status IN ('queued', 'delivered', 'failed', 'cancelled')),
          attempts INTEGER NOT NULL DEFAULT 0,
          lease_owner TEXT,
          lease_expire_time INTEGER,
          create_time INTEGER NOT NULL,
          finish_time INTEGER,
          error TEXT,
          CHECK ((status = 'queued') = (token IS NOT NULL))
        ) STRICT;
        CREATE INDEX outbox_queue ON outbox(status, seq) WHERE status = 'queued';
        """

    // The audit log of administrative changes: append-only, like consent history.
    private static let v5 = """
        CREATE TABLE audit_log (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          time INTEGER NOT NULL,
          actor TEXT NOT NULL,
          acting_for TEXT NOT NULL DEFAULT '',
          method TEXT NOT NULL,
          request_json TEXT NOT NULL
        ) STRICT;
        CREATE INDEX audit_log_by_method ON audit_log(method, seq);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
          BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """

    /// Claiming and acknowledging the invitation outbox is its own permission
    /// (claimed messages carry live invitation tokens): existing accounts do
    /// not hold it.
    private static let v6 = """
        ALTER TABLE service_account ADD COLUMN mailer INTEGER NOT NULL DEFAULT 0 CHECK (mailer IN (0, 1));
        """

    /// Consent history gains "ended" (an answer ended because the patient
    /// left the organisation) and "withdrawn" (a scope still pending in an
    /// ask of that organisation). SQLite cannot alter a CHECK, so the table is
    /// rebuilt: every row is copied with its seq, id and time, the index and
    /// both append-only triggers are made again (DROP TABLE fires no trigger;
    /// nothing references the table), and the AUTOINCREMENT counter carries on.
    private static let v9 = """
        CREATE TABLE consent_history_v9 (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          patient_id TEXT NOT NULL REFERENCES patient(id),
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          scope_id TEXT REFERENCES scope(id),
          action TEXT NOT NULL CHECK (action IN ('asked', 'answered', 'updated', 'revoked', 'ended', 'withdrawn')),
          before INTEGER CHECK (before IN (0, 1)),
          after INTEGER CHECK (after IN (0, 1)),
          actor TEXT NOT NULL,
          acting_for TEXT NOT NULL DEFAULT '',
          time INTEGER NOT NULL
        ) STRICT;
        INSERT INTO consent_history_v9 (seq, id, patient_id, consent_request_id, scope_id, action, before, after, actor, acting_for, time)
          SELECT seq, id, patient_id, consent_request_id, scope_id, action, before, after, actor, acting_for, time
          FROM consent_history ORDER BY seq;
        DROP TABLE consent_history;
        ALTER TABLE consent_history_v9 RENAME TO consent_history;
        CREATE INDEX consent_history_by_patient ON consent_history(patient_id, seq);
        CREATE TRIGGER consent_history_no_update BEFORE UPDATE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        CREATE TRIGGER consent_history_no_delete BEFORE DELETE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        """

    /// A failed delivery returns the message to the queue, claimable again
    /// from `next_attempt_time`; at the most attempts it is failed and its
    /// invitation marked. "Delivery failed" is a mark on a pending invitation,
    /// not a status of its own: such an invitation still works like a pending
    /// one (one per person and organisation, answerable, expiring), and a
    /// re-send clears the mark.
    private static let v10 = """
        ALTER TABLE outbox ADD COLUMN next_attempt_time INTEGER;
        ALTER TABLE invitation ADD COLUMN delivery_failed_time INTEGER;
        ALTER TABLE invitation ADD COLUMN last_delivery_error TEXT CHECK (length(last_delivery_error) <= 1000);
        """

    /// The apps and devices a consent request collects from (seed 002's
    /// dataSources): names unique per request case-insensitively, in the
    /// order added. They describe collection only; no consent refers to them.
    private static let v8 = """
        CREATE TABLE consent_request_data_source (
          id TEXT PRIMARY KEY CHECK (length(id) = 36),
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          name TEXT NOT NULL CHECK (length(name) >= 1),
          name_normalized TEXT NOT NULL,
          type INTEGER NOT NULL CHECK (type IN (1, 2)),
          position INTEGER NOT NULL,
          UNIQUE (consent_request_id, name_normalized)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX consent_request_data_source_by_request ON consent_request_data_source(consent_request_id, position);
        """

    /// E-mail identity (issue 13 item 6): each address is stored NFC and its
    /// key (`email_normalized`) becomes `EmailKey.of` it — NFC and full
    /// Unicode lowercasing, where v1 lowercased only. Computed here in Swift,
    /// as SQLite has no NFC. Two users whose addresses now share a key (a
    /// composed and a decomposed "josé", "É" and "é") cannot both stay: the
    /// migration fails, naming them, and nothing changes — an operator
    /// decides which account stays, and orgd does not merge accounts.
    static func v7(_ db: Database) throws {
        let rows = try Row.fetchAll(db, sql: "SELECT id, email FROM user ORDER BY seq")
        var holders: [String: [(id: String, email: String)]] = [:]
        for row in rows {
            let email: String = row["email"]
            holders[EmailKey.of(email), default: []].append((row["id"], email))
        }
        let clashes = holders.filter { $0.value.count > 1 }.sorted { $0.key < $1.key }
        if !clashes.isEmpty {
            let listed = clashes.map { _, users in
                users.map { "user \($0.id) <\(escaped($0.email))>" }
                    .joined(separator: " and ")
            }.joined(separator: "; ")
            throw StoreOpenError(description:
                "migration v7 (e-mail addresses compared by NFC and full Unicode lowercasing) found addresses that are now the same: \(listed). "
                + "Change or remove all but one of each (with the orgd that made this database, or sqlite3), then start this one again")
        }
        // Through a key no address can have first, so no row meets another's
        // old key on the way.
        try db.execute(sql: "UPDATE user SET email_normalized = '#' || id")
        for row in rows {
            let id: String = row["id"]
            let email: String = row["email"]
            try db.execute(
                sql: "UPDATE user SET email = ?, email_normalized = ? WHERE id = ?",
                arguments: [email.precomposedStringWithCanonicalMapping, EmailKey.of(email), id])
        }
        let invitations = try Row.fetchAll(db, sql: "SELECT id, email FROM invitation")
        for row in invitations {
            let email: String = row["email"]
            let composed = email.precomposedStringWithCanonicalMapping
            if Array(composed.utf8) != Array(email.utf8) { // String == is canonical equivalence
                try db.execute(sql: "UPDATE invitation SET email = ? WHERE id = ?", arguments: [composed, row["id"] as String])
            }
        }
    }

    /// Non-ASCII shown as \u{…}, so a composed and a decomposed address read differently.
    private static func escaped(_ address: String) -> String {
        address.unicodeScalars.map { $0.isASCII ? String($0) : "\\u{\(String($0.value, radix: 16, uppercase: true))}" }.joined()
    }

    /// The change feed (StoreTransaction+Changes.swift): each write that
    /// changed anything gets a revision; triggers on the tables the feed
    /// follows (`changeFeedSources`) file the entities it changed with
    /// tx_key NULL, and the write's end sets tx_key to the revision.
    private static let v11 = """
        CREATE TABLE change_revision (
          revision INTEGER PRIMARY KEY,
          tx_key INTEGER NOT NULL UNIQUE,
          commit_time INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE change_entry (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          tx_key INTEGER,
          kind TEXT NOT NULL,
          entity_id TEXT NOT NULL
        ) STRICT;
        CREATE INDEX change_entry_pending ON change_entry(seq) WHERE tx_key IS NULL;
        CREATE INDEX change_entry_by_tx ON change_entry(tx_key, seq);
        """

    // The page-token key lives in the database so that every daemon over
    // it takes the tokens another issued (Store.pageTokenKey makes it once).
    static let v12 = """
        CREATE TABLE orgd_secret (
          name TEXT PRIMARY KEY,
          value BLOB NOT NULL CHECK (length(value) >= 32)
        ) STRICT;
        """

    // A page of an organisation's staff or patients (GetOrganization, the
    // membership lists) is `organization_id = ? AND seq > ? ORDER BY seq
    // LIMIT n`. With only the (organization_id, member) unique index, SQLite
    // joined and sorted every member of the organisation to return the
    // first n: a page of one cost as much as a page of all. By (organisation,
    // seq) the search walks the page alone, in order, and stops.
    static let v13 = """
        CREATE INDEX staff_by_organization ON organization_staff_member(organization_id, seq);
        CREATE INDEX patient_member_by_organization ON organization_patient_member(organization_id, seq);
        """
}
