import OrgdCore
import OrgdStore

/// Who may call a method. Every method names exactly one rule when it is
/// registered (see each service's `register(in:)`); this file is the one
/// place the rules are decided.
public enum AccessRule: String, Sendable, Hashable, CaseIterable {
    /// Anyone who reached the server, even unauthenticated over TCP
    /// (health checks, for load balancers and probes).
    case anyone
    /// Any authenticated principal.
    case authenticated
    /// System role admin or superadmin (seed 001: organisation CRUD and direct
    /// membership changes).
    case admin
    /// System role superadmin (tokens, service accounts, the audit log), held
    /// by the caller itself: never through `orgd-act-as`, so acting for
    /// someone can never mint tokens or accounts.
    case superadmin
    /// An admin, or a membership manager of the organisation the request
    /// names (seed 001: a manager may list their own organisation's members).
    case adminOrOrganizationManager
    /// An admin, or the user the request is about (a user reads their own
    /// record and their own patient record).
    case adminOrSelf
    /// Only the patient the request is about, or a service account acting for
    /// them. Not even a superadmin answers consents for a patient (seed 002):
    /// a user who holds a system role is never answered for as a patient, and
    /// the local operator does not answer consents even with `orgd-act-as`.
    case patientSelf
    /// A service account, or an admin: the callers of the access check, which
    /// data services ask before they return data (design section 4).
    case serviceOrAdmin
    /// The mailer: a service account holding the mailer permission (its own,
    /// not through `orgd-act-as`), or the local operator. Claimed outbox
    /// messages carry live invitation tokens in plain text.
    case mailer

    /// Whether the rule needs to see the request before it can decide.
    var needsSubject: Bool {
        self == .adminOrOrganizationManager || self == .adminOrSelf || self == .patientSelf
    }

    /// The part of the decision that needs only the principal. Rules that
    /// need the request pass admins here and leave the rest to
    /// `check(_:subject:store:method:)`.
    public func check(_ principal: Principal, method: String) throws {
        switch self {
        case .anyone, .authenticated:
            return
        case .admin, .adminOrOrganizationManager, .adminOrSelf:
            if principal.systemRole >= .admin { return }
            if self == .admin || principal.effectiveUser == nil {
                throw RPCError.permissionDenied("\(method) requires the admin or superadmin system role")
            }
        case .superadmin:
            guard principal.systemRole >= .superadmin else {
                throw RPCError.permissionDenied("\(method) requires the superadmin system role")
            }
            guard principal.actingFor == nil else {
                throw RPCError.permissionDenied("\(method) is not available through orgd-act-as: call with the superadmin's own credentials")
            }
        case .patientSelf:
            guard let user = principal.effectiveUser else {
                throw RPCError.permissionDenied("\(method) is for the patient themself (or a service acting for them)")
            }
            if case .localOperator = principal.identity {
                throw RPCError.permissionDenied("\(method): the local operator does not answer consents for a patient, even with orgd-act-as")
            }
            guard user.systemRole == .none else {
                throw RPCError.permissionDenied(
                    "\(method): user \(user.id) holds the \(user.systemRole.rawValue) system role; consents are answered by patients, never by an admin")
            }
        case .mailer:
            switch principal.identity {
            case .localOperator where principal.actingFor == nil:
                return
            case .serviceAccount(let account) where account.mailer && principal.actingFor == nil:
                return
            default:
                throw RPCError.permissionDenied("\(method) is for mail services: a service account created with the mailer permission")
            }
        case .serviceOrAdmin:
            if principal.systemRole >= .admin { return }
            guard case .serviceAccount = principal.identity else {
                throw RPCError.permissionDenied("\(method) is for services and admins")
            }
        }
    }

    /// Whether the decision for `principal` still depends on the request
    /// (admins pass every rule but `patientSelf` without looking).
    func needsSubject(for principal: Principal) -> Bool {
        needsSubject && (self == .patientSelf || principal.systemRole < .admin)
    }

    /// The same decision inside a transaction the caller already holds.
    func check(_ principal: Principal, subject: AccessSubject, _ tx: StoreTransaction, method: String) throws {
        guard needsSubject(for: principal) else { return }
        guard let user = principal.effectiveUser else {
            throw RPCError.permissionDenied("\(method) requires the admin or superadmin system role")
        }
        let allowed: Bool
        switch (self, subject) {
        case (.adminOrOrganizationManager, .organization(let organizationID)):
            allowed = try tx.isMembershipManager(userID: user.id, organizationID: organizationID)
        case (.adminOrOrganizationManager, .consentRequest(let requestID)):
            allowed = try tx.organizationID(ofConsentRequest: requestID).map { try tx.isMembershipManager(userID: user.id, organizationID: $0) } ?? false
        case (.adminOrOrganizationManager, .invitation(let invitationID)):
            allowed = try tx.organizationID(ofInvitation: invitationID).map { try tx.isMembershipManager(userID: user.id, organizationID: $0) } ?? false
        case (.adminOrSelf, .user(let userID)):
            allowed = userID == user.id
        case (.adminOrSelf, .patient(let patientID)), (.patientSelf, .patient(let patientID)):
            allowed = try tx.patient(forUser: user.id)?.id == patientID
        default:
            allowed = false
        }
        guard allowed else {
            let why: String = switch self {
            case .adminOrSelf: "\(method): only admins may see other people's records"
            case .patientSelf: "\(method): only the patient themself (or a service acting for them) may do this"
            default: "\(method) requires the admin role or being a membership manager of this organization"
            }
            throw RPCError.permissionDenied(why)
        }
    }
}

/// What a request is about, for rules that depend on it.
public enum AccessSubject: Sendable, Equatable {
    case organization(String)
    case user(String)
    case patient(String)
    /// Resolved to the request's organisation.
    case consentRequest(String)
    /// Resolved to the invitation's organisation.
    case invitation(String)
}
