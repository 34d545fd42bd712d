import Foundation

/// How the access index reads the store: all of it from one snapshot at
/// start, then, change by change, the entities the feed names, each as a
/// later snapshot shows it.
extension StoreTransaction {
    /// Rows read per statement while building, so memory stays bounded
    /// however large the tables.
    static let indexPageSize = 20_000

    /// Everything the index holds, from this transaction's snapshot.
    func accessIndexState() throws -> AccessIndexState {
        var state = AccessIndexState()
        state.revision = try latestRevision()
        try forEachPage("SELECT seq, id, status FROM \"user\"") { row in
            guard let id = EntityID(row["id"] as String) else { return }
            state.userDisabled[id] = (row["status"] as String) == UserStatus.disabled.rawValue
        }
        try forEachPage("SELECT seq, id FROM patient") { row in
            if let id = EntityID(row["id"] as String) { state.patients.insert(id) }
        }
        try forEachPage("SELECT seq, id, active FROM organization") { row in
            if let id = EntityID(row["id"] as String) { state.organizationActive[id] = row["active"] }
        }
        try forEachPage("SELECT seq, organization_id, user_id FROM organization_staff_member WHERE is_agent = 1") { row in
            guard let organization = EntityID(row["organization_id"] as String), let user = EntityID(row["user_id"] as String) else { return }
            state.agentOf[user, default: []].append(organization)
        }
        try forEachPage("SELECT seq, id, organization_id, start_time, end_time FROM consent_request") { row in
            guard let id = EntityID(row["id"] as String), let request = Self.indexRequest(row) else { return }
            state.requests[id] = request
        }
        try forEachPage("SELECT * FROM scope") { row in
            let record = Self.scope(row)
            if let id = EntityID(record.id) { state.apply(.scope(id, record)) }
        }
        try forEachPage("SELECT * FROM service_account") { row in
            let record = Self.serviceAccount(row)
            if let id = EntityID(record.id) { state.serviceAccounts[id] = record }
        }
        try forEachPage("SELECT seq, id, secret_hash, user_id, service_account_id, expire_time FROM api_token WHERE revoke_time IS NULL") { row in
            guard let id = EntityID(row["id"] as String), let (hash, token) = Self.indexToken(row) else { return }
            state.apply(.token(id, hash: hash, token, owner: nil))
        }
        for user in Set(state.tokens.values.compactMap(\.user)) {
            if let row = try fetchOne("SELECT \(Self.indexUserColumns) FROM \"user\" WHERE id = ?", [user.description]) {
                state.tokenUsers[user] = Self.user(row)
            }
        }
        // Consents have no seq: paged by their primary key.
        var after: (String, String, String)?
        while true {
            let rows = try fetchAll(
                """
                SELECT patient_id, scope_id, consent_request_id FROM consent
                WHERE consented = 1 AND (? = 0 OR (patient_id, scope_id, consent_request_id) > (?, ?, ?))
                ORDER BY patient_id, scope_id, consent_request_id LIMIT ?
                """,
                [after == nil ? 0 : 1, after?.0 ?? "", after?.1 ?? "", after?.2 ?? "", Self.indexPageSize])
            for row in rows {
                guard let patient = EntityID(row["patient_id"] as String), let scope = EntityID(row["scope_id"] as String),
                    let request = EntityID(row["consent_request_id"] as String)
                else { continue }
                // In key order, so each list is sorted as it grows.
                state.consents[AccessIndexState.ConsentKey(patient: patient, scope: scope), default: []].append(request)
                state.consentCount += 1
            }
            guard rows.count == Self.indexPageSize, let last = rows.last else { break }
            after = (last["patient_id"], last["scope_id"], last["consent_request_id"])
        }
        return state
    }

    /// The entities changed after `revision`, each re-read from this
    /// snapshot; and the revision the snapshot is at, with each revision's
    /// commit time (for the index's lag).
    func accessIndexUpdates(after revision: Int64) throws -> (updates: [AccessIndexState.Update], revision: Int64, commitTimes: [Date]) {
        let latest = max(revision, try latestRevision())
        // Only what was committed since: a range of the revisions' primary
        // key, then each one's entries by their index.
        let rows = try fetchAll(
            """
            SELECT r.revision, r.commit_time, e.kind, e.entity_id
            FROM change_revision r JOIN change_entry e ON e.tx_key = r.tx_key
            WHERE r.revision > ? AND r.revision <= ? ORDER BY r.revision, e.seq
            """,
            [revision, latest])
        var updates: [AccessIndexState.Update] = []
        var commitTimes: [Date] = []
        var seen = Set<String>()
        var last = revision
        for row in rows {
            let changed: Int64 = row["revision"]
            if changed != last {
                commitTimes.append(Date(storedMicros: row["commit_time"]))
                last = changed
            }
            let kind: String = row["kind"]
            let id: String = row["entity_id"]
            // An entity changed twice is read once: the snapshot has its last state.
            guard seen.insert("\(kind)|\(id)").inserted else { continue }
            if let update = try accessIndexUpdate(kind: kind, id: id) { updates.append(update) }
        }
        return (updates, latest, commitTimes)
    }

    /// One changed entity as this snapshot shows it; nil for kinds the index
    /// does not hold (asks, invitations, patient memberships).
    private func accessIndexUpdate(kind: String, id: String) throws -> AccessIndexState.Update? {
        switch kind {
        case "user":
            guard let key = EntityID(id) else { return nil }
            let row = try fetchOne("SELECT \(Self.indexUserColumns) FROM \"user\" WHERE id = ?", [id])
            let record = row.map(Self.user)
            return .user(key, disabled: record.map { $0.status == .disabled }, record: record)
        case "patient":
            guard let key = EntityID(id) else { return nil }
            return .patient(key, exists: try fetchOne("SELECT 1 FROM patient WHERE id = ?", [id]) != nil)
        case "organization":
            guard let key = EntityID(id) else { return nil }
            return .organization(key, active: try fetchValue(Bool.self, "SELECT active FROM organization WHERE id = ?", [id]))
        case "staff_member":
            let parts = id.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let organization = EntityID(String(parts[0])), let user = EntityID(String(parts[1])) else { return nil }
            let isAgent = try fetchValue(
                Bool.self, "SELECT is_agent FROM organization_staff_member WHERE organization_id = ? AND user_id = ?",
                [String(parts[0]), String(parts[1])])
            return .staffMember(organization: organization, user: user, isAgent: isAgent ?? false)
        case "consent_request":
            guard let key = EntityID(id) else { return nil }
            let row = try fetchOne("SELECT id, organization_id, start_time, end_time FROM consent_request WHERE id = ?", [id])
            return .request(key, row.flatMap(Self.indexRequest))
        case "consent":
            let parts = id.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3, let patient = EntityID(parts[0]), let request = EntityID(parts[1]), let scope = EntityID(parts[2]) else {
                return nil
            }
            let consented = try fetchValue(
                Bool.self, "SELECT consented FROM consent WHERE patient_id = ? AND consent_request_id = ? AND scope_id = ?", [parts[0], parts[1], parts[2]])
            return .consent(patient: patient, request: request, scope: scope, consented: consented ?? false)
        case "scope":
            guard let key = EntityID(id) else { return nil }
            return .scope(key, try scope(id: id))
        case "service_account":
            guard let key = EntityID(id) else { return nil }
            return .serviceAccount(key, try fetchOne("SELECT * FROM service_account WHERE id = ?", [id]).map(Self.serviceAccount))
        case "token":
            guard let key = EntityID(id) else { return nil }
            let row = try fetchOne(
                "SELECT id, secret_hash, user_id, service_account_id, expire_time FROM api_token WHERE id = ? AND revoke_time IS NULL", [id])
            guard let row, let (hash, token) = Self.indexToken(row) else { return .token(key, hash: nil, nil, owner: nil) }
            let owner = try token.user.flatMap { user in
                try fetchOne("SELECT \(Self.indexUserColumns) FROM \"user\" WHERE id = ?", [user.description]).map(Self.user)
            }
            return .token(key, hash: hash, token, owner: owner)
        default:
            return nil
        }
    }

    private static let indexUserColumns =
        "seq, id, email, title, given_name, family_name, system_role, status, create_time, update_time, version"

    private static func indexRequest(_ row: SQLRow) -> AccessIndexState.Request? {
        guard let organization = EntityID(row["organization_id"] as String) else { return nil }
        return AccessIndexState.Request(organization: organization, startMicros: row["start_time"], endMicros: row["end_time"])
    }

    private static func indexToken(_ row: SQLRow) -> (SecretHash, AccessIndexState.Token)? {
        guard let id = EntityID(row["id"] as String), let hash = SecretHash([UInt8](row["secret_hash"] as Data)) else { return nil }
        let user: String? = row["user_id"]
        let serviceAccount: String? = row["service_account_id"]
        return (hash, AccessIndexState.Token(id: id, user: user.flatMap(EntityID.init), serviceAccount: serviceAccount.flatMap(EntityID.init), expireMicros: row["expire_time"]))
    }

    /// Runs `select` (which must start with `seq`) page by page in `seq` order.
    private func forEachPage(_ select: String, _ body: (SQLRow) throws -> Void) throws {
        let ordered = select.contains(" WHERE ") ? "\(select) AND seq > ? ORDER BY seq LIMIT ?" : "\(select) WHERE seq > ? ORDER BY seq LIMIT ?"
        var after: Int64 = 0
        while true {
            let rows = try fetchAll(ordered, [after, Self.indexPageSize])
            for row in rows { try body(row) }
            guard rows.count == Self.indexPageSize, let last = rows.last else { return }
            after = last["seq"]
        }
    }
}
