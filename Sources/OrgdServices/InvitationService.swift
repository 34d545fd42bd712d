import Foundation
import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// How invitations behave; every number is configurable on the daemon.
public struct InvitationPolicy: Sendable {
    /// Lifetime of an invitation when the request names none (seed: 7 days).
    public var defaultExpiryDays: Int = 7
    /// The most sends (first send and re-sends) per invitation in 24 hours.
    public var maximumSendsPerDay: Int = 5
    /// How long a mailer holds claimed e-mail before it returns to the queue.
    public var defaultLeaseSeconds: Int = 300
    /// The most rows in one bulk invite.
    public var maximumBulkInvitees: Int = 500

    public init() {}
}

/// `orgd.v1.InvitationService`: invitations by e-mail (seeds 000 and 003) and
/// the outbox a mailer drains. Invitations are managed by the organisation's
/// membership managers and admins; the invitee answers with the secret token.
struct InvitationService {
    static let name = "orgd.v1.InvitationService"
    static let sentMessage = "Invitation sent"
    let store: Store
    let policy: InvitationPolicy

    func register(in table: inout MethodTable) {
        table.add(Self.name, "InviteMember", rule: .adminOrOrganizationManager, subject: { .organization($0.organizationID.lowercased()) }, invite)
        table.add(Self.name, "BulkInviteMembers", rule: .adminOrOrganizationManager, subject: { .organization($0.organizationID.lowercased()) }, bulkInvite)
        table.add(Self.name, "GetInvitation", rule: .adminOrOrganizationManager, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_GetInvitationRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.read { tx in try tx.invitation(id: id).proto(at: tx.now) }
        }
        table.add(Self.name, "ListInvitations", rule: .adminOrOrganizationManager, subject: { .organization($0.organizationID.lowercased()) }, list)
        table.add(Self.name, "ResendInvitation", rule: .adminOrOrganizationManager, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_ResendInvitationRequest, _) in
            let id = try Validation.id(request.id)
            let lifetime = try lifetime(days: request.expiresInDays)
            let maximum = policy.maximumSendsPerDay
            return try await store.write { tx in
                try tx.resendInvitation(id: id, lifetime: lifetime, maximumSendsPerDay: maximum).proto(at: tx.now)
            }
        }
        table.add(Self.name, "WithdrawInvitation", rule: .adminOrOrganizationManager, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_WithdrawInvitationRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.write { tx in try tx.withdrawInvitation(id: id).proto(at: tx.now) }
        }
        // The token is the authority here: whoever holds the link may answer it.
        table.add(Self.name, "AcceptInvitation", rule: .authenticated) { (request: Orgd_V1_AcceptInvitationRequest, _) in
            let token = try Self.token(request.token)
            return try await store.write { tx in
                let (invitation, member) = try tx.acceptInvitation(token: token)
                var response = Orgd_V1_AcceptInvitationResponse()
                response.invitation = invitation.proto(at: tx.now)
                response.membership = member.proto
                return response
            }
        }
        table.add(Self.name, "DeclineInvitation", rule: .authenticated) { (request: Orgd_V1_DeclineInvitationRequest, _) in
            let token = try Self.token(request.token)
            return try await store.write { tx in try tx.declineInvitation(token: token).proto(at: tx.now) }
        }
        // Only the mailer: claimed messages carry live invitation tokens.
        table.add(Self.name, "ClaimOutbox", rule: .mailer, claim)
        table.add(Self.name, "AckOutbox", rule: .mailer) { (request: Orgd_V1_AckOutboxRequest, _) in
            let id = try Validation.id(request.id)
            let mailer = try Validation.text(request.mailerID, field: "mailer_id")
            let error = try Validation.text(request.error, field: "error", maximum: 2000, required: false)
            try await store.write { tx in try tx.acknowledgeOutbox(id: id, mailer: mailer, delivered: request.delivered, error: error) }
            return Orgd_V1_AckOutboxResponse()
        }
    }

    // MARK: Inviting

    /// Checks one invitee's fields; each failure names the field.
    func validate(_ request: Orgd_V1_InviteMemberRequest, organizationID: String, invitedBy: String) throws -> NewInvitation {
        NewInvitation(
            organizationID: organizationID,
            email: try Validation.email(request.email),
            title: try Validation.text(request.title, field: "title", maximum: 50),
            givenName: try Validation.text(request.givenName, field: "given_name"),
            familyName: try Validation.text(request.familyName, field: "family_name"),
            role: try Self.role(request.role),
            lifetime: try lifetime(days: request.expiresInDays),
            invitedBy: invitedBy
        )
    }

    /// `agent` or `membership_manager`, or seed 003's PKB_TEAM_PRO / PKB_TEAM_COORD.
    static func role(_ text: String) throws -> InvitedRole {
        switch text.trimmingCharacters(in: .whitespaces) {
        case "agent", "PKB_TEAM_PRO": return .agent
        case "membership_manager", "PKB_TEAM_COORD": return .membershipManager
        case "": throw RPCError.invalidArgument(field: "role", "required: agent or membership_manager (or PKB_TEAM_PRO, PKB_TEAM_COORD)")
        default: throw RPCError.invalidArgument(field: "role", "must be agent or membership_manager (or PKB_TEAM_PRO, PKB_TEAM_COORD), not \(text.prefix(50))")
        }
    }

    func lifetime(days: Int32) throws -> TimeInterval {
        if days == 0 { return TimeInterval(policy.defaultExpiryDays) * 86_400 }
        guard (1...30).contains(days) else { throw RPCError.invalidArgument(field: "expires_in_days", "must be 1 to 30 (0 for the default)") }
        return TimeInterval(days) * 86_400
    }

    static func token(_ text: String) throws -> String {
        let token = text.trimmingCharacters(in: .whitespaces)
        guard !token.isEmpty else { throw RPCError.invalidArgument(field: "token", "required") }
        guard token.utf8.count <= 200 else { throw RPCError(.notFound, "this invitation token is not valid") }
        return token
    }

    func invite(_ request: Orgd_V1_InviteMemberRequest, _ context: CallContext) async throws -> Orgd_V1_InviteMemberResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let new = try validate(request, organizationID: organizationID, invitedBy: context.principal.key)
        let maximum = policy.maximumSendsPerDay
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            let result = try tx.invite(new, maximumSendsPerDay: maximum)
            var response = Orgd_V1_InviteMemberResponse()
            response.message = Self.sentMessage
            response.id = result.invitation.inviteeUserID
            response.invitation = result.invitation.proto(at: tx.now)
            response.reinvited = result.reinvited
            return try response.serializedBytes()
        }
        return try Orgd_V1_InviteMemberResponse(serializedBytes: bytes)
    }

    /// Each row is answered on its own: a bad row fails alone, in its own
    /// savepoint, and the others go through in the same transaction.
    func bulkInvite(_ request: Orgd_V1_BulkInviteMembersRequest, _ context: CallContext) async throws -> Orgd_V1_BulkInviteMembersResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        guard !request.invitees.isEmpty else { throw RPCError.invalidArgument(field: "invitees", "at least one invitee") }
        guard request.invitees.count <= policy.maximumBulkInvitees else {
            throw RPCError.invalidArgument(field: "invitees", "at most \(policy.maximumBulkInvitees) invitees in one call")
        }
        let rows: [Result<NewInvitation, RPCError>] = request.invitees.map { row in
            Result { try validate(row, organizationID: organizationID, invitedBy: context.principal.key) }.mapError { $0 as? RPCError ?? RPCError(.internal, "\($0)") }
        }
        let maximum = policy.maximumSendsPerDay
        let emails = request.invitees.map(\.email)
        return try await store.write { tx in
            _ = try tx.organization(id: organizationID)
            var response = Orgd_V1_BulkInviteMembersResponse()
            for (index, row) in rows.enumerated() {
                var result = Orgd_V1_BulkInviteResult()
                result.email = emails[index]
                switch row {
                case .failure(let error):
                    result.outcome = .invalid
                    result.error = error.message
                case .success(let new):
                    do {
                        let outcome = try tx.savepoint { try tx.invite(new, maximumSendsPerDay: maximum) }
                        result.outcome = outcome.reinvited ? .resent : .sent
                        result.id = outcome.invitation.inviteeUserID
                        result.invitationID = outcome.invitation.id
                    } catch let error as RPCError {
                        result.outcome = error.code == .alreadyExists ? .alreadyMember : .invalid
                        result.error = error.message
                    }
                }
                response.results.append(result)
            }
            return response
        }
    }

    func list(_ request: Orgd_V1_ListInvitationsRequest, _ context: CallContext) async throws -> Orgd_V1_ListInvitationsResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let limit = try PageToken.pageSize(request.pageSize)
        let status: InvitationStatus? = request.hasStatus ? try InvitationStatus(validating: request.status) : nil
        let scope = "invitations|\(organizationID)|\(status?.rawValue ?? "")"
        let after = try PageToken.decode(request.pageToken, scope: scope)
        let (page, now) = try await store.read { tx in
            (try tx.listInvitations(organizationID: organizationID, status: status, after: after, limit: limit), tx.now)
        }
        var response = Orgd_V1_ListInvitationsResponse()
        response.invitations = page.items.map { $0.proto(at: now) }
        response.nextPageToken = PageToken.encode(after: page.nextAfter, scope: scope)
        return response
    }

    // MARK: The outbox

    func claim(_ request: Orgd_V1_ClaimOutboxRequest, _ context: CallContext) async throws -> Orgd_V1_ClaimOutboxResponse {
        let mailer = try Validation.text(request.mailerID, field: "mailer_id")
        guard (0...1000).contains(request.maxMessages) else { throw RPCError.invalidArgument(field: "max_messages", "must be 0 (meaning 100) to 1000") }
        guard (0...86_400).contains(request.leaseSeconds) else { throw RPCError.invalidArgument(field: "lease_seconds", "must be 0 (the default) to 86400") }
        let limit = request.maxMessages == 0 ? 100 : Int(request.maxMessages)
        let lease = TimeInterval(request.leaseSeconds == 0 ? policy.defaultLeaseSeconds : Int(request.leaseSeconds))
        let messages = try await store.write { tx in try tx.claimOutbox(mailer: mailer, limit: limit, lease: lease) }
        var response = Orgd_V1_ClaimOutboxResponse()
        response.messages = messages.map { message in
            var proto = Orgd_V1_OutboxMessage()
            proto.id = message.id
            proto.recipient = message.recipient
            proto.template = message.template
            proto.organizationID = message.organizationID
            proto.invitationID = message.invitationID
            proto.token = message.token
            proto.attempts = Int32(clamping: message.attempts)
            if let expire = message.leaseExpireTime { proto.leaseExpireTime = Google_Protobuf_Timestamp(expire) }
            return proto
        }
        return response
    }
}

extension InvitationStatus {
    init(validating status: Orgd_V1_InvitationStatus, field: String = "status") throws {
        switch status {
        case .pending: self = .pending
        case .accepted: self = .accepted
        case .declined: self = .declined
        case .withdrawn: self = .withdrawn
        case .expired: self = .expired
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(field: field, "one of pending, accepted, declined, withdrawn, expired")
        }
    }

    var proto: Orgd_V1_InvitationStatus {
        switch self {
        case .pending: .pending
        case .accepted: .accepted
        case .declined: .declined
        case .withdrawn: .withdrawn
        case .expired: .expired
        }
    }
}

extension InvitationRecord {
    func proto(at now: Date) -> Orgd_V1_Invitation {
        var message = Orgd_V1_Invitation()
        message.id = id
        message.organizationID = organizationID
        message.inviteeUserID = inviteeUserID
        message.email = email
        message.title = title
        message.givenName = givenName
        message.familyName = familyName
        message.role = role == .agent ? .agent : .membershipManager
        message.status = status(at: now).proto
        message.invitedBy = invitedBy
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.lastSentTime = Google_Protobuf_Timestamp(lastSentTime)
        message.expireTime = Google_Protobuf_Timestamp(expireTime)
        message.sendCount = Int32(clamping: sendCount)
        if let respondTime { message.respondTime = Google_Protobuf_Timestamp(respondTime) }
        return message
    }
}
