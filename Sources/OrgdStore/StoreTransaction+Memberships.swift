import Foundation
import OrgdCore

/// A staff membership with the member, for listings.
public struct StaffMember: Sendable, Equatable {
    public var membership: StaffMembershipRecord
    public var user: UserRecord
}

/// A patient membership with the member, for listings.
public struct PatientMember: Sendable, Equatable {
    public var membership: PatientMembershipRecord
    public var patient: PatientRecord
}

/// An organisation someone belongs to, and the membership.
public struct OrganizationMembership<Membership: Sendable & Equatable>: Sendable, Equatable {
    public var organization: OrganizationRecord
    public var membership: Membership
}

extension StoreTransaction {
    // MARK: Staff (organization_staff_member and user only)

    /// Adds a user to an organisation's staff. The organisation must be
    /// active; making this membership primary clears the user's other one.
    public func addStaffMember(organizationID: String, userID: String, roles: StaffRoles, isPrimary: Bool) throws -> StaffMember {
        try RPCError.referenced(from: "organization_id") { try requireActive(organizationID, toAdd: "staff") }
        let user = try RPCError.referenced(from: "user_id") { try self.user(id: userID) }
        if user.status == .disabled {
            throw RPCError(.failedPrecondition, "user \(userID) is disabled; enable them before adding them to an organization")
        }
        if try fetchOne("SELECT 1 FROM organization_staff_member WHERE organization_id = ? AND user_id = ?", [organizationID, userID]) != nil {
            throw RPCError(.alreadyExists, "user \(userID) is already a staff member of organization \(organizationID)")
        }
        if isPrimary { try clearPrimaryStaff(userID: userID) }
        try execute(
            """
            INSERT INTO organization_staff_member
              (organization_id, user_id, is_membership_manager, is_agent, is_primary, create_time, update_time)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            """,
            [organizationID, userID, roles.membershipManager, roles.agent, isPrimary, now.storedMicros, now.storedMicros]
        )
        return try staffMember(organizationID: organizationID, userID: userID)
    }

    /// Changes a staff membership's roles and/or primary flag.
    public func updateStaffMember(organizationID: String, userID: String, roles: StaffRoles?, isPrimary: Bool?) throws -> StaffMember {
        var member = try staffMember(organizationID: organizationID, userID: userID)
        if let roles { member.membership.roles = roles }
        if let isPrimary, isPrimary != member.membership.isPrimary {
            if isPrimary {
                try requireActive(organizationID, toAdd: "a primary membership")
                try clearPrimaryStaff(userID: userID)
            }
            member.membership.isPrimary = isPrimary
        }
        try execute(
            """
            UPDATE organization_staff_member SET is_membership_manager = ?, is_agent = ?, is_primary = ?, update_time = ?
            WHERE organization_id = ? AND user_id = ?
            """,
            [member.membership.roles.membershipManager, member.membership.roles.agent, member.membership.isPrimary,
             now.storedMicros, organizationID, userID]
        )
        return try staffMember(organizationID: organizationID, userID: userID)
    }

    /// Removes a user from an organisation's staff.
    public func removeStaffMember(organizationID: String, userID: String) throws {
        try execute("DELETE FROM organization_staff_member WHERE organization_id = ? AND user_id = ?", [organizationID, userID])
        if changes == 0 {
            _ = try organization(id: organizationID)
            throw RPCError(.notFound, "user \(userID) is not a staff member of organization \(organizationID)")
        }
    }

    /// One staff membership, or NOT_FOUND.
    public func staffMember(organizationID: String, userID: String) throws -> StaffMember {
        guard let row = try fetchOne(
            "\(Self.staffSelect) WHERE m.organization_id = ? AND m.user_id = ?", [organizationID, userID]
        ) else {
            _ = try organization(id: organizationID)
            throw RPCError(.notFound, "user \(userID) is not a staff member of organization \(organizationID)")
        }
        return Self.staffMember(row)
    }

    /// One page of an organisation's staff, in the order they joined.
    public func listStaffMembers(organizationID: String, after: Int64?, limit: Int) throws -> Page<StaffMember> {
        let rows = try fetchAll(
            "\(Self.staffSelect) WHERE m.organization_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?",
            [organizationID, after ?? 0, limit + 1]
        )
        return Self.page(rows, limit: limit, Self.staffMember)
    }

    /// How many staff members an organisation has.
    public func staffCount(organizationID: String) throws -> Int64 {
        try fetchValue(Int64.self, "SELECT count(*) FROM organization_staff_member WHERE organization_id = ?", [organizationID]
        ) ?? 0
    }

    /// Every organisation the user belongs to as staff, primary first.
    public func staffMemberships(userID: String) throws -> [OrganizationMembership<StaffMembershipRecord>] {
        try fetchAll(
            """
            SELECT o.*, m.organization_id AS m_organization_id, m.user_id AS m_user_id, m.is_membership_manager, m.is_agent,
                   m.is_primary, m.create_time AS m_create_time, m.update_time AS m_update_time
            FROM organization_staff_member m JOIN organization o ON o.id = m.organization_id
            WHERE m.user_id = ? ORDER BY m.is_primary DESC, m.seq
            """,
            [userID]
        ).map { OrganizationMembership(organization: Self.organization($0), membership: Self.staffMembership($0)) }
    }

    /// Whether the user is a membership manager of the organisation.
    public func isMembershipManager(userID: String, organizationID: String) throws -> Bool {
        try fetchOne(
            "SELECT 1 FROM organization_staff_member WHERE user_id = ? AND organization_id = ? AND is_membership_manager = 1",
            [userID, organizationID]
        ) != nil
    }

    // MARK: Patients (organization_patient_member and patient only)

    /// Adds a patient to an organisation. The organisation must be active;
    /// making this membership primary clears the patient's other one.
    public func addPatientMember(organizationID: String, patientID: String, isPrimary: Bool) throws -> PatientMember {
        try RPCError.referenced(from: "organization_id") { try requireActive(organizationID, toAdd: "patients") }
        _ = try RPCError.referenced(from: "patient_id") { try patient(id: patientID) }
        if try fetchOne("SELECT 1 FROM organization_patient_member WHERE organization_id = ? AND patient_id = ?", [organizationID, patientID]) != nil {
            throw RPCError(.alreadyExists, "patient \(patientID) is already a member of organization \(organizationID)")
        }
        if isPrimary { try clearPrimaryPatient(patientID: patientID) }
        try execute(
            """
            INSERT INTO organization_patient_member (organization_id, patient_id, is_primary, create_time, update_time)
            VALUES (?, ?, ?, ?, ?)
            """,
            [organizationID, patientID, isPrimary, now.storedMicros, now.storedMicros]
        )
        return try patientMember(organizationID: organizationID, patientID: patientID)
    }

    /// Sets or clears a patient membership's primary flag.
    public func updatePatientMember(organizationID: String, patientID: String, isPrimary: Bool?) throws -> PatientMember {
        var member = try patientMember(organizationID: organizationID, patientID: patientID)
        if let isPrimary, isPrimary != member.membership.isPrimary {
            if isPrimary {
                try requireActive(organizationID, toAdd: "a primary membership")
                try clearPrimaryPatient(patientID: patientID)
            }
            member.membership.isPrimary = isPrimary
            try execute(
                "UPDATE organization_patient_member SET is_primary = ?, update_time = ? WHERE organization_id = ? AND patient_id = ?",
                [isPrimary, now.storedMicros, organizationID, patientID]
            )
        }
        return try patientMember(organizationID: organizationID, patientID: patientID)
    }

    /// Removes a patient from an organisation, ending what the membership
    /// carried: the patient's answers to the organisation's requests and its
    /// pending asks (`endCareRelationship`). Never refused for consents held.
    public func removePatientMember(organizationID: String, patientID: String, actor: Actor) throws {
        try execute("DELETE FROM organization_patient_member WHERE organization_id = ? AND patient_id = ?", [organizationID, patientID])
        if changes == 0 {
            _ = try organization(id: organizationID)
            throw RPCError(.notFound, "patient \(patientID) is not a member of organization \(organizationID)")
        }
        try endCareRelationship(organizationID: organizationID, patientID: patientID, actor: actor)
    }

    /// One patient membership, or NOT_FOUND.
    public func patientMember(organizationID: String, patientID: String) throws -> PatientMember {
        guard let row = try fetchOne(
            "\(Self.patientMemberSelect) WHERE m.organization_id = ? AND m.patient_id = ?", [organizationID, patientID]
        ) else {
            _ = try organization(id: organizationID)
            throw RPCError(.notFound, "patient \(patientID) is not a member of organization \(organizationID)")
        }
        return Self.patientMember(row)
    }

    /// One page of an organisation's patients, in the order they joined.
    public func listPatientMembers(organizationID: String, after: Int64?, limit: Int) throws -> Page<PatientMember> {
        let rows = try fetchAll(
            "\(Self.patientMemberSelect) WHERE m.organization_id = ? AND m.seq > ? ORDER BY m.seq LIMIT ?",
            [organizationID, after ?? 0, limit + 1]
        )
        return Self.page(rows, limit: limit, Self.patientMember)
    }

    /// How many patients an organisation has.
    public func patientCount(organizationID: String) throws -> Int64 {
        try fetchValue(Int64.self, "SELECT count(*) FROM organization_patient_member WHERE organization_id = ?", [organizationID]
        ) ?? 0
    }

    /// Every organisation the patient belongs to, primary first.
    public func patientMemberships(patientID: String) throws -> [OrganizationMembership<PatientMembershipRecord>] {
        try fetchAll(
            """
            SELECT o.*, m.organization_id AS m_organization_id, m.patient_id AS m_patient_id, m.is_primary,
                   m.create_time AS m_create_time, m.update_time AS m_update_time
            FROM organization_patient_member m JOIN organization o ON o.id = m.organization_id
            WHERE m.patient_id = ? ORDER BY m.is_primary DESC, m.seq
            """,
            [patientID]
        ).map { OrganizationMembership(organization: Self.organization($0), membership: Self.patientMembership($0)) }
    }

    // MARK: Shared

    private func requireActive(_ organizationID: String, toAdd what: String) throws {
        let organization = try organization(id: organizationID)
        guard organization.active else {
            throw RPCError(.failedPrecondition, "organization \(organizationID) is deactivated and takes no new \(what); reactivate it first")
        }
    }

    private func clearPrimaryStaff(userID: String) throws {
        try execute(
            "UPDATE organization_staff_member SET is_primary = 0, update_time = ? WHERE user_id = ? AND is_primary = 1",
            [now.storedMicros, userID]
        )
    }

    private func clearPrimaryPatient(patientID: String) throws {
        try execute(
            "UPDATE organization_patient_member SET is_primary = 0, update_time = ? WHERE patient_id = ? AND is_primary = 1",
            [now.storedMicros, patientID]
        )
    }

    private static let staffSelect = """
        SELECT m.seq, m.organization_id AS m_organization_id, m.user_id AS m_user_id, m.is_membership_manager, m.is_agent,
               m.is_primary, m.create_time AS m_create_time, m.update_time AS m_update_time,
               u.id, u.email, u.title, u.given_name, u.family_name, u.system_role, u.status, u.create_time, u.update_time, u.version
        FROM organization_staff_member m JOIN "user" u ON u.id = m.user_id
        """

    private static let patientMemberSelect = """
        SELECT m.seq, m.organization_id AS m_organization_id, m.patient_id AS m_patient_id, m.is_primary,
               m.create_time AS m_create_time, m.update_time AS m_update_time,
               p.id, p.title, p.given_name, p.family_name, p.user_id, p.create_time, p.update_time, p.version
        FROM organization_patient_member m JOIN patient p ON p.id = m.patient_id
        """

    static func staffMembership(_ row: SQLRow) -> StaffMembershipRecord {
        StaffMembershipRecord(
            organizationID: row["m_organization_id"], userID: row["m_user_id"],
            roles: StaffRoles(membershipManager: row["is_membership_manager"], agent: row["is_agent"]),
            isPrimary: row["is_primary"], createTime: Date(storedMicros: row["m_create_time"]),
            updateTime: Date(storedMicros: row["m_update_time"])
        )
    }

    static func staffMember(_ row: SQLRow) -> StaffMember {
        StaffMember(membership: staffMembership(row), user: user(row))
    }

    static func patientMembership(_ row: SQLRow) -> PatientMembershipRecord {
        PatientMembershipRecord(
            organizationID: row["m_organization_id"], patientID: row["m_patient_id"], isPrimary: row["is_primary"],
            createTime: Date(storedMicros: row["m_create_time"]), updateTime: Date(storedMicros: row["m_update_time"])
        )
    }

    static func patientMember(_ row: SQLRow) -> PatientMember {
        PatientMember(membership: patientMembership(row), patient: patient(row))
    }
}
