import CoreMetrics
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
    /// How failed e-mail is retried, and when it is given up on.
    public var outboxRetry = OutboxRetryPolicy()

    public init() {}
}

/// `orgd.v1.InvitationService`: invitations by e-mail (seeds 000 and 003) and
/// the outbox a mailer drains. Invitations are managed by the organisation's
/// membership managers and admins; the invitee answers with the secret token.
struct InvitationService {
    static let sentMessage = "Invitation sent"
    let store: Store
    let policy: InvitationPolicy
    let metrics: OutboxMetrics

    init(store: Store, policy: InvitationPolicy, metrics: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.store = store
        self.policy = policy
        self.metrics = OutboxMetrics(factory: metrics)
    }

    func register(in table: inout MethodTable) {
        table.add(Method.InviteMember.self, subject: { .organization($0.organizationID.lowercased()) }, invite)
        table.add(Method.BulkInviteMembers.self, subject: { .organization($0.organizationID.lowercased()) }, bulkInvite)
        table.add(Method.GetInvitation.self, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_GetInvitationRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.read { tx in try tx.invitation(id: id).proto(at: tx.now) }
        }
        table.add(Method.ListInvitations.self, subject: { .organization($0.organizationID.lowercased()) }, list)
        table.add(Method.ResendInvitation.self, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_ResendInvitationRequest, _) in
            let id = try Validation.id(request.id)
            let lifetime = try lifetime(days: request.expiresInDays)
            let maximum = policy.maximumSendsPerDay
            return try await store.write { tx in
                try tx.resendInvitation(id: id, lifetime: lifetime, maximumSendsPerDay: maximum).proto(at: tx.now)
            }
        }
        table.add(Method.WithdrawInvitation.self, subject: { .invitation($0.id.lowercased()) }) {
            (request: Orgd_V1_WithdrawInvitationRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.write { tx in try tx.withdrawInvitation(id: id).proto(at: tx.now) }
        }
        // The token is the authority here: whoever holds the link may answer it.
        table.add(Method.AcceptInvitation.self) { (request: Orgd_V1_AcceptInvitationRequest, _) in
            let token = try Self.token(request.token)
            return try await store.write { tx in
                let (invitation, member) = try tx.acceptInvitation(token: token)
                var response = Orgd_V1_AcceptInvitationResponse()
                response.invitation = invitation.proto(at: tx.now)
                response.membership = member.proto
                return response
            }
        }
        table.add(Method.DeclineInvitation.self) { (request: Orgd_V1_DeclineInvitationRequest, _) in
            let token = try Self.token(request.token)
            return try await store.write { tx in try tx.declineInvitation(token: token).proto(at: tx.now) }
        }
        // Only the mailer: claimed messages carry live invitation tokens.
        table.add(Method.ClaimOutbox.self, claim)
        table.add(Method.AckOutbox.self, acknowledge)
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
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let (page, now) = try await store.read { tx in
            (try tx.listInvitations(organizationID: organizationID, status: status, after: after, limit: limit), tx.now)
        }
        var response = Orgd_V1_ListInvitationsResponse()
        response.invitations = page.items.map { $0.proto(at: now) }
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    // MARK: The outbox

    /// Leases queued e-mail, each message with what its e-mail says, read in
    /// the same transaction as the claim.
    func claim(_ request: Orgd_V1_ClaimOutboxRequest, _ context: CallContext) async throws -> Orgd_V1_ClaimOutboxResponse {
        let mailer = try Validation.text(request.mailerID, field: "mailer_id")
        guard (0...1000).contains(request.maxMessages) else { throw RPCError.invalidArgument(field: "max_messages", "must be 0 (meaning 100) to 1000") }
        guard (0...86_400).contains(request.leaseSeconds) else { throw RPCError.invalidArgument(field: "lease_seconds", "must be 0 (the default) to 86400") }
        let limit = request.maxMessages == 0 ? 100 : Int(request.maxMessages)
        let lease = TimeInterval(request.leaseSeconds == 0 ? policy.defaultLeaseSeconds : Int(request.leaseSeconds))
        let retry = policy.outboxRetry
        let (response, gaveUp) = try await store.write { tx in
            let (messages, gaveUp) = try tx.claimOutbox(mailer: mailer, limit: limit, lease: lease, retry: retry)
            var response = Orgd_V1_ClaimOutboxResponse()
            response.messages = messages.map { OutboxMail.message($0, inviter: OutboxMail.inviter($0.invitation.invitedBy, in: tx)) }
            return (response, gaveUp)
        }
        // Counted once committed: the write has returned.
        metrics.deliveryFailed.increment(by: Int64(gaveUp))
        return response
    }

    /// A failed delivery counts an attempt: retried after the backoff, or,
    /// at the last attempt, the invitation is marked delivery failed.
    func acknowledge(_ request: Orgd_V1_AckOutboxRequest, _ context: CallContext) async throws -> Orgd_V1_AckOutboxResponse {
        let id = try Validation.id(request.id)
        let mailer = try Validation.text(request.mailerID, field: "mailer_id")
        let error = try Validation.text(request.error, field: "error", maximum: 2000, required: false)
        let retry = policy.outboxRetry
        let outcome = try await store.write { tx in
            try tx.acknowledgeOutbox(id: id, mailer: mailer, delivered: request.delivered, error: error, retry: retry)
        }
        var response = Orgd_V1_AckOutboxResponse()
        switch outcome {
        case .delivered:
            break
        case .retrying(let next):
            metrics.retries.increment()
            response.retrying = true
            response.nextAttemptTime = Google_Protobuf_Timestamp(next)
        case .gaveUp:
            metrics.deliveryFailed.increment()
        }
        return response
    }
}

/// The outbox's counters: failed deliveries that will be retried, and
/// invitations given up on (marked delivery failed). Each counts a
/// committed change only.
struct OutboxMetrics: Sendable {
    let retries: Counter
    let deliveryFailed: Counter

    init(factory: any MetricsFactory) {
        retries = Counter(label: "orgd_outbox_retries_total", dimensions: [], factory: factory)
        deliveryFailed = Counter(label: "orgd_invitations_delivery_failed_total", dimensions: [], factory: factory)
    }
}

/// What an invitation e-mail says, for the mailer's template.
enum OutboxMail {
    /// Seed 003's user types, as the e-mail names the role.
    static func roleName(_ role: InvitedRole) -> String {
        switch role {
        case .agent: "Professional"
        case .membershipManager: "Team Coordinator"
        }
    }

    /// Who the e-mail says invites: the user a service acted for when there
    /// is one (the person who asked), else the principal that sent it, named
    /// as it is now. A principal that cannot be found keeps its id, no name.
    static func inviter(_ stored: String, in tx: StoreTransaction) -> Orgd_V1_OutboxInviter {
        let actor = StoredActor(stored)
        var inviter = Orgd_V1_OutboxInviter()
        if !actor.actingFor.isEmpty {
            inviter.id = actor.actingFor
            inviter.kind = .user
        } else {
            inviter.id = actor.id
            inviter.kind = actor.kind
        }
        switch inviter.kind {
        case .user:
            if let user = try? tx.user(id: inviter.id) {
                inviter.displayName = [user.title, user.givenName, user.familyName].filter { !$0.isEmpty }.joined(separator: " ")
            }
        case .serviceAccount:
            if let account = try? tx.serviceAccount(id: inviter.id) { inviter.displayName = account.name }
        case .localOperator:
            inviter.displayName = "orgd operator"
        case .unspecified, .UNRECOGNIZED:
            break
        }
        return inviter
    }

    static func message(_ record: OutboxMessageRecord, inviter: Orgd_V1_OutboxInviter) -> Orgd_V1_OutboxMessage {
        var proto = Orgd_V1_OutboxMessage()
        proto.id = record.id
        proto.recipient = record.recipient
        proto.template = record.template
        proto.organizationID = record.organizationID
        proto.invitationID = record.invitationID
        proto.token = record.token
        proto.attempts = Int32(clamping: record.attempts)
        if let expire = record.leaseExpireTime { proto.leaseExpireTime = Google_Protobuf_Timestamp(expire) }
        proto.organization.id = record.organizationID
        proto.organization.name = record.organizationName
        proto.inviter = inviter
        let invitation = record.invitation
        proto.invitee.email = invitation.email
        proto.invitee.title = invitation.title
        proto.invitee.givenName = invitation.givenName
        proto.invitee.familyName = invitation.familyName
        proto.role = invitation.role == .agent ? .agent : .membershipManager
        proto.roleName = roleName(invitation.role)
        proto.expireTime = Google_Protobuf_Timestamp(invitation.expireTime)
        return proto
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
        case .deliveryFailed: self = .deliveryFailed
        case .unspecified, .UNRECOGNIZED:
            throw RPCError.invalidArgument(field: field, "one of pending, accepted, declined, withdrawn, expired, delivery_failed")
        }
    }

    var proto: Orgd_V1_InvitationStatus {
        switch self {
        case .pending: .pending
        case .accepted: .accepted
        case .declined: .declined
        case .withdrawn: .withdrawn
        case .expired: .expired
        case .deliveryFailed: .deliveryFailed
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
        let inviter = StoredActor(invitedBy)
        message.invitedBy = inviter.id
        message.invitedByKind = inviter.kind
        message.invitedByActingFor = inviter.actingFor
        message.createTime = Google_Protobuf_Timestamp(createTime)
        message.lastSentTime = Google_Protobuf_Timestamp(lastSentTime)
        message.expireTime = Google_Protobuf_Timestamp(expireTime)
        message.sendCount = Int32(clamping: sendCount)
        if let respondTime { message.respondTime = Google_Protobuf_Timestamp(respondTime) }
        message.lastDeliveryError = lastDeliveryError ?? ""
        if let deliveryFailedTime { message.deliveryFailedTime = Google_Protobuf_Timestamp(deliveryFailedTime) }
        return message
    }
}
