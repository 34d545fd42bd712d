import Foundation
import OrgdCore

/// The fields a user update names; nil leaves a field as it is.
public struct UserChanges: Sendable {
    public var email: String?
    public var title: String?
    public var givenName: String?
    public var familyName: String?
    public var systemRole: SystemRole?
    public var status: UserStatus?
    public init() {}
    public var isEmpty: Bool {
        email == nil && title == nil && givenName == nil && familyName == nil && systemRole == nil && status == nil
    }
}

/// What a new patient record is made of; already validated by the caller.
public struct NewPatient: Sendable {
    public var title: String
    public var givenName: String
    public var familyName: String
    public var userID: String?
    public init(title: String, givenName: String, familyName: String, userID: String?) {
        self.title = title
        self.givenName = givenName
        self.familyName = familyName
        self.userID = userID
    }
}

/// The fields a patient update names; `userID: .some(nil)` unlinks the user.
public struct PatientChanges: Sendable {
    public var title: String?
    public var givenName: String?
    public var familyName: String?
    public var userID: String??
    public init() {}
    public var isEmpty: Bool { title == nil && givenName == nil && familyName == nil && userID == nil }
}

extension StoreTransaction {
    /// Applies `changes` if the stored version is `expectedVersion`.
    public func updateUser(id: String, expectedVersion: Int64, _ changes: UserChanges) throws -> UserRecord {
        var user = try user(id: id)
        try checkVersion(user.version, expected: expectedVersion, what: "user \(id)")
        if let email = changes.email {
            try checkEmailFree(email, except: id)
            user.email = email
        }
        if let title = changes.title { user.title = title }
        if let givenName = changes.givenName { user.givenName = givenName }
        if let familyName = changes.familyName { user.familyName = familyName }
        if let role = changes.systemRole {
            if role != .none, let patient = try patient(forUser: id) {
                throw RPCError(
                    .failedPrecondition, "system_role: user \(id) is patient \(patient.id)'s login, which holds no system role",
                    fieldViolations: [.init(field: "system_role", description: "a patient's login holds no system role")]
                )
            }
            user.systemRole = role
        }
        if let status = changes.status { user.status = status }
        try execute(
            """
            UPDATE "user" SET email = ?, email_normalized = ?, title = ?, given_name = ?, family_name = ?, system_role = ?,
              status = ?, update_time = ?, version = version + 1
            WHERE id = ?
            """,
            [user.email, EmailKey.of(user.email), user.title, user.givenName, user.familyName, user.systemRole.rawValue,
             user.status.rawValue, now.storedMicros, id]
        )
        return try self.user(id: id)
    }

    /// The user with this e-mail, if any: compared by key (NFC, any case),
    /// so a composed and a decomposed "josé" find the same user.
    public func user(email: String) throws -> UserRecord? {
        try fetchOne("SELECT * FROM \"user\" WHERE email_normalized = ?", [EmailKey.of(email)]).map(Self.user)
    }

    /// One page of users in creation order.
    public func listUsers(emailPrefix: String, status: UserStatus?, after: Int64?, limit: Int) throws -> Page<UserRecord> {
        var conditions = ["seq > ?"]
        var arguments: SQLArguments = [after ?? 0]
        if !emailPrefix.isEmpty {
            conditions.append("email_normalized LIKE ? ESCAPE '\\'")
            arguments += [Self.likePrefix(EmailKey.of(emailPrefix))]
        }
        if let status {
            conditions.append("status = ?")
            arguments += [status.rawValue]
        }
        arguments += [limit + 1]
        let rows = try fetchAll("SELECT * FROM \"user\" WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?", arguments)
        return Self.page(rows, limit: limit, Self.user)
    }

    /// Creates a patient record; a user can be linked to one patient record at most.
    public func createPatient(_ new: NewPatient) throws -> PatientRecord {
        if let userID = new.userID { try checkUserLinkable(userID, except: nil) }
        let id = UUID().uuidString.lowercased()
        try execute(
            """
            INSERT INTO patient (id, title, given_name, family_name, user_id, create_time, update_time, version)
            VALUES (?, ?, ?, ?, ?, ?, ?, 1)
            """,
            [id, new.title, new.givenName, new.familyName, new.userID, now.storedMicros, now.storedMicros]
        )
        return try patient(id: id)
    }

    /// The patient record with `id`, or NOT_FOUND.
    public func patient(id: String) throws -> PatientRecord {
        guard let row = try fetchOne("SELECT * FROM patient WHERE id = ?", [id]) else {
            throw RPCError.notFound("patient", id: id)
        }
        return Self.patient(row)
    }

    /// The patient record the user logs in as, if any.
    public func patient(forUser userID: String) throws -> PatientRecord? {
        try fetchOne("SELECT * FROM patient WHERE user_id = ?", [userID]).map(Self.patient)
    }

    /// Applies `changes` if the stored version is `expectedVersion`.
    public func updatePatient(id: String, expectedVersion: Int64, _ changes: PatientChanges) throws -> PatientRecord {
        var patient = try patient(id: id)
        try checkVersion(patient.version, expected: expectedVersion, what: "patient \(id)")
        if let title = changes.title { patient.title = title }
        if let givenName = changes.givenName { patient.givenName = givenName }
        if let familyName = changes.familyName { patient.familyName = familyName }
        // A patient's login is their identity for consent: it is set once, on
        // a record that has none, and never moved or removed — else whoever
        // it moved to could change the consents the patient gave.
        if let userID = changes.userID, userID != patient.userID {
            if let current = patient.userID {
                throw RPCError(
                    .failedPrecondition,
                    "patient \(id) logs in as user \(current): a patient's login is their identity for consent; it cannot be moved or removed",
                    fieldViolations: [.init(field: userID == nil ? "remove_user_id" : "user_id", description: "the patient's login cannot be moved or removed")]
                )
            }
            if let userID { try checkUserLinkable(userID, except: id) }
            patient.userID = userID
        }
        try execute(
            """
            UPDATE patient SET title = ?, given_name = ?, family_name = ?, user_id = ?, update_time = ?, version = version + 1
            WHERE id = ?
            """,
            [patient.title, patient.givenName, patient.familyName, patient.userID, now.storedMicros, id]
        )
        return try self.patient(id: id)
    }

    /// One page of patients in creation order.
    public func listPatients(familyNamePrefix: String, after: Int64?, limit: Int) throws -> Page<PatientRecord> {
        var conditions = ["seq > ?"]
        var arguments: SQLArguments = [after ?? 0]
        if !familyNamePrefix.isEmpty {
            conditions.append("family_name \(dialect.caseInsensitiveLike) ? ESCAPE '\\'")
            arguments += [Self.likePrefix(familyNamePrefix)]
        }
        arguments += [limit + 1]
        let rows = try fetchAll("SELECT * FROM patient WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?", arguments)
        return Self.page(rows, limit: limit, Self.patient)
    }

    func checkVersion(_ current: Int64, expected: Int64, what: String) throws {
        if expected != 0 && current != expected {
            throw RPCError(.aborted, "\(what) is at version \(current), not \(expected): read it again and retry")
        }
    }

    func checkEmailFree(_ email: String, except id: String?) throws {
        if let holder = try user(email: email), holder.id != id {
            throw RPCError(
                .alreadyExists, "email: \(email) is already used by user \(holder.id)",
                fieldViolations: [.init(field: "email", description: "already used by user \(holder.id)")]
            )
        }
    }

    /// A patient's login must be a user with no system role (consents are
    /// answered by patients, never by an admin) and no other patient record.
    private func checkUserLinkable(_ userID: String, except patientID: String?) throws {
        let linked: UserRecord
        do {
            linked = try user(id: userID)
        } catch let error as RPCError where error.code == .notFound {
            throw error.referenced(from: "user_id")
        }
        guard linked.systemRole == .none else {
            throw RPCError(
                .failedPrecondition, "user_id: user \(userID) holds the \(linked.systemRole.rawValue) system role; a patient's login must hold none",
                fieldViolations: [.init(field: "user_id", description: "holds a system role")]
            )
        }
        if let holder = try patient(forUser: userID), holder.id != patientID {
            throw RPCError(
                .alreadyExists, "user_id: user \(userID) is already linked to patient \(holder.id)",
                fieldViolations: [.init(field: "user_id", description: "already linked to patient \(holder.id)")]
            )
        }
    }

    static func patient(_ row: SQLRow) -> PatientRecord {
        PatientRecord(
            id: row["id"], title: row["title"], givenName: row["given_name"], familyName: row["family_name"],
            userID: row["user_id"], createTime: Date(storedMicros: row["create_time"]),
            updateTime: Date(storedMicros: row["update_time"]), version: row["version"]
        )
    }
}
