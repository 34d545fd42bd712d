import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import SwiftProtobuf
import Testing

@Suite("InvitationService end to end")
struct InvitationEndToEndTests {
    static func inviteRequest(_ organization: String, _ email: String, role: String = "agent") -> Orgd_V1_InviteMemberRequest {
        var request = Orgd_V1_InviteMemberRequest()
        request.organizationID = organization
        request.title = "Dr"
        request.givenName = "Dana"
        request.familyName = "Scully"
        request.email = email
        request.role = role
        return request
    }

    @Test("the full life: a manager invites, a mailer delivers, the invitee accepts with orgctl and lands in the organisation")
    func fullLife() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let invited = try await world.managerClient.invitations.inviteMember(Self.inviteRequest(world.organization.id, "dana@fbi.example", role: "PKB_TEAM_PRO"))
            #expect(invited.message == "Invitation sent")

            let mailer = try await world.daemon.serviceToken(role: .none, name: "mailer", mailer: true)
            let mailerClient = try await world.daemon.client(world.daemon.tcp, token: mailer.secret)
            var claim = Orgd_V1_ClaimOutboxRequest()
            claim.mailerID = "mailer-1"
            let mail = try await mailerClient.invitations.claimOutbox(claim)
            #expect(mail.messages.count == 1 && mail.messages[0].recipient == "dana@fbi.example")
            var ack = Orgd_V1_AckOutboxRequest()
            ack.id = mail.messages[0].id
            ack.mailerID = "mailer-1"
            ack.delivered = true
            _ = try await mailerClient.invitations.ackOutbox(ack)

            let accepted = try await Subprocess.run("orgctl", ["invite", "accept", "--token", mail.messages[0].token, "--socket", world.daemon.bound.unixSocketPath!])
            #expect(accepted.status == 0 && accepted.stdout.hasPrefix("accepted: user \(invited.id)"), "\(accepted.stdout)\(accepted.stderr)")

            var list = Orgd_V1_ListInvitationsRequest()
            list.organizationID = world.organization.id
            let invitations = try await world.managerClient.invitations.listInvitations(list)
            #expect(invitations.invitations.map(\.status) == [.accepted])
            #expect(invitations.invitations[0].invitedBy == world.manager.id && invitations.invitations[0].invitedByKind == .user)

            // The new member, now active, lands in the organisation and, as an
            // agent, can be allowed by a consent.
            let token = try await MembershipEndToEndTests.token(world.local, user: invited.id)
            let newcomer = try await world.daemon.client(world.daemon.tcp, token: token)
            let mine = try await newcomer.memberships.listMyOrganizations()
            #expect(mine.primaryOrganizationID == world.organization.id && mine.asStaff.first?.roles == [.agent])
            var newcomerUser = Orgd_V1_GetUserRequest()
            newcomerUser.id = try await newcomer.memberships.getProfile().id
            #expect(try await newcomer.memberships.getUser(newcomerUser).status == .active)
            let study = try await world.request("Study", [world.bloodPressure], kind: .agency)
            try await world.ask(study)
            try await world.answer(study, [(world.bloodPressure, true)])
            #expect(try await world.check(agent: invited.id, world.bloodPressure).allowed)
            for client in [mailerClient, newcomer] { await client.close() }
        }
    }

    @Test("two mailers claiming concurrently never get the same message, and together get every one")
    func concurrentMailers() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(local, "Big Ward")
            var bulk = Orgd_V1_BulkInviteMembersRequest()
            bulk.organizationID = organization.id
            bulk.invitees = (0..<60).map { Self.inviteRequest(organization.id, "person\($0)@ward.example") }
            #expect(try await local.invitations.bulkInviteMembers(bulk).results.allSatisfy { $0.outcome == .sent })
            let mailers = try await (daemon.client(), daemon.client())
            func drain(_ client: OrgdClient, _ name: String) async throws -> [String] {
                var claimed: [String] = []
                while true {
                    var claim = Orgd_V1_ClaimOutboxRequest()
                    claim.mailerID = name
                    claim.maxMessages = 7
                    let batch = try await client.invitations.claimOutbox(claim).messages
                    if batch.isEmpty { return claimed }
                    claimed += batch.map(\.id)
                }
            }
            async let first = drain(mailers.0, "mailer-a")
            async let second = drain(mailers.1, "mailer-b")
            let (a, b) = try await (first, second)
            #expect(Set(a).isDisjoint(with: b), "no message claimed twice")
            #expect(Set(a).union(b).count == 60 && a.count + b.count == 60)
            for client in [local, mailers.0, mailers.1] { await client.close() }
        }
    }
}
