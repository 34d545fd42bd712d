import Foundation
import OrgdCore
import OrgdProto
import Testing

/// Invitation rules, with the clock moved by hand: expiry, quotas and leases
/// are tested without sleeping.
@Suite("InvitationService rules")
struct InvitationServiceTests {
    static func inviteRequest(_ organization: String, _ email: String = "jock.jones@mydomain.com", role: String = "PKB_TEAM_PRO", days: Int32 = 0) -> Orgd_V1_InviteMemberRequest {
        var request = Orgd_V1_InviteMemberRequest()
        request.organizationID = organization
        request.title = "Mr"
        request.givenName = "Jock"
        request.familyName = "Jones"
        request.email = email
        request.role = role
        request.expiresInDays = days
        return request
    }

    static func invite(_ harness: Harness, _ request: Orgd_V1_InviteMemberRequest, as caller: Harness.Caller = .local) async throws -> Orgd_V1_InviteMemberResponse {
        try await harness.client(as: caller).invitations.inviteMember(request)
    }

    /// Claims everything queued, as a mailer would, and acknowledges it delivered.
    static func deliverAll(_ harness: Harness, mailer: String = "mailer-1") async throws -> [Orgd_V1_OutboxMessage] {
        var claim = Orgd_V1_ClaimOutboxRequest()
        claim.mailerID = mailer
        let messages = try await harness.client().invitations.claimOutbox(claim)
        for message in messages.messages {
            var ack = Orgd_V1_AckOutboxRequest()
            ack.id = message.id
            ack.mailerID = mailer
            ack.delivered = true
            _ = try await harness.client().invitations.ackOutbox(ack)
        }
        return messages.messages
    }

    static func accept(_ harness: Harness, _ token: String) async throws -> Orgd_V1_AcceptInvitationResponse {
        var request = Orgd_V1_AcceptInvitationRequest()
        request.token = token
        return try await harness.client().invitations.acceptInvitation(request)
    }

    static func get(_ harness: Harness, _ id: String) async throws -> Orgd_V1_Invitation {
        var request = Orgd_V1_GetInvitationRequest()
        request.id = id
        return try await harness.client().invitations.getInvitation(request)
    }

    @Test("seed 003: 'Invitation sent' and the invitee's UUID; an unknown e-mail becomes an invited user; the role alias maps")
    func inviteReply() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let response = try await Self.invite(harness, Self.inviteRequest(team.id, role: "PKB_TEAM_COORD"))
        #expect(response.message == "Invitation sent")
        #expect(UUID(uuidString: response.id) != nil && !response.reinvited)
        #expect(response.invitation.role == .membershipManager && response.invitation.status == .pending)
        #expect(response.invitation.expireTime.date == harness.clock.addingTimeInterval(7 * 86_400))
        var get = Orgd_V1_GetUserRequest()
        get.id = response.id
        let user = try await harness.client().memberships.getUser(get)
        #expect(user.status == .invited && user.email == "jock.jones@mydomain.com" && user.givenName == "Jock")
        let mail = try await Self.deliverAll(harness)
        #expect(mail.count == 1 && mail[0].recipient == "jock.jones@mydomain.com" && mail[0].template == "invite-team-member")
        #expect(mail[0].token.hasPrefix("inv_") && mail[0].token.count >= 40)
    }

    static let invalid: [(String, @Sendable (inout Orgd_V1_InviteMemberRequest) -> Void)] = [
        ("title", { $0.title = "" }), ("given_name", { $0.givenName = " " }), ("family_name", { $0.familyName = "" }),
        ("email", { $0.email = "not-an-email" }), ("role", { $0.role = "" }), ("role", { $0.role = "PKB_TEAM_BOSS" }),
        ("expires_in_days", { $0.expiresInDays = 31 }), ("expires_in_days", { $0.expiresInDays = -1 }),
    ]

    @Test("every field is mandatory and checked, the failing one named; nothing is written", arguments: invalid.indices)
    func invalidInvite(index: Int) async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        var request = Self.inviteRequest(team.id)
        Self.invalid[index].1(&request)
        let error = await rpcError { _ = try await Self.invite(harness, request) }
        #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == Self.invalid[index].0)
        #expect(try await Self.deliverAll(harness).isEmpty)
    }

    @Test("re-inviting keeps the invitation and invitee ids, sends a fresh token, and kills the old one")
    func reinvite() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let first = try await Self.invite(harness, Self.inviteRequest(team.id))
        let firstMail = try await Self.deliverAll(harness)
        harness.advance(by: 3600)
        let second = try await Self.invite(harness, Self.inviteRequest(team.id, "JOCK.JONES@mydomain.com"))
        #expect(second.reinvited && second.id == first.id && second.invitation.id == first.invitation.id)
        #expect(second.invitation.sendCount == 2 && second.invitation.expireTime.date == harness.clock.addingTimeInterval(7 * 86_400))
        let secondMail = try await Self.deliverAll(harness)
        #expect(secondMail.count == 1 && secondMail[0].token != firstMail[0].token)
        let old = await rpcError { _ = try await Self.accept(harness, firstMail[0].token) }
        #expect(old?.code == .failedPrecondition && old?.message.contains("replaced") == true)
        _ = try await Self.accept(harness, secondMail[0].token)
    }

    @Test("inviting an existing member is ALREADY_EXISTS; a deactivated organisation refuses")
    func refusals() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let member = try await harness.createUser("member@clinic.org")
        _ = try await harness.addStaff(team.id, member.id)
        #expect(await rpcError { _ = try await Self.invite(harness, Self.inviteRequest(team.id, "MEMBER@clinic.org")) }?.code == .alreadyExists)
        var deactivate = Orgd_V1_DeactivateOrganizationRequest()
        deactivate.id = team.id
        _ = try await harness.client().organizations.deactivateOrganization(deactivate)
        #expect(await rpcError { _ = try await Self.invite(harness, Self.inviteRequest(team.id)) }?.code == .failedPrecondition)
    }

    @Test("accepting activates the user and makes them staff with the role, atomically; the token is single use")
    func accept() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let invited = try await Self.invite(harness, Self.inviteRequest(team.id))
        let token = try await Self.deliverAll(harness)[0].token
        let accepted = try await Self.accept(harness, token)
        #expect(accepted.invitation.status == .accepted && accepted.invitation.hasRespondTime)
        #expect(accepted.membership.userID == invited.id && accepted.membership.roles == [.agent] && accepted.membership.isPrimary)
        #expect(accepted.membership.user.status == .active)
        let again = await rpcError { _ = try await Self.accept(harness, token) }
        #expect(again?.code == .failedPrecondition && again?.message == "this invitation was already accepted")
        var decline = Orgd_V1_DeclineInvitationRequest()
        decline.token = token
        #expect(await rpcError { _ = try await harness.client().invitations.declineInvitation(decline) }?.code == .failedPrecondition)
    }

    @Test("declining records it, creates no membership, and the token dies")
    func decline() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        _ = try await Self.invite(harness, Self.inviteRequest(team.id))
        let token = try await Self.deliverAll(harness)[0].token
        var decline = Orgd_V1_DeclineInvitationRequest()
        decline.token = token
        let declined = try await harness.client().invitations.declineInvitation(decline)
        #expect(declined.status == .declined)
        #expect(try await harness.listStaff(team.id).totalCount == 0)
        #expect(await rpcError { _ = try await Self.accept(harness, token) }?.message == "this invitation was already declined")
    }

    @Test("an unknown token is NOT_FOUND and says nothing about anyone")
    func unknownToken() async throws {
        let harness = try await Harness()
        let error = await rpcError { _ = try await Self.accept(harness, "inv_nothing") }
        #expect(error?.code == .notFound && error?.message == "this invitation token is not valid")
    }

    @Test("withdrawing kills the token and cancels unsent mail; only pending invitations can be withdrawn")
    func withdraw() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let invited = try await Self.invite(harness, Self.inviteRequest(team.id))
        var claim = Orgd_V1_ClaimOutboxRequest()
        claim.mailerID = "slow-mailer"
        let leased = try await harness.client().invitations.claimOutbox(claim)
        var withdraw = Orgd_V1_WithdrawInvitationRequest()
        withdraw.id = invited.invitation.id
        let withdrawn = try await harness.client().invitations.withdrawInvitation(withdraw)
        #expect(withdrawn.status == .withdrawn)
        #expect(await rpcError { _ = try await Self.accept(harness, leased.messages[0].token) }?.message == "this invitation was withdrawn")
        // The mailer still holding the e-mail learns it was cancelled.
        var ack = Orgd_V1_AckOutboxRequest()
        ack.id = leased.messages[0].id
        ack.mailerID = "slow-mailer"
        ack.delivered = true
        #expect(await rpcError { _ = try await harness.client().invitations.ackOutbox(ack) }?.code == .failedPrecondition)
        #expect(await rpcError { _ = try await harness.client().invitations.withdrawInvitation(withdraw) }?.code == .failedPrecondition)
    }

    @Test("expiry by the clock: expired shows without any job, the link fails, re-inviting revives the same invitation")
    func expiry() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let invited = try await Self.invite(harness, Self.inviteRequest(team.id, days: 2))
        let token = try await Self.deliverAll(harness)[0].token
        harness.advance(by: 2 * 86_400 - 1)
        #expect(try await Self.get(harness, invited.invitation.id).status == .pending)
        harness.advance(by: 1)
        #expect(try await Self.get(harness, invited.invitation.id).status == .expired)
        var list = Orgd_V1_ListInvitationsRequest()
        list.organizationID = team.id
        list.status = .expired
        let expired = try await harness.client().invitations.listInvitations(list)
        #expect(expired.invitations.map(\.id) == [invited.invitation.id])
        list.status = .pending
        let pending = try await harness.client().invitations.listInvitations(list)
        #expect(pending.invitations.isEmpty)
        #expect(await rpcError { _ = try await Self.accept(harness, token) }?.message.contains("expired") == true)
        let revived = try await Self.invite(harness, Self.inviteRequest(team.id))
        #expect(revived.reinvited && revived.invitation.id == invited.invitation.id && revived.invitation.status == .pending)
        _ = try await Self.accept(harness, try await Self.deliverAll(harness)[0].token)
    }

    @Test("resend: a new token and expiry, the old token dead; past the quota RESOURCE_EXHAUSTED until a day passes")
    func resendAndQuota() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let invited = try await Self.invite(harness, Self.inviteRequest(team.id))
        var tokens = [try await Self.deliverAll(harness)[0].token]
        var resend = Orgd_V1_ResendInvitationRequest()
        resend.id = invited.invitation.id
        for _ in 0..<4 {
            harness.advance(by: 60)
            let sent = try await harness.client().invitations.resendInvitation(resend)
            #expect(sent.id == invited.invitation.id)
            tokens.append(try await Self.deliverAll(harness)[0].token)
        }
        #expect(Set(tokens).count == 5)
        let over = await rpcError { _ = try await harness.client().invitations.resendInvitation(resend) }
        #expect(over?.code == .resourceExhausted)
        harness.advance(by: 86_400)
        _ = try await harness.client().invitations.resendInvitation(resend)
        let latest = try await Self.deliverAll(harness)[0].token
        for old in tokens { #expect(await rpcError { _ = try await Self.accept(harness, old) }?.message.contains("replaced") == true) }
        _ = try await Self.accept(harness, latest)
    }

    @Test("the outbox: a lease hides a message from other mailers until it runs out; only the holder acknowledges")
    func outboxLeases() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        _ = try await Self.invite(harness, Self.inviteRequest(team.id))
        var claim = Orgd_V1_ClaimOutboxRequest()
        claim.mailerID = "a"
        claim.leaseSeconds = 60
        let first = try await harness.client().invitations.claimOutbox(claim)
        #expect(first.messages.count == 1 && first.messages[0].attempts == 1)
        claim.mailerID = "b"
        let none = try await harness.client().invitations.claimOutbox(claim)
        #expect(none.messages.isEmpty)
        var ack = Orgd_V1_AckOutboxRequest()
        ack.id = first.messages[0].id
        ack.mailerID = "b"
        ack.delivered = true
        #expect(await rpcError { _ = try await harness.client().invitations.ackOutbox(ack) }?.code == .failedPrecondition)
        harness.advance(by: 61)
        let retaken = try await harness.client().invitations.claimOutbox(claim)
        #expect(retaken.messages.map(\.id) == first.messages.map(\.id) && retaken.messages[0].attempts == 2)
        ack.mailerID = "a"
        #expect(await rpcError { _ = try await harness.client().invitations.ackOutbox(ack) }?.code == .failedPrecondition)
        ack.mailerID = "b"
        _ = try await harness.client().invitations.ackOutbox(ack)
        harness.advance(by: 3600)
        let after = try await harness.client().invitations.claimOutbox(claim)
        #expect(after.messages.isEmpty, "a delivered message is never handed out again")
    }

    @Test("bulk invite answers each row on its own: sent, re-sent, already a member, invalid")
    func bulk() async throws {
        let harness = try await Harness()
        let team = try await harness.createOrganization("Team")
        let member = try await harness.createUser("member@clinic.org")
        _ = try await harness.addStaff(team.id, member.id)
        _ = try await Self.invite(harness, Self.inviteRequest(team.id, "pending@clinic.org"))
        var request = Orgd_V1_BulkInviteMembersRequest()
        request.organizationID = team.id
        request.invitees = [
            Self.inviteRequest(team.id, "new@clinic.org"), Self.inviteRequest(team.id, "pending@clinic.org"),
            Self.inviteRequest(team.id, "member@clinic.org"), Self.inviteRequest(team.id, "bad address"),
            Self.inviteRequest(team.id, "another@clinic.org", role: "agent"),
        ]
        let response = try await harness.client().invitations.bulkInviteMembers(request)
        #expect(response.results.map(\.outcome) == [.sent, .resent, .alreadyMember, .invalid, .sent])
        #expect(response.results[3].error.hasPrefix("email:"))
        #expect(response.results.filter { $0.outcome == .sent }.allSatisfy { UUID(uuidString: $0.id) != nil })
        // The re-send cancelled the first, still unsent, e-mail to pending@: one mail each.
        #expect(try await Self.deliverAll(harness).map(\.recipient).sorted() == ["another@clinic.org", "new@clinic.org", "pending@clinic.org"])
    }

    @Test("a membership manager invites to their own organisation only; an agent cannot invite")
    func whoInvites() async throws {
        let harness = try await Harness()
        let mine = try await harness.createOrganization("Mine")
        let theirs = try await harness.createOrganization("Theirs")
        let manager = try await harness.userToken(role: .none)
        let agent = try await harness.userToken(role: .none)
        _ = try await harness.addStaff(mine.id, manager.user.id, roles: [.membershipManager])
        _ = try await harness.addStaff(mine.id, agent.user.id, roles: [.agent])
        let response = try await Self.invite(harness, Self.inviteRequest(mine.id), as: .token(manager.secret))
        #expect(response.invitation.invitedBy == manager.user.id && response.invitation.invitedByKind == .user)
        #expect(await rpcError { _ = try await Self.invite(harness, Self.inviteRequest(theirs.id), as: .token(manager.secret)) }?.code == .permissionDenied)
        #expect(await rpcError { _ = try await Self.invite(harness, Self.inviteRequest(mine.id, "x@y.org"), as: .token(agent.secret)) }?.code == .permissionDenied)
    }
}
