import ArgumentParser
import Foundation
import OrgdClient
import OrgdProto

struct Invite: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Invite people to an organisation, follow invitations up, and answer them.",
        subcommands: [Send.self, Bulk.self, List.self, Get.self, Resend.self, Withdraw.self, Accept.self, Decline.self]
    )

    static let statuses: [String: Orgd_V1_InvitationStatus] = [
        "pending": .pending, "accepted": .accepted, "declined": .declined, "withdrawn": .withdrawn, "expired": .expired,
        "delivery_failed": .deliveryFailed,
    ]

    static func inviter(_ invitation: Orgd_V1_Invitation) -> String {
        Names.actor(invitation.invitedBy, invitation.invitedByKind, actingFor: invitation.invitedByActingFor)
    }

    static func show(_ invitation: Orgd_V1_Invitation, format: OutputFormat) throws {
        if format != .table { return try Output.emit(invitation, format) }
        Output.fields([
            ("invitation", invitation.id), ("invitee", invitation.inviteeUserID), ("email", invitation.email),
            ("role", invitation.role == .agent ? "agent" : "membership_manager"),
            ("status", Names.name(invitation.status, in: statuses)), ("sent", "\(invitation.sendCount) time(s), last \(Output.time(invitation.lastSentTime))"),
            ("expires", Output.time(invitation.expireTime)), ("invited by", inviter(invitation)),
        ] + (invitation.lastDeliveryError.isEmpty ? [] : [("delivery error", invitation.lastDeliveryError)]))
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Invite (or re-invite) a person by e-mail.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "E-mail address.") var email: String
        @Option(help: "Title, e.g. Mr or Dr.") var title: String
        @Option(help: "Given name.") var givenName: String
        @Option(help: "Family name.") var familyName: String
        @Option(help: "agent or membership_manager (PKB_TEAM_PRO, PKB_TEAM_COORD accepted).") var role: String
        @Option(help: "1 to 30 days (default: the server's).") var expiresInDays: Int32 = 0

        func run() async throws {
            var request = Orgd_V1_InviteMemberRequest()
            request.organizationID = organization
            request.email = email
            request.title = title
            request.givenName = givenName
            request.familyName = familyName
            request.role = role
            request.expiresInDays = expiresInDays
            try await connection.run { client in
                let response = try await client.invitations.inviteMember(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                print("\(response.message)\(response.reinvited ? " (again)" : ""): invitee \(response.id)")
                try Invite.show(response.invitation, format: .table)
            }
        }
    }

    struct Bulk: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Invite many people; each row is answered on its own.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "EMAIL,TITLE,GIVEN,FAMILY,ROLE; repeat for more.") var row: [String]

        func run() async throws {
            var request = Orgd_V1_BulkInviteMembersRequest()
            request.organizationID = organization
            request.invitees = try row.map { text in
                // Spaces after the commas are the CSV's layout, not the names'.
                let parts = text.split(separator: ",", omittingEmptySubsequences: false)
                    .map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 5 else { throw ValidationError("--row must be EMAIL,TITLE,GIVEN,FAMILY,ROLE, not \(text)") }
                var invitee = Orgd_V1_InviteMemberRequest()
                invitee.email = parts[0]
                invitee.title = parts[1]
                invitee.givenName = parts[2]
                invitee.familyName = parts[3]
                invitee.role = parts[4]
                return invitee
            }
            var failedRows: Int?
            try await connection.run { client in
                let response = try await client.invitations.bulkInviteMembers(request, options: connection.callOptions)
                let failed = response.results.filter { $0.outcome == .invalid }.count
                if failed > 0 { failedRows = failed }
                if connection.output != .table { return try Output.emit(response, connection.output) }
                let outcomes: [Orgd_V1_BulkInviteResult.Outcome: String] = [.sent: "sent", .resent: "re-sent", .alreadyMember: "already a member", .invalid: "invalid"]
                Output.table(["EMAIL", "OUTCOME", "INVITEE", "ERROR"], response.results.map { [$0.email, outcomes[$0.outcome] ?? "?", $0.id, $0.error] })
            }
            // A script must not mistake a partial success for a whole one.
            if let failed = failedRows {
                FileHandle.standardError.write(Data("orgctl: \(failed) of \(row.count) rows were not sent (outcome invalid)\n".utf8))
                throw ExitCode(2)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "An organisation's invitations: who invited whom, and when.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "pending, accepted, declined, withdrawn, expired or delivery_failed.", completion: Names.completion(Invite.statuses)) var status: String?
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 0
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListInvitationsRequest()
            request.organizationID = organization
            if let status { request.status = try Names.parse(status, in: Invite.statuses, option: "--status") }
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.invitations.listInvitations(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["INVITATION", "EMAIL", "ROLE", "STATUS", "INVITED BY", "LAST SENT", "EXPIRES"], response.invitations.map {
                    [$0.id, $0.email, $0.role == .agent ? "agent" : "membership_manager", Names.name($0.status, in: Invite.statuses),
                     Invite.inviter($0), Output.time($0.lastSentTime), Output.time($0.expireTime)]
                })
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an invitation.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Invitation id.") var id: String

        func run() async throws {
            var request = Orgd_V1_GetInvitationRequest()
            request.id = id
            try await connection.run { client in
                try Invite.show(try await client.invitations.getInvitation(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Send again: a new link and expiry; the old link stops working.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Invitation id.") var id: String
        @Option(help: "Days until the new link expires.") var expiresInDays: Int32 = 0

        func run() async throws {
            var request = Orgd_V1_ResendInvitationRequest()
            request.id = id
            request.expiresInDays = expiresInDays
            try await connection.run { client in
                try Invite.show(try await client.invitations.resendInvitation(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Withdraw: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Withdraw a pending invitation; its link stops working.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Invitation id.") var id: String

        func run() async throws {
            var request = Orgd_V1_WithdrawInvitationRequest()
            request.id = id
            try await connection.run { client in
                try Invite.show(try await client.invitations.withdrawInvitation(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept an invitation with the token from its e-mail.")
        @OptionGroup var connection: EndpointOptions
        @Option(name: .customLong("token"), help: "The invitation token from the e-mail (inv_…). A bearer token, if needed, comes from ORGD_TOKEN.")
        var invitationToken: String

        func run() async throws {
            var request = Orgd_V1_AcceptInvitationRequest()
            request.token = invitationToken
            try await connection.run(token: nil) { client in
                let response = try await client.invitations.acceptInvitation(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                print("accepted: user \(response.membership.userID) joined organization \(response.membership.organizationID) as \(Names.roles(response.membership.roles))")
            }
        }
    }

    struct Decline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decline an invitation with the token from its e-mail.")
        @OptionGroup var connection: EndpointOptions
        @Option(name: .customLong("token"), help: "The invitation token from the e-mail (inv_…). A bearer token, if needed, comes from ORGD_TOKEN.")
        var invitationToken: String

        func run() async throws {
            var request = Orgd_V1_DeclineInvitationRequest()
            request.token = invitationToken
            try await connection.run(token: nil) { client in
                try Invite.show(try await client.invitations.declineInvitation(request, options: connection.callOptions), format: connection.output)
            }
        }
    }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The mail outbox, as a mailer service drains it.", subcommands: [Claim.self, Ack.self])

    struct Claim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lease queued e-mail to deliver.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "This mailer's name: its claims are leased to it.") var mailer: String
        @Option(help: "At most this many messages.") var max: Int32 = 10
        @Option(help: "How long the claim holds before another mailer may take the messages.") var leaseSeconds: Int32 = 0

        func run() async throws {
            var request = Orgd_V1_ClaimOutboxRequest()
            request.mailerID = mailer
            request.maxMessages = max
            request.leaseSeconds = leaseSeconds
            try await connection.run { client in
                let response = try await client.invitations.claimOutbox(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["MESSAGE", "TO", "INVITEE", "ORGANIZATION", "ROLE", "INVITED BY", "TEMPLATE", "TOKEN", "EXPIRES", "ATTEMPT"], response.messages.map {
                    [$0.id, $0.recipient, [$0.invitee.title, $0.invitee.givenName, $0.invitee.familyName].filter { !$0.isEmpty }.joined(separator: " "),
                     $0.organization.name, $0.roleName, $0.inviter.displayName, $0.template, $0.token, Output.time($0.expireTime), "\($0.attempts)"]
                })
            }
        }
    }

    struct Ack: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report an e-mail delivered, or failed with --error.",
            discussion: "A failure is retried after a backoff; at the server's most attempts the invitation becomes delivery_failed."
        )
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Outbox message id.") var id: String
        @Option(help: "This mailer's name: its claims are leased to it.") var mailer: String
        @Option(help: "Why delivery failed; without it the message counts as delivered.") var error: String?

        func run() async throws {
            var request = Orgd_V1_AckOutboxRequest()
            request.id = id
            request.mailerID = mailer
            request.delivered = error == nil
            request.error = error ?? ""
            try await connection.run { client in
                let response = try await client.invitations.ackOutbox(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                if error == nil {
                    print("delivered")
                } else if response.retrying {
                    print("failed; retried from \(Output.time(response.nextAttemptTime))")
                } else {
                    print("failed; no more attempts: the invitation is delivery_failed")
                }
            }
        }
    }
}
