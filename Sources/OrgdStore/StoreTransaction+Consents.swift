import Foundation
import OrgdCore

/// One request as a patient sees it: its answers by scope id (absent = pending).
public struct PatientStudy: Sendable {
    public var request: ConsentRequestRecord
    public var organization: OrganizationRecord
    public var answers: [String: Bool]
}

/// The answers a patient gives to one request, with the request fields they
/// came from (for errors that name the field).
public struct ConsentAnswerInput: Sendable {
    public struct ScopeAnswer: Sendable {
        public var codingSystem: String
        public var codingCode: String
        public var consented: Bool?
        public var field: String
        public init(codingSystem: String, codingCode: String, consented: Bool?, field: String) {
            self.codingSystem = codingSystem
            self.codingCode = codingCode
            self.consented = consented
            self.field = field
        }
    }
    public var requestID: String
    public var field: String
    public var scopes: [ScopeAnswer]
    public init(requestID: String, field: String, scopes: [ScopeAnswer]) {
        self.requestID = requestID
        self.field = field
        self.scopes = scopes
    }
}

/// How answers change consents (seed 002's POST, PATCH and DELETE).
public enum ConsentChange: Sendable {
    /// Answer pending scopes.
    case answer
    /// Change existing answers.
    case update
    /// Delete existing answers: the scopes are pending again.
    case revoke
}

/// Who made a change, for the history.
public struct Actor: Sendable {
    public var principal: String
    public var actingFor: String
    public init(principal: String, actingFor: String) {
        self.principal = principal
        self.actingFor = actingFor
    }
}

/// The answer to "may this agent read this patient's data of this kind?".
public struct AccessDecision: Sendable, Equatable {
    public enum Reason: Sendable {
        case allowed, unknownAgent, unknownPatient, unknownScope, notAnAgent, noConsent, agentDisabled
    }
    public var reason: Reason
    public var organizationID: String?
    public var consentRequestID: String?
    public var message: String
    public var allowed: Bool { reason == .allowed }

    public init(reason: Reason, organizationID: String? = nil, consentRequestID: String? = nil, message: String) {
        self.reason = reason
        self.organizationID = organizationID
        self.consentRequestID = consentRequestID
        self.message = message
    }
}

extension StoreTransaction {
    // MARK: Scopes

    public func createScope(codingSystem: String, codingCode: String, text: String) throws -> ScopeRecord {
        if let existing = try scope(codingSystem: codingSystem, codingCode: codingCode) {
            throw RPCError(.alreadyExists, "scope \(codingSystem)|\(codingCode) already exists as \(existing.id)")
        }
        let id = UUID().uuidString.lowercased()
        try execute("INSERT INTO scope (id, coding_system, coding_code, text) VALUES (?, ?, ?, ?)", [id, codingSystem, codingCode, text])
        return ScopeRecord(id: id, codingSystem: codingSystem, codingCode: codingCode, text: text)
    }

    public func scope(id: String) throws -> ScopeRecord? {
        try fetchOne("SELECT * FROM scope WHERE id = ?", [id]).map(Self.scope)
    }

    public func scope(codingSystem: String, codingCode: String) throws -> ScopeRecord? {
        try fetchOne("SELECT * FROM scope WHERE coding_system = ? AND coding_code = ?", [codingSystem, codingCode]).map(Self.scope)
    }

    public func listScopes(after: Int64?, limit: Int) throws -> Page<ScopeRecord> {
        Self.page(try fetchAll("SELECT * FROM scope WHERE seq > ? ORDER BY seq LIMIT ?", [after ?? 0, limit + 1]), limit: limit, Self.scope)
    }

    // MARK: Consent requests

    public func createConsentRequest(
        organizationID: String, kind: ConsentRequestKind, name: String, scopeIDs: [String], startTime: Date?, endTime: Date?
    ) throws -> ConsentRequestRecord {
        let organization = try RPCError.referenced(from: "organization_id") { try self.organization(id: organizationID) }
        guard organization.active else {
            throw RPCError(.failedPrecondition, "organization \(organizationID) is deactivated and makes no new consent requests")
        }
        let id = UUID().uuidString.lowercased()
        try execute(
            """
            INSERT INTO consent_request (id, organization_id, kind, name, start_time, end_time, create_time, update_time, version)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)
            """,
            [id, organizationID, kind.rawValue, name, startTime?.storedMicros, endTime?.storedMicros, now.storedMicros, now.storedMicros]
        )
        try addScopes(scopeIDs, to: id, after: 0)
        return try consentRequest(id: id)
    }

    public func consentRequest(id: String) throws -> ConsentRequestRecord {
        guard let row = try fetchOne("SELECT * FROM consent_request WHERE id = ?", [id]) else {
            throw RPCError.notFound("consent request", id: id)
        }
        let scopes = try fetchAll(
            """
            SELECT s.* FROM consent_request_scope rs JOIN scope s ON s.id = rs.scope_id
            WHERE rs.consent_request_id = ? ORDER BY rs.position
            """,
            [id]
        ).map(Self.scope)
        return Self.consentRequest(row, scopes: scopes)
    }

    /// Renames, re-dates or adds scopes; a scope is never taken away, so
    /// answers already given keep their meaning. An added scope is pending
    /// for every patient already asked (an ask is per request), so each of
    /// them gets an "asked" entry for it, from `actor`; none when the
    /// request has ended (nothing of it can be answered).
    ///
    /// The period is part of what a patient agreed to: once a request has
    /// ended its period never changes again, and a running request's period
    /// may be narrowed (or ended) but not widened once a patient has consented
    /// under it — that would grant access for time nobody agreed to.
    public func updateConsentRequest(
        id: String, expectedVersion: Int64, name: String?, addScopeIDs: [String], startTime: Date??, endTime: Date??, actor: Actor
    ) throws -> ConsentRequestRecord {
        var request = try consentRequest(id: id)
        try checkVersion(request.version, expected: expectedVersion, what: "consent request \(id)")
        let old = (start: request.startTime, end: request.endTime)
        if let name { request.name = name }
        if let startTime { request.startTime = startTime }
        if let endTime { request.endTime = endTime }
        if let start = request.startTime, let end = request.endTime, start >= end {
            throw RPCError.invalidArgument(field: "end_time", "must be after start_time")
        }
        if old.start != request.startTime || old.end != request.endTime {
            try checkPeriodChange(id, old: old, new: (request.startTime, request.endTime))
        }
        try execute(
            "UPDATE consent_request SET name = ?, start_time = ?, end_time = ?, update_time = ?, version = version + 1 WHERE id = ?",
            [request.name, request.startTime?.storedMicros, request.endTime?.storedMicros, now.storedMicros, id]
        )
        let known = Set(request.scopes.map(\.id))
        var added: [String] = []
        for scopeID in addScopeIDs where !known.contains(scopeID) && !added.contains(scopeID) { added.append(scopeID) }
        try addScopes(added, to: id, after: request.scopes.count)
        if !added.isEmpty && request.endTime.map({ $0 > now }) ?? true {
            try recordAsked(added, requestID: id, actor: actor)
        }
        return try consentRequest(id: id)
    }

    /// "asked" entries for scopes added to a request, one per scope for every patient asked it.
    private func recordAsked(_ scopeIDs: [String], requestID: String, actor: Actor) throws {
        let patientIDs = try fetchAll("SELECT patient_id FROM consent_ask WHERE consent_request_id = ? ORDER BY ask_time, patient_id", [requestID])
            .map { $0["patient_id"] as String }
        for patientID in patientIDs {
            for scopeID in scopeIDs {
                try recordHistory(patientID: patientID, requestID: requestID, scopeID: scopeID, action: .asked, before: nil, after: nil, actor: actor)
            }
        }
    }

    private func checkPeriodChange(_ id: String, old: (start: Date?, end: Date?), new: (start: Date?, end: Date?)) throws {
        let field = old.end != new.end ? (new.end == nil ? "remove_end_time" : "end_time") : "start_time"
        if let end = old.end, end <= now {
            throw RPCError(
                .failedPrecondition, "consent request \(id) has ended; its period cannot change: create a new one",
                fieldViolations: [.init(field: field, description: "the request has ended")]
            )
        }
        // Ending it now (or earlier) only takes access away.
        if let end = new.end, end <= now { return }
        let startsEarlier = old.start.map { start in new.start.map { $0 < start } ?? true } ?? false
        let endsLater = old.end.map { end in new.end.map { $0 > end } ?? true } ?? false
        guard startsEarlier || endsLater else { return }
        let consented = try fetchOne("SELECT 1 FROM consent WHERE consent_request_id = ? AND consented = 1 LIMIT 1", [id]) != nil
        if consented {
            throw RPCError(
                .failedPrecondition,
                "consent request \(id): patients consented for its current period; a longer period needs their answer again: create a new request",
                fieldViolations: [.init(field: startsEarlier && !endsLater ? "start_time" : field, description: "would widen a period patients consented to")]
            )
        }
    }

    public func listConsentRequests(organizationID: String, after: Int64?, limit: Int) throws -> Page<ConsentRequestRecord> {
        _ = try organization(id: organizationID)
        let rows = try fetchAll(
            "SELECT seq, id FROM consent_request WHERE organization_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            [organizationID, after ?? 0, limit + 1]
        )
        let page = Self.page(rows, limit: limit) { $0["id"] as String }
        return Page(items: try page.items.map { try consentRequest(id: $0) }, nextAfter: page.nextAfter)
    }

    /// The organisation a consent request belongs to (for access rules).
    public func organizationID(ofConsentRequest id: String) throws -> String? {
        try fetchValue(String.self, "SELECT organization_id FROM consent_request WHERE id = ?", [id])
    }

    private func addScopes(_ scopeIDs: [String], to requestID: String, after position: Int) throws {
        for (offset, scopeID) in scopeIDs.enumerated() {
            try execute(
                "INSERT INTO consent_request_scope (consent_request_id, scope_id, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [requestID, scopeID, position + offset]
            )
        }
    }

    /// Makes the request pending for each patient (who must be a patient
    /// member of the request's organisation; an unknown id gets the same
    /// answer as another organisation's patient). Returns how many were newly asked.
    public func askPatients(requestID: String, patientIDs: [String], actor: Actor) throws -> Int {
        let request = try RPCError.referenced(from: "consent_request_id") { try consentRequest(id: requestID) }
        if let end = request.endTime, end <= now {
            throw RPCError(.failedPrecondition, "consent request \(requestID) has ended")
        }
        var asked = 0
        for (index, patientID) in patientIDs.enumerated() {
            // One question and one answer for "no such patient" and "another
            // organisation's patient", so a manager cannot learn which ids exist.
            guard try fetchOne(
                "SELECT 1 FROM organization_patient_member WHERE organization_id = ? AND patient_id = ?", [request.organizationID, patientID]
            ) != nil else {
                let field = "patient_ids[\(index)]", why = "no such patient among the patients of organization \(request.organizationID)"
                throw RPCError(.notFound, "\(field): \(why)", fieldViolations: [.init(field: field, description: why)])
            }
            try execute(
                "INSERT INTO consent_ask (patient_id, consent_request_id, ask_time) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [patientID, requestID, now.storedMicros]
            )
            if changes > 0 {
                asked += 1
                // One entry per scope asked, so the patient's history says what they were asked.
                for scope in request.scopes {
                    try recordHistory(patientID: patientID, requestID: requestID, scopeID: scope.id, action: .asked, before: nil, after: nil, actor: actor)
                }
            }
        }
        return asked
    }

    // MARK: The patient's view and answers

    /// Every request the patient was asked, with their answers.
    public func patientStudies(patientID: String) throws -> [PatientStudy] {
        let requestIDs = try fetchAll(
            "SELECT a.consent_request_id AS id FROM consent_ask a JOIN consent_request r ON r.id = a.consent_request_id WHERE a.patient_id = ? ORDER BY r.seq",
            [patientID]
        ).map { $0["id"] as String }
        return try requestIDs.map { requestID in
            let request = try consentRequest(id: requestID)
            var answers: [String: Bool] = [:]
            for row in try fetchAll("SELECT scope_id, consented FROM consent WHERE patient_id = ? AND consent_request_id = ?", [patientID, requestID]) {
                answers[row["scope_id"]] = row["consented"]
            }
            return PatientStudy(request: request, organization: try organization(id: request.organizationID), answers: answers)
        }
    }

    /// Applies a patient's answers, all or nothing. Every reference is
    /// checked and a refusal names the request field it came from.
    public func changeConsents(patientID: String, _ inputs: [ConsentAnswerInput], change: ConsentChange, actor: Actor) throws {
        _ = try RPCError.referenced(from: "patient_id") { try patient(id: patientID) }
        for input in inputs {
            let request = try RPCError.referenced(from: "\(input.field).study_id") { try consentRequest(id: input.requestID) }
            guard try fetchOne("SELECT 1 FROM consent_ask WHERE patient_id = ? AND consent_request_id = ?", [patientID, request.id]) != nil else {
                throw RPCError.failedPrecondition(field: "\(input.field).study_id", "consent request \(request.id) was not asked of this patient")
            }
            if change != .revoke {
                if let end = request.endTime, end <= now {
                    throw RPCError(.failedPrecondition, "\(input.field).study_id: consent request \(request.id) has ended",
                                   fieldViolations: [.init(field: "\(input.field).study_id", description: "the request has ended")])
                }
                guard try organization(id: request.organizationID).active else {
                    throw RPCError(.failedPrecondition, "\(input.field).study_id: the organization of consent request \(request.id) is deactivated")
                }
            }
            for answer in input.scopes {
                guard let scope = request.scopes.first(where: { $0.codingSystem == answer.codingSystem && $0.codingCode == answer.codingCode }) else {
                    throw RPCError.notFound(
                        field: answer.field, "scope", id: "\(answer.codingSystem)|\(answer.codingCode) among those consent request \(request.id) asks for")
                }
                let current = try fetchValue(Bool.self, "SELECT consented FROM consent WHERE patient_id = ? AND scope_id = ? AND consent_request_id = ?", [patientID, scope.id, request.id]
                )
                switch change {
                case .answer, .update:
                    guard let consented = answer.consented else {
                        throw RPCError.invalidArgument(field: "\(answer.field).consented", "required: true or false")
                    }
                    if change == .answer, current != nil {
                        throw RPCError(.failedPrecondition, "\(answer.field): already answered; update the answer instead",
                                       fieldViolations: [.init(field: answer.field, description: "already answered")])
                    }
                    if change == .update, current == nil {
                        throw RPCError(.failedPrecondition, "\(answer.field): not answered yet; answer it first",
                                       fieldViolations: [.init(field: answer.field, description: "not answered yet")])
                    }
                    try execute(
                        """
                        INSERT INTO consent (patient_id, scope_id, consent_request_id, consented, answer_time) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (patient_id, scope_id, consent_request_id) DO UPDATE SET consented = excluded.consented, answer_time = excluded.answer_time
                        """,
                        [patientID, scope.id, request.id, consented, now.storedMicros]
                    )
                    try recordHistory(patientID: patientID, requestID: request.id, scopeID: scope.id,
                                      action: change == .answer ? .answered : .updated, before: current, after: consented, actor: actor)
                case .revoke:
                    guard let current else {
                        throw RPCError(.failedPrecondition, "\(answer.field): there is no consent to revoke",
                                       fieldViolations: [.init(field: answer.field, description: "no consent to revoke")])
                    }
                    try execute("DELETE FROM consent WHERE patient_id = ? AND scope_id = ? AND consent_request_id = ?", [patientID, scope.id, request.id])
                    try recordHistory(patientID: patientID, requestID: request.id, scopeID: scope.id, action: .revoked, before: current, after: nil, actor: actor)
                }
            }
        }
    }

    func recordHistory(
        patientID: String, requestID: String, scopeID: String?, action: ConsentHistoryRecord.Action, before: Bool?, after: Bool?, actor: Actor
    ) throws {
        try execute(
            """
            INSERT INTO consent_history (id, patient_id, consent_request_id, scope_id, action, before, after, actor, acting_for, time)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [UUID().uuidString.lowercased(), patientID, requestID, scopeID, action.rawValue, before, after, actor.principal, actor.actingFor, now.storedMicros]
        )
    }

    public func listConsentHistory(patientID: String, after: Int64?, limit: Int) throws -> Page<ConsentHistoryRecord> {
        _ = try patient(id: patientID)
        let rows = try fetchAll(
            """
            SELECT h.*, s.id AS s_id, s.coding_system, s.coding_code, s.text FROM consent_history h LEFT JOIN scope s ON s.id = h.scope_id
            WHERE h.patient_id = ? AND h.seq > ? ORDER BY h.seq LIMIT ?
            """,
            [patientID, after ?? 0, limit + 1]
        )
        return Self.page(rows, limit: limit) { row in
            ConsentHistoryRecord(
                id: row["id"], patientID: row["patient_id"], consentRequestID: row["consent_request_id"],
                scope: (row["s_id"] as String?).map { ScopeRecord(id: $0, codingSystem: row["coding_system"], codingCode: row["coding_code"], text: row["text"]) },
                action: ConsentHistoryRecord.Action(rawValue: row["action"]) ?? .answered,
                before: row["before"], after: row["after"], actor: row["actor"], actingFor: row["acting_for"],
                time: Date(storedMicros: row["time"])
            )
        }
    }

    // MARK: The access check

    /// Allowed exactly when the agent holds the `agent` role in an active
    /// organisation with a live request that the patient consented to for
    /// this scope. Read straight from the tables: nothing is cached, so any
    /// change is seen by the very next check.
    /// When several requests allow, the answer names the one with the
    /// smallest id, on every backend and in the access index alike.
    public func checkAccess(agentID: String, patientID: String, scopeID: String) throws -> AccessDecision {
        let micros = now.storedMicros
        if let row = try fetchOne(
            """
            SELECT r.id, r.organization_id FROM consent c
            JOIN consent_request r ON r.id = c.consent_request_id
            JOIN organization_staff_member m ON m.organization_id = r.organization_id AND m.user_id = ? AND m.is_agent = 1
            JOIN organization o ON o.id = r.organization_id AND o.active = 1
            JOIN "user" u ON u.id = m.user_id AND u.status <> 'disabled'
            WHERE c.patient_id = ? AND c.scope_id = ? AND c.consented = 1
              AND (r.start_time IS NULL OR r.start_time <= ?) AND (r.end_time IS NULL OR r.end_time > ?)
            ORDER BY r.id LIMIT 1
            """,
            [agentID, patientID, scopeID, micros, micros]
        ) {
            let requestID: String = row["id"]
            let organizationID: String = row["organization_id"]
            return AccessDecision(
                reason: .allowed, organizationID: organizationID, consentRequestID: requestID,
                message: "allowed: agent of organization \(organizationID), consent to request \(requestID)"
            )
        }
        return try denial(agentID: agentID, patientID: patientID)
    }

    /// Why a check was denied; only runs on the denial path.
    private func denial(agentID: String, patientID: String) throws -> AccessDecision {
        guard let status = try fetchValue(String.self, "SELECT status FROM \"user\" WHERE id = ?", [agentID]) else {
            return AccessDecision(reason: .unknownAgent, message: "no user \(agentID)")
        }
        if status == UserStatus.disabled.rawValue {
            return AccessDecision(reason: .agentDisabled, message: "user \(agentID) is disabled")
        }
        guard try fetchOne("SELECT 1 FROM patient WHERE id = ?", [patientID]) != nil else {
            return AccessDecision(reason: .unknownPatient, message: "no patient \(patientID)")
        }
        let isAgent = try fetchOne(
            """
            SELECT 1 FROM organization_staff_member m JOIN organization o ON o.id = m.organization_id AND o.active = 1
            WHERE m.user_id = ? AND m.is_agent = 1 LIMIT 1
            """,
            [agentID]
        ) != nil
        if !isAgent {
            return AccessDecision(
                reason: .notAnAgent,
                message: "user \(agentID) holds the agent role in no active organization (a membership manager is not an agent)"
            )
        }
        return AccessDecision(
            reason: .noConsent,
            message: "no live consent from patient \(patientID) for this scope to a request of an active organization where user \(agentID) is an agent"
        )
    }

    /// The reverse question: patients whose data of this scope the agent may read, in creation order.
    public func listAccessiblePatients(agentID: String, scopeID: String, after: Int64?, limit: Int) throws -> Page<String> {
        let micros = now.storedMicros
        let rows = try fetchAll(
            """
            SELECT DISTINCT p.seq, p.id FROM organization_staff_member m
            JOIN "user" u ON u.id = m.user_id AND u.status <> 'disabled'
            JOIN organization o ON o.id = m.organization_id AND o.active = 1
            JOIN consent_request r ON r.organization_id = m.organization_id
              AND (r.start_time IS NULL OR r.start_time <= ?) AND (r.end_time IS NULL OR r.end_time > ?)
            JOIN consent c ON c.consent_request_id = r.id AND c.scope_id = ? AND c.consented = 1
            JOIN patient p ON p.id = c.patient_id
            WHERE m.user_id = ? AND m.is_agent = 1 AND p.seq > ?
            ORDER BY p.seq LIMIT ?
            """,
            [micros, micros, scopeID, agentID, after ?? 0, limit + 1]
        )
        return Self.page(rows, limit: limit) { $0["id"] as String }
    }

    static func scope(_ row: SQLRow) -> ScopeRecord {
        ScopeRecord(id: row["id"], codingSystem: row["coding_system"], codingCode: row["coding_code"], text: row["text"])
    }

    static func consentRequest(_ row: SQLRow, scopes: [ScopeRecord]) -> ConsentRequestRecord {
        let start: Int64? = row["start_time"]
        let end: Int64? = row["end_time"]
        return ConsentRequestRecord(
            id: row["id"], organizationID: row["organization_id"], kind: ConsentRequestKind(rawValue: row["kind"]) ?? .study,
            name: row["name"], scopes: scopes, startTime: start.map(Date.init(storedMicros:)), endTime: end.map(Date.init(storedMicros:)),
            createTime: Date(storedMicros: row["create_time"]), updateTime: Date(storedMicros: row["update_time"]), version: row["version"]
        )
    }
}
