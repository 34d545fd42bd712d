import Foundation

/// The five kinds of care organisation (seed 001), spelled as stored.
public enum OrganizationKind: String, Sendable, CaseIterable {
    case hospitalTeam = "hospital_team"
    case gpPractice = "gp_practice"
    case privateClinic = "private_clinic"
    case department
    case teachingEstablishment = "teaching_establishment"
}

/// A system-wide permission level.
public enum SystemRole: String, Sendable, CaseIterable, Comparable {
    case none, admin, superadmin

    private var rank: Int {
        switch self {
        case .none: 0
        case .admin: 1
        case .superadmin: 2
        }
    }

    public static func < (lhs: SystemRole, rhs: SystemRole) -> Bool { lhs.rank < rhs.rank }
}

/// Where a user's account stands.
public enum UserStatus: String, Sendable, CaseIterable {
    case invited, active, disabled
}

/// An external identifier such as an ODS code; unique per system.
public struct ExternalIdentifier: Sendable, Hashable {
    public var system: String
    public var value: String
    public init(system: String, value: String) {
        self.system = system
        self.value = value
    }
}

/// A care organisation as stored.
public struct OrganizationRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var kind: OrganizationKind
    public var identifier: ExternalIdentifier?
    public var active: Bool
    public var createTime: Date
    public var updateTime: Date
    public var version: Int64
}

/// A login identity.
public struct UserRecord: Sendable, Equatable {
    public var id: String
    public var email: String
    public var title: String
    public var givenName: String
    public var familyName: String
    public var systemRole: SystemRole
    public var status: UserStatus
    public var createTime: Date
    public var updateTime: Date
    public var version: Int64
}

/// A non-human caller.
public struct ServiceAccountRecord: Sendable, Equatable {
    public var id: String
    public var name: String
    public var systemRole: SystemRole
    public var mayActAs: Bool
    public var createTime: Date
    /// May claim and acknowledge the invitation outbox (the mailer).
    public var mailer: Bool = false
}

/// Who a token speaks for.
public enum TokenOwner: Sendable, Equatable {
    case user(id: String)
    case serviceAccount(id: String)
}

/// A bearer token's public description (never its secret).
public struct TokenRecord: Sendable, Equatable {
    public var id: String
    public var prefix: String
    public var owner: TokenOwner
    public var description: String
    public var createTime: Date
    public var expireTime: Date?
    public var revokeTime: Date?
}

/// One page of a list and where the next begins.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    /// The `seq` to continue after, or nil on the last page.
    public var nextAfter: Int64?
}

/// A patient record, optionally linked to the user who logs in as the patient.
public struct PatientRecord: Sendable, Equatable {
    public var id: String
    public var title: String
    public var givenName: String
    public var familyName: String
    public var userID: String?
    public var createTime: Date
    public var updateTime: Date
    public var version: Int64
}

/// A staff member's roles in one organisation (seed 000: a membership manager
/// is not an agent; the two are independent).
public struct StaffRoles: Sendable, Hashable {
    public var membershipManager: Bool
    public var agent: Bool
    public init(membershipManager: Bool, agent: Bool) {
        self.membershipManager = membershipManager
        self.agent = agent
    }
    public var isEmpty: Bool { !membershipManager && !agent }
}

/// A user's membership of an organisation as staff.
public struct StaffMembershipRecord: Sendable, Equatable {
    public var organizationID: String
    public var userID: String
    public var roles: StaffRoles
    public var isPrimary: Bool
    public var createTime: Date
    public var updateTime: Date
}

/// A patient's membership of an organisation.
public struct PatientMembershipRecord: Sendable, Equatable {
    public var organizationID: String
    public var patientID: String
    public var isPrimary: Bool
    public var createTime: Date
    public var updateTime: Date
}

/// A kind of data consent is asked for; unique by coding system and code.
public struct ScopeRecord: Sendable, Hashable {
    public var id: String
    public var codingSystem: String
    public var codingCode: String
    public var text: String
}

/// A research study, or an agency request for any agent of the organisation (seed 000).
public enum ConsentRequestKind: String, Sendable {
    case study, agency
}

/// An organisation's request for consent to a set of scopes.
public struct ConsentRequestRecord: Sendable, Equatable {
    public var id: String
    public var organizationID: String
    public var kind: ConsentRequestKind
    public var name: String
    /// In the order they were added.
    public var scopes: [ScopeRecord]
    public var startTime: Date?
    public var endTime: Date?
    public var createTime: Date
    public var updateTime: Date
    public var version: Int64

    /// Consents to this request count only inside [start, end).
    public func isLive(at now: Date) -> Bool {
        (startTime.map { $0 <= now } ?? true) && (endTime.map { now < $0 } ?? true)
    }
}

/// One immutable record of a consent change.
public struct ConsentHistoryRecord: Sendable, Equatable {
    public enum Action: String, Sendable {
        case asked, answered, updated, revoked
        /// The patient left the organisation: an answer to one of its requests ended with the membership.
        case ended
        /// The patient left the organisation: a scope still pending in one of its requests is asked no more.
        case withdrawn
    }
    public var id: String
    public var patientID: String
    public var consentRequestID: String
    public var scope: ScopeRecord?
    public var action: Action
    public var before: Bool?
    public var after: Bool?
    public var actor: String
    public var actingFor: String
    public var time: Date
}

/// Where an invitation stands. `expired` is never stored: a pending
/// invitation past its expiry reads as expired.
public enum InvitationStatus: String, Sendable, CaseIterable {
    case pending, accepted, declined, withdrawn, expired
}

/// The role an invitation offers (seed 003: PKB_TEAM_PRO → agent,
/// PKB_TEAM_COORD → membership manager).
public enum InvitedRole: String, Sendable {
    case agent
    case membershipManager = "membership_manager"

    var roles: StaffRoles {
        StaffRoles(membershipManager: self == .membershipManager, agent: self == .agent)
    }
}

/// An invitation to join an organisation's staff.
public struct InvitationRecord: Sendable, Equatable {
    public var id: String
    public var organizationID: String
    public var inviteeUserID: String
    public var email: String
    public var title: String
    public var givenName: String
    public var familyName: String
    public var role: InvitedRole
    /// As stored: never `expired`.
    public var storedStatus: InvitationStatus
    public var invitedBy: String
    public var createTime: Date
    public var lastSentTime: Date
    public var expireTime: Date
    public var sendCount: Int
    public var respondTime: Date?

    /// The status a reader sees at `now`.
    public func status(at now: Date) -> InvitationStatus {
        storedStatus == .pending && expireTime <= now ? .expired : storedStatus
    }
}

/// One e-mail waiting for (or leased to) a mailer.
public struct OutboxMessageRecord: Sendable, Equatable {
    public var id: String
    public var recipient: String
    public var template: String
    public var organizationID: String
    public var invitationID: String
    public var token: String
    public var attempts: Int
    public var leaseExpireTime: Date?
}
