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

/// Where an invitation stands. `expired` and `deliveryFailed` are never
/// stored: a pending invitation past its expiry reads as expired, and one
/// whose e-mail the mailer gave up on (and not expired) as delivery failed.
public enum InvitationStatus: String, Sendable, CaseIterable {
    case pending, accepted, declined, withdrawn, expired
    case deliveryFailed = "delivery_failed"
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
    /// When the mailer gave up on the current e-mail (nil until then; a
    /// re-send clears it).
    public var deliveryFailedTime: Date? = nil
    /// The mailer's error for the last failed attempt at the current e-mail.
    public var lastDeliveryError: String? = nil

    /// The status a reader sees at `now`: expiry wins over a failed delivery.
    public func status(at now: Date) -> InvitationStatus {
        guard storedStatus == .pending else { return storedStatus }
        if expireTime <= now { return .expired }
        return deliveryFailedTime == nil ? .pending : .deliveryFailed
    }
}

/// One e-mail leased to a mailer, with what it says as it stands at claim
/// time: the invitation (invitee's names, role, expiry, who invited), the
/// organisation's name and the inviter's.
public struct OutboxMessageRecord: Sendable, Equatable {
    public var id: String
    public var recipient: String
    public var template: String
    public var organizationID: String
    public var invitationID: String
    public var token: String
    /// Claims so far, this one included.
    public var attempts: Int
    public var leaseExpireTime: Date?
    public var invitation: InvitationRecord
    public var organizationName: String
}

/// What a mailer's acknowledgement did.
public enum OutboxAcknowledgement: Sendable, Equatable {
    case delivered
    /// Failed, back in the queue from `nextAttempt`.
    case retrying(nextAttempt: Date)
    /// Failed at the last attempt: the invitation is marked delivery failed.
    case gaveUp
}

/// How often and how patiently failed e-mail is retried.
public struct OutboxRetryPolicy: Sendable, Equatable {
    /// Attempts (claims) before a message is given up on; at least 1.
    public var maximumAttempts: Int
    /// The wait after the first failure; it doubles after each further one.
    public var baseDelay: TimeInterval
    /// The longest wait between attempts.
    public var maximumDelay: TimeInterval

    public init(maximumAttempts: Int = 5, baseDelay: TimeInterval = 60, maximumDelay: TimeInterval = 3600) {
        self.maximumAttempts = maximumAttempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// The wait after `attempts` failed attempts: base × 2^(attempts−1), capped.
    public func delay(afterAttempts attempts: Int) -> TimeInterval {
        let doublings = max(0, min(attempts - 1, 62))
        return min(maximumDelay, baseDelay * pow(2, Double(doublings)))
    }
}
