import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdStore
import SwiftProtobuf
import Testing

/// The outbox as a mailer uses it (issue 13, item 9): a claimed message says
/// everything the e-mail needs, failed deliveries are retried with backoff
/// and then given up on, marking the invitation `delivery_failed`.
@Suite("The outbox a mailer can use")
struct OutboxTests {
    /// Two attempts, two seconds apart: small enough for a test, long enough
    /// that "not before the backoff" is seen on a loaded machine.
    static let retry = OutboxRetryPolicy(maximumAttempts: 2, baseDelay: 2, maximumDelay: 2)

    /// A daemon with `retry`, an organisation, a manager with a title, and a mailer.
    struct World {
        let daemon: TestDaemon
        let local: OrgdClient
        let organization: Orgd_V1_Organization
        let manager: Orgd_V1_User
        let managerClient: OrgdClient
        let mailer: OrgdClient

        func close() async {
            for client in [local, managerClient, mailer] { await client.close() }
        }

        func invite(_ email: String, as client: OrgdClient? = nil, role: String = "agent",
                    title: String = "Dr", given: String = "Dana", family: String = "Scully") async throws -> Orgd_V1_InviteMemberResponse {
            var request = InvitationEndToEndTests.inviteRequest(organization.id, email, role: role)
            request.title = title
            request.givenName = given
            request.familyName = family
            return try await (client ?? managerClient).invitations.inviteMember(request)
        }

        func claim(leaseSeconds: Int32 = 0) async throws -> [Orgd_V1_OutboxMessage] {
            var claim = Orgd_V1_ClaimOutboxRequest()
            claim.mailerID = "mailer-1"
            claim.leaseSeconds = leaseSeconds
            return try await mailer.invitations.claimOutbox(claim).messages
        }

        func fail(_ message: Orgd_V1_OutboxMessage, _ error: String = "550 5.1.1 mailbox unavailable") async throws -> Orgd_V1_AckOutboxResponse {
            var ack = Orgd_V1_AckOutboxRequest()
            ack.id = message.id
            ack.mailerID = "mailer-1"
            ack.delivered = false
            ack.error = error
            return try await mailer.invitations.ackOutbox(ack)
        }

        func invitation(_ id: String) async throws -> Orgd_V1_Invitation {
            var get = Orgd_V1_GetInvitationRequest()
            get.id = id
            return try await managerClient.invitations.getInvitation(get)
        }

        func list(_ status: Orgd_V1_InvitationStatus) async throws -> [String] {
            var list = Orgd_V1_ListInvitationsRequest()
            list.organizationID = organization.id
            list.status = status
            return try await managerClient.invitations.listInvitations(list).invitations.map(\.id)
        }

        /// A counter's value in the daemon's metrics (0 when not yet there).
        func counter(_ name: String) -> Int {
            daemon.registry.emitToString().split(separator: "\n")
                .first { $0.hasPrefix("\(name) ") }
                .flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
                .map { Int($0) } ?? 0
        }
    }

    static func withWorld(_ body: (World) async throws -> Void) async throws {
        var policy = InvitationPolicy()
        policy.outboxRetry = retry
        let daemon = try await TestDaemon.start(invitations: policy)
        do {
            let local = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(local, "X-Files Unit")
            var user = Orgd_V1_CreateUserRequest()
            user.email = "\(UUID().uuidString.prefix(12))@fbi.example"
            user.title = "Dr"
            user.givenName = "Fox"
            user.familyName = "Mulder"
            let manager = try await local.memberships.createUser(user)
            try await MembershipEndToEndTests.addStaff(local, organization.id, manager.id, [.membershipManager])
            let managerClient = try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: manager.id))
            let mailer = try await daemon.client(daemon.tcp, token: try await daemon.serviceToken(role: .none, name: "mailer", mailer: true).secret)
            let world = World(daemon: daemon, local: local, organization: organization, manager: manager, managerClient: managerClient, mailer: mailer)
            do {
                try await body(world)
            } catch {
                await world.close()
                throw error
            }
            await world.close()
        } catch {
            await daemon.stop()
            throw error
        }
        await daemon.stop()
    }

    @Test("a claimed message carries the organisation, the inviter's name, the invitee's title and names, the role in words, the token and the expiry — as they are at claim time")
    func messageCarriesTheEmail() async throws {
        try await Self.withWorld { world in
            let invited = try await world.invite("dana@fbi.example", role: "PKB_TEAM_COORD")
            let mail = try await world.claim()
            let message = try #require(mail.first)
            #expect(mail.count == 1)
            #expect(message.recipient == "dana@fbi.example" && message.template == "invite-team-member" && message.attempts == 1)
            #expect(message.organization.id == world.organization.id && message.organization.name == "X-Files Unit")
            #expect(message.inviter.id == world.manager.id && message.inviter.kind == .user && message.inviter.displayName == "Dr Fox Mulder")
            #expect(message.invitee.email == "dana@fbi.example" && message.invitee.title == "Dr")
            #expect(message.invitee.givenName == "Dana" && message.invitee.familyName == "Scully")
            #expect(message.role == .membershipManager && message.roleName == "Team Coordinator")
            #expect(message.expireTime == invited.invitation.expireTime && message.expireTime.seconds > Int64(Date().timeIntervalSince1970))
            #expect(message.invitationID == invited.invitation.id)
            // The token is the link's secret: it opens this invitation.
            #expect(message.token.hasPrefix("inv_"))

            // Inviting again with other names and role re-sends: the new
            // e-mail says what the invitation says now.
            _ = try await world.invite("dana@fbi.example", role: "agent", title: "Prof", given: "Danielle", family: "Scully-Mulder")
            let again = try #require(try await world.claim().first)
            #expect(again.template == "invite-team-member-reminder" && again.id != message.id && again.token != message.token)
            #expect(again.invitee.title == "Prof" && again.invitee.givenName == "Danielle" && again.invitee.familyName == "Scully-Mulder")
            #expect(again.role == .agent && again.roleName == "Professional")
        }
    }

    @Test("invited_by is a plain id with its kind: a user, a service account, a service acting for a user, the local operator; the e-mail names each")
    func invitedByIsPlain() async throws {
        try await Self.withWorld { world in
            let byManager = try await world.invite("a@fbi.example")
            #expect(byManager.invitation.invitedBy == world.manager.id && byManager.invitation.invitedByKind == .user)
            #expect(byManager.invitation.invitedByActingFor.isEmpty)

            let byLocal = try await world.invite("b@fbi.example", as: world.local)
            #expect(byLocal.invitation.invitedBy == "" && byLocal.invitation.invitedByKind == .localOperator)

            let portal = try await world.daemon.serviceToken(role: .admin, name: "HR portal")
            let portalClient = try await world.daemon.client(world.daemon.tcp, token: portal.secret)
            let byService = try await world.invite("c@fbi.example", as: portalClient)
            #expect(byService.invitation.invitedByKind == .serviceAccount && !byService.invitation.invitedBy.contains(":"))

            let app = try await world.daemon.serviceToken(role: .none, name: "rota app", mayActAs: true)
            let acting = try await OrgdClient.connect(to: world.daemon.tcp, token: app.secret, actAs: world.manager.id)
            let byActing = try await world.invite("d@fbi.example", as: acting)
            #expect(byActing.invitation.invitedByKind == .serviceAccount && !byActing.invitation.invitedBy.isEmpty)
            #expect(byActing.invitation.invitedByActingFor == world.manager.id && !byActing.invitation.invitedBy.contains(":"))
            #expect(byActing.invitation.invitedBy != byService.invitation.invitedBy)
            // Read back the same way, not only in the invite's answer.
            #expect(try await world.invitation(byService.invitation.id).invitedBy == byService.invitation.invitedBy)

            let inviters = Dictionary(uniqueKeysWithValues: try await world.claim().map { ($0.recipient, $0.inviter) })
            #expect(inviters["a@fbi.example"]?.displayName == "Dr Fox Mulder")
            #expect(inviters["b@fbi.example"].map { ($0.id, $0.kind, $0.displayName) } ?? ("?", .unspecified, "") == ("", .localOperator, "orgd operator"))
            #expect(inviters["c@fbi.example"].map { ($0.id, $0.kind, $0.displayName) } ?? ("?", .unspecified, "")
                == (byService.invitation.invitedBy, .serviceAccount, "HR portal"))
            // A service inviting on a user's behalf: the e-mail names the user.
            #expect(inviters["d@fbi.example"].map { ($0.id, $0.kind, $0.displayName) } ?? ("?", .unspecified, "")
                == (world.manager.id, .user, "Dr Fox Mulder"))
            for client in [portalClient, acting] { await client.close() }
        }
    }

    @Test("a failed delivery is retried after the backoff, counting attempts; at the last attempt the invitation is delivery_failed (listed, counted, no message left), still answerable, and a re-send makes it pending with a new message")
    func retryThenGiveUp() async throws {
        try await Self.withWorld { world in
            let resent = try await world.invite("bounce@fbi.example")
            let accepted = try await world.invite("late@fbi.example")
            let first = try await world.claim()
            #expect(first.map(\.attempts) == [1, 1])

            let beforeAck = Date()
            var next: [String: Date] = [:]
            for message in first {
                let answer = try await world.fail(message)
                #expect(answer.retrying)
                next[message.id] = answer.nextAttemptTime.date
                // base × 2^0 after the first failure
                #expect(answer.nextAttemptTime.date.timeIntervalSince(beforeAck) >= 2 - 0.01)
                #expect(answer.nextAttemptTime.date.timeIntervalSince(Date()) <= 2 + 0.01)
            }
            #expect(world.counter("orgd_outbox_retries_total") == 2)
            let retrying = try await world.invitation(resent.invitation.id)
            #expect(retrying.status == .pending && retrying.lastDeliveryError == "550 5.1.1 mailbox unavailable")

            // Not claimable before the backoff: whatever a claim that ended
            // before a message's next attempt time got is a failure. (On a
            // machine so loaded that the claim ends after it, as under TSan
            // with the whole suite at once, what it got is the retry itself.)
            let early = try await world.claim()
            let earlyEnded = Date()
            for message in early {
                #expect(earlyEnded >= next[message.id] ?? .distantFuture, "claimed before the backoff ran out")
            }
            try await Task.sleep(for: .seconds(max(0, next.values.max()!.timeIntervalSinceNow) + 0.2))
            let second = early.count < first.count ? early + (try await world.claim()) : early
            #expect(Set(second.map(\.id)) == Set(first.map(\.id)), "the same messages come back")
            #expect(second.map(\.attempts) == [2, 2])
            #expect(Set(second.map(\.token)) == Set(first.map(\.token)), "a retry carries the same link")

            for message in second {
                let answer = try await world.fail(message, "552 mailbox full")
                #expect(!answer.retrying && !answer.hasNextAttemptTime)
            }
            #expect(world.counter("orgd_outbox_retries_total") == 2, "the last failure is no retry")
            #expect(world.counter("orgd_invitations_delivery_failed_total") == 2)
            let failed = try await world.invitation(resent.invitation.id)
            #expect(failed.status == .deliveryFailed && failed.hasDeliveryFailedTime && failed.lastDeliveryError == "552 mailbox full")
            #expect(Set(try await world.list(.deliveryFailed)) == [resent.invitation.id, accepted.invitation.id])
            #expect(try await world.list(.pending).isEmpty)
            // No message is left, not even once any backoff has passed.
            try await Task.sleep(for: .seconds(2.2))
            #expect(try await world.claim().isEmpty)

            // A delivery_failed invitation is still answerable: the link works.
            var accept = Orgd_V1_AcceptInvitationRequest()
            accept.token = try #require(second.first { $0.invitationID == accepted.invitation.id }).token
            #expect(try await world.local.invitations.acceptInvitation(accept).invitation.status == .accepted)

            // A re-send: pending again, a new message from the first attempt.
            var resend = Orgd_V1_ResendInvitationRequest()
            resend.id = resent.invitation.id
            let again = try await world.managerClient.invitations.resendInvitation(resend)
            #expect(again.status == .pending && !again.hasDeliveryFailedTime && again.lastDeliveryError.isEmpty)
            #expect(try await world.list(.pending) == [resent.invitation.id])
            #expect(try await world.list(.deliveryFailed).isEmpty)
            let fresh = try await world.claim()
            #expect(fresh.count == 1 && fresh[0].invitationID == resent.invitation.id && fresh[0].attempts == 1)
            #expect(!first.map(\.id).contains(fresh[0].id) && !first.map(\.token).contains(fresh[0].token))
        }
    }

    @Test("a lease that runs out counts an attempt: after the last one, the next claim gives the message up instead of handing it out")
    func leaseRunsOut() async throws {
        try await Self.withWorld { world in
            let invited = try await world.invite("silent@fbi.example")
            #expect(try await world.claim(leaseSeconds: 1).map(\.attempts) == [1])
            try await Task.sleep(for: .seconds(1.2))
            // Back at once (no backoff): the mailer said nothing.
            #expect(try await world.claim(leaseSeconds: 1).map(\.attempts) == [2])
            try await Task.sleep(for: .seconds(1.2))
            #expect(try await world.claim().isEmpty)
            let failed = try await world.invitation(invited.invitation.id)
            #expect(failed.status == .deliveryFailed && failed.lastDeliveryError.contains("lease"))
            #expect(world.counter("orgd_invitations_delivery_failed_total") == 1)
        }
    }

    @Test("backoff is base × 2^(attempts − 1), capped")
    func backoff() {
        let policy = OutboxRetryPolicy(maximumAttempts: 5, baseDelay: 60, maximumDelay: 3600)
        #expect([1, 2, 3, 6, 7, 100, Int.max].map(policy.delay(afterAttempts:)) == [60, 120, 240, 1920, 3600, 3600, 3600])
    }

    @Test("orgd takes the outbox flags, and refuses a cap below the base")
    func flags() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let refused = try await Subprocess.run("orgd", ["--outbox-retry-base-seconds", "60", "--outbox-retry-max-seconds", "10", "--database", directory + "/x.sqlite"])
        #expect(refused.status != 0 && refused.stderr.contains("--outbox-retry-max-seconds"), "\(refused.stderr)")
        let zero = try await Subprocess.run("orgd", ["--outbox-max-attempts", "0", "--database", directory + "/x.sqlite"])
        #expect(zero.status != 0 && zero.stderr.contains("--outbox-max-attempts must be 1 to 100"), "\(zero.stderr)")

        // One attempt, so the first failure gives up: the flag reached the service.
        let daemon = try DaemonProcess(directory: directory, arguments: ["--outbox-max-attempts", "1", "--outbox-retry-base-seconds", "5", "--outbox-retry-max-seconds", "5"])
        _ = try await daemon.waitUntilListening(count: 1)
        let local = try await OrgdClient.connect(to: .unix(path: directory + "/orgd.sock"))
        let organization = try await MembershipEndToEndTests.organization(local, "Flag Ward")
        _ = try await local.invitations.inviteMember(InvitationEndToEndTests.inviteRequest(organization.id, "f@fbi.example"))
        var claim = Orgd_V1_ClaimOutboxRequest()
        claim.mailerID = "m"
        let message = try #require(try await local.invitations.claimOutbox(claim).messages.first)
        var ack = Orgd_V1_AckOutboxRequest()
        ack.id = message.id
        ack.mailerID = "m"
        #expect(try await local.invitations.ackOutbox(ack).retrying == false)
        var list = Orgd_V1_ListInvitationsRequest()
        list.organizationID = organization.id
        #expect(try await local.invitations.listInvitations(list).invitations.map(\.status) == [.deliveryFailed])
        await local.close()
        #expect(try await daemon.stop() == 0)
    }
}
