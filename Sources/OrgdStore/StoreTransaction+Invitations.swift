import Foundation
import OrgdCore

/// What an invitation is made of; already validated by the caller.
public struct NewInvitation: Sendable {
    public var organizationID: String
    public var email: String
    public var title: String
    public var givenName: String
    public var familyName: String
    public var role: InvitedRole
    public var lifetime: TimeInterval
    /// The principal sending it, for the record.
    public var invitedBy: String
    public init(organizationID: String, email: String, title: String, givenName: String, familyName: String,
                role: InvitedRole, lifetime: TimeInterval, invitedBy: String) {
        self.organizationID = organizationID
        self.email = email
        self.title = title
        self.givenName = givenName
        self.familyName = familyName
        self.role = role
        self.lifetime = lifetime
        self.invitedBy = invitedBy
    }
}

/// The outcome of an invite: a new invitation, or a pending one sent again.
public struct InviteResult: Sendable {
    public var invitation: InvitationRecord
    public var reinvited: Bool
}

extension StoreTransaction {
    static let inviteTemplate = "invite-team-member"
    static let resendTemplate = "invite-team-member-reminder"

    /// Invites a person by e-mail (seed 003's $invite-team-member). An unknown
    /// e-mail creates a user in status `invited`. A pending invitation (even an
    /// expired one) to the same organisation is re-sent — same invitation and
    /// invitee, fresh token and expiry — rather than duplicated.
    public func invite(_ new: NewInvitation, maximumSendsPerDay: Int) throws -> InviteResult {
        let organization = try RPCError.referenced(from: "organization_id") { try self.organization(id: new.organizationID) }
        guard organization.active else {
            throw RPCError(.failedPrecondition, "organization \(organization.id) is deactivated and takes no new members")
        }
        let invitee: UserRecord
        if let existing = try user(email: new.email) {
            guard existing.status != .disabled else {
                throw RPCError(.failedPrecondition, "email: the user with this address is disabled",
                               fieldViolations: [.init(field: "email", description: "the user is disabled")])
            }
            invitee = existing
        } else {
            invitee = try createUser(NewUser(email: new.email, title: new.title, givenName: new.givenName,
                                             familyName: new.familyName, systemRole: .none, status: .invited))
        }
        if try fetchOne("SELECT 1 FROM organization_staff_member WHERE organization_id = ? AND user_id = ?", [organization.id, invitee.id]) != nil {
            throw RPCError(.alreadyExists, "\(new.email) is already a member of organization \(organization.id)")
        }
        if let pending = try fetchOne(
            "SELECT id FROM invitation WHERE organization_id = ? AND invitee_user_id = ? AND status = 'pending'", [organization.id, invitee.id]
        ) {
            let id: String = pending["id"]
            try execute(
                "UPDATE invitation SET title = ?, given_name = ?, family_name = ?, role = ? WHERE id = ?",
                [new.title, new.givenName, new.familyName, new.role.rawValue, id]
            )
            return InviteResult(invitation: try send(invitationID: id, lifetime: new.lifetime, maximumSendsPerDay: maximumSendsPerDay, template: Self.resendTemplate), reinvited: true)
        }
        let id = UUID().uuidString.lowercased()
        try execute(
            """
            INSERT INTO invitation (id, organization_id, invitee_user_id, email, title, given_name, family_name, role, status,
              invited_by, create_time, last_sent_time, expire_time, send_count)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, 0)
            """,
            [id, organization.id, invitee.id, invitee.email, new.title, new.givenName, new.familyName, new.role.rawValue,
             new.invitedBy, now.storedMicros, now.storedMicros, now.storedMicros]
        )
        return InviteResult(invitation: try send(invitationID: id, lifetime: new.lifetime, maximumSendsPerDay: maximumSendsPerDay, template: Self.inviteTemplate), reinvited: false)
    }

    /// Sends a pending invitation again: a new token and expiry, the old token
    /// dead, any unsent e-mail with the old token cancelled.
    public func resendInvitation(id: String, lifetime: TimeInterval, maximumSendsPerDay: Int) throws -> InvitationRecord {
        let invitation = try invitation(id: id)
        guard invitation.storedStatus == .pending else {
            throw RPCError(.failedPrecondition, "invitation \(id) is \(invitation.storedStatus.rawValue); only a pending (or expired) invitation can be re-sent")
        }
        return try send(invitationID: id, lifetime: lifetime, maximumSendsPerDay: maximumSendsPerDay, template: Self.resendTemplate)
    }

    /// Withdraws a pending invitation: its token dies and unsent e-mail is cancelled.
    public func withdrawInvitation(id: String) throws -> InvitationRecord {
        let invitation = try invitation(id: id)
        guard invitation.storedStatus == .pending else {
            throw RPCError(.failedPrecondition, "invitation \(id) is \(invitation.storedStatus.rawValue) and cannot be withdrawn")
        }
        try retireTokens(invitationID: id)
        try execute("UPDATE invitation SET status = 'withdrawn', respond_time = ? WHERE id = ?", [now.storedMicros, id])
        return try self.invitation(id: id)
    }

    private func send(invitationID: String, lifetime: TimeInterval, maximumSendsPerDay: Int, template: String) throws -> InvitationRecord {
        let recent = try fetchValue(Int.self, "SELECT count(*) FROM invitation_send WHERE invitation_id = ? AND send_time > ?", [invitationID, now.addingTimeInterval(-86_400).storedMicros]
        ) ?? 0
        guard recent < maximumSendsPerDay else {
            throw RPCError(.resourceExhausted, "invitation \(invitationID) was sent \(recent) times in the last 24 hours, the most allowed; try again later")
        }
        try retireTokens(invitationID: invitationID)
        let token = "inv_" + Self.randomBase64URL(byteCount: 32)
        let expire = now.addingTimeInterval(lifetime)
        try execute(
            "INSERT INTO invitation_token (token_hash, invitation_id, expire_time, state, create_time) VALUES (?, ?, ?, 'live', ?)",
            [Data(Self.hash(secret: token)), invitationID, expire.storedMicros, now.storedMicros]
        )
        try execute("INSERT INTO invitation_send (invitation_id, send_time) VALUES (?, ?)", [invitationID, now.storedMicros])
        // A new e-mail: whatever became of the last one is history.
        try execute(
            """
            UPDATE invitation SET last_sent_time = ?, expire_time = ?, send_count = send_count + 1,
              delivery_failed_time = NULL, last_delivery_error = NULL WHERE id = ?
            """,
            [now.storedMicros, expire.storedMicros, invitationID]
        )
        let invitation = try invitation(id: invitationID)
        try execute(
            """
            INSERT INTO outbox (id, recipient, template, organization_id, invitation_id, token, status, create_time)
            VALUES (?, ?, ?, ?, ?, ?, 'queued', ?)
            """,
            [UUID().uuidString.lowercased(), invitation.email, template, invitation.organizationID, invitationID, token, now.storedMicros]
        )
        return invitation
    }

    /// Kills the invitation's live token and cancels e-mail that would carry it.
    private func retireTokens(invitationID: String) throws {
        try execute("UPDATE invitation_token SET state = 'superseded' WHERE invitation_id = ? AND state = 'live'", [invitationID])
        try execute(
            "UPDATE outbox SET status = 'cancelled', token = NULL, finish_time = ? WHERE invitation_id = ? AND status = 'queued'",
            [now.storedMicros, invitationID]
        )
        if changes > 0 { erasedSecret() }
    }

    /// Accepts with the secret token: activates the user and makes them a
    /// staff member with the invited role, in this one transaction.
    public func acceptInvitation(token: String) throws -> (InvitationRecord, StaffMember) {
        let invitation = try usableInvitation(token: token)
        let organization = try organization(id: invitation.organizationID)
        guard organization.active else {
            throw RPCError(.failedPrecondition, "the organization of this invitation has been deactivated")
        }
        try finish(invitation, as: .accepted)
        let user = try user(id: invitation.inviteeUserID)
        if user.status == .invited {
            var changes = UserChanges()
            changes.status = .active
            _ = try updateUser(id: user.id, expectedVersion: 0, changes)
        }
        let member: StaffMember
        if let existing = try? staffMember(organizationID: organization.id, userID: user.id) {
            // Added directly meanwhile: the invitation adds its role.
            var roles = existing.membership.roles
            if invitation.role == .agent { roles.agent = true } else { roles.membershipManager = true }
            member = try updateStaffMember(organizationID: organization.id, userID: user.id, roles: roles, isPrimary: nil)
        } else {
            let hasPrimary = try fetchOne("SELECT 1 FROM organization_staff_member WHERE user_id = ? AND is_primary = 1", [user.id]) != nil
            member = try addStaffMember(organizationID: organization.id, userID: user.id, roles: invitation.role.roles, isPrimary: !hasPrimary)
        }
        return (try self.invitation(id: invitation.id), member)
    }

    /// Declines with the secret token.
    public func declineInvitation(token: String) throws -> InvitationRecord {
        let invitation = try usableInvitation(token: token)
        try finish(invitation, as: .declined)
        return try self.invitation(id: invitation.id)
    }

    private func finish(_ invitation: InvitationRecord, as status: InvitationStatus) throws {
        try execute("UPDATE invitation_token SET state = 'used' WHERE invitation_id = ? AND state = 'live'", [invitation.id])
        try execute("UPDATE invitation SET status = ?, respond_time = ? WHERE id = ?", [status.rawValue, now.storedMicros, invitation.id])
    }

    /// The invitation a token opens, or an error that says why it cannot be
    /// used — and says nothing about any other invitation or address.
    private func usableInvitation(token: String) throws -> InvitationRecord {
        guard let row = try fetchOne(
            "SELECT invitation_id, expire_time, state FROM invitation_token WHERE token_hash = ?", [Data(Self.hash(secret: token))]
        ) else {
            throw RPCError(.notFound, "this invitation token is not valid")
        }
        let invitation = try invitation(id: row["invitation_id"])
        switch invitation.storedStatus {
        case .accepted, .declined:
            throw RPCError(.failedPrecondition, "this invitation was already \(invitation.storedStatus.rawValue)")
        case .withdrawn:
            throw RPCError(.failedPrecondition, "this invitation was withdrawn")
        case .pending, .expired, .deliveryFailed:
            break
        }
        if (row["state"] as String) == "superseded" {
            throw RPCError(.failedPrecondition, "this invitation link was replaced by a newer one; use the latest e-mail")
        }
        if (row["expire_time"] as Int64) <= now.storedMicros {
            throw RPCError(.failedPrecondition, "this invitation has expired; ask for it to be sent again")
        }
        return invitation
    }

    public func invitation(id: String) throws -> InvitationRecord {
        guard let row = try fetchOne("SELECT * FROM invitation WHERE id = ?", [id]) else {
            throw RPCError.notFound("invitation", id: id)
        }
        return Self.invitation(row)
    }

    /// The organisation an invitation belongs to (for access rules).
    public func organizationID(ofInvitation id: String) throws -> String? {
        try fetchValue(String.self, "SELECT organization_id FROM invitation WHERE id = ?", [id])
    }

    /// One page of an organisation's invitations, newest last; `status`
    /// filters as a reader sees it (pending excludes expired and delivery
    /// failed; delivery failed excludes expired).
    public func listInvitations(organizationID: String, status: InvitationStatus?, after: Int64?, limit: Int) throws -> Page<InvitationRecord> {
        _ = try organization(id: organizationID)
        var condition = ""
        var arguments: SQLArguments = [organizationID, after ?? 0]
        switch status {
        case nil: break
        case .pending:
            condition = "AND status = 'pending' AND expire_time > ? AND delivery_failed_time IS NULL"
            arguments += [now.storedMicros]
        case .deliveryFailed:
            condition = "AND status = 'pending' AND expire_time > ? AND delivery_failed_time IS NOT NULL"
            arguments += [now.storedMicros]
        case .expired:
            condition = "AND status = 'pending' AND expire_time <= ?"
            arguments += [now.storedMicros]
        case .some(let stored):
            condition = "AND status = ?"
            arguments += [stored.rawValue]
        }
        arguments += [limit + 1]
        let rows = try fetchAll("SELECT * FROM invitation WHERE organization_id = ? AND seq > ? \(condition) ORDER BY seq LIMIT ?", arguments)
        return Self.page(rows, limit: limit, Self.invitation)
    }

    // MARK: The outbox

    /// Leases up to `limit` queued e-mails to `mailer` for `lease`. A message
    /// leased to someone else is skipped until its lease runs out, so two
    /// mailers never hold the same message; one that failed is skipped until
    /// its next attempt is due. Each claim counts an attempt, so a lease that
    /// runs out counts too: a message whose last allowed attempt ran out is
    /// given up on here, not handed out again (a message that crashes its
    /// mailer cannot circulate forever). Mail whose link is dead (the
    /// invitation answered or expired) is cancelled instead of handed out.
    public func claimOutbox(mailer: String, limit: Int, lease: TimeInterval, retry: OutboxRetryPolicy) throws -> (messages: [OutboxMessageRecord], gaveUp: Int) {
        var messages: [OutboxMessageRecord] = []
        var gaveUp = 0
        let expire = now.addingTimeInterval(lease)
        // Rows set aside here (cancelled, given up) leave the queue; another
        // round looks further only when some were.
        while messages.count < limit {
            let wanted = limit - messages.count
            let rows = try fetchAll(
                """
                SELECT * FROM outbox WHERE status = 'queued' AND (lease_expire_time IS NULL OR lease_expire_time <= ?)
                  AND (next_attempt_time IS NULL OR next_attempt_time <= ?)
                ORDER BY seq LIMIT ?
                """,
                [now.storedMicros, now.storedMicros, wanted]
            )
            let claimedBefore = messages.count
            for row in rows {
                let id: String = row["id"]
                let attempts: Int = row["attempts"]
                let invitation = try invitation(id: row["invitation_id"])
                let status = invitation.status(at: now)
                guard status == .pending || status == .deliveryFailed else {
                    try finishOutbox(id: id, as: "cancelled", error: nil)
                    continue
                }
                if attempts >= retry.maximumAttempts {
                    try giveUp(outboxID: id, invitationID: invitation.id, error: "the lease of the last attempt ran out with no acknowledgement")
                    gaveUp += 1
                    continue
                }
                try execute(
                    "UPDATE outbox SET lease_owner = ?, lease_expire_time = ?, next_attempt_time = NULL, attempts = attempts + 1 WHERE id = ?",
                    [mailer, expire.storedMicros, id]
                )
                messages.append(OutboxMessageRecord(
                    id: id, recipient: row["recipient"], template: row["template"], organizationID: row["organization_id"],
                    invitationID: invitation.id, token: row["token"], attempts: attempts + 1, leaseExpireTime: expire,
                    invitation: invitation, organizationName: try organization(id: invitation.organizationID).name
                ))
            }
            if rows.count < wanted || messages.count - claimedBefore == rows.count { break }
        }
        return (messages, gaveUp)
    }

    /// Records the mailer's outcome. Only the current lease holder may
    /// acknowledge. Delivered: the plain token is erased. Failed: the
    /// message returns to the queue, due after the backoff, while attempts
    /// remain; at the last one it is failed, its token erased, and the
    /// invitation marked delivery failed. The error is kept, cut at 1000
    /// characters.
    public func acknowledgeOutbox(id: String, mailer: String, delivered: Bool, error: String, retry: OutboxRetryPolicy) throws -> OutboxAcknowledgement {
        guard let row = try fetchOne("SELECT status, lease_owner, attempts, invitation_id FROM outbox WHERE id = ?", [id]) else {
            throw RPCError.notFound(field: "id", "outbox message", id: id)
        }
        guard (row["status"] as String) == "queued" else {
            throw RPCError.failedPrecondition(field: "id", "outbox message \(id) is already \(row["status"] as String)")
        }
        guard (row["lease_owner"] as String?) == mailer else {
            throw RPCError.failedPrecondition(field: "id", "outbox message \(id) is not leased to \(mailer); claim it first")
        }
        // A lease that ran out still counts until another mailer claims the
        // message: then the owner changes and this mailer is refused above.
        if delivered {
            try finishOutbox(id: id, as: "delivered", error: nil)
            return .delivered
        }
        let reason = Self.bounded(error)
        let attempts: Int = row["attempts"]
        let invitationID: String = row["invitation_id"]
        guard attempts < retry.maximumAttempts else {
            try giveUp(outboxID: id, invitationID: invitationID, error: reason)
            return .gaveUp
        }
        let next = now.addingTimeInterval(retry.delay(afterAttempts: attempts))
        try execute(
            "UPDATE outbox SET lease_owner = NULL, lease_expire_time = NULL, next_attempt_time = ?, error = ? WHERE id = ?",
            [next.storedMicros, reason, id]
        )
        try execute("UPDATE invitation SET last_delivery_error = ? WHERE id = ?", [reason, invitationID])
        return .retrying(nextAttempt: next)
    }

    /// Fails a message for good and marks its invitation delivery failed.
    private func giveUp(outboxID: String, invitationID: String, error: String?) throws {
        try finishOutbox(id: outboxID, as: "failed", error: error)
        try execute(
            """
            UPDATE invitation SET delivery_failed_time = ?, last_delivery_error = coalesce(?, last_delivery_error)
            WHERE id = ? AND status = 'pending'
            """,
            [now.storedMicros, error, invitationID]
        )
    }

    /// Ends a message: its plain token is erased. secure_delete zeroes the
    /// old cell in the page; the writer then checkpoints the page images
    /// that still hold it out of the WAL.
    private func finishOutbox(id: String, as status: String, error: String?) throws {
        try execute(
            """
            UPDATE outbox SET status = ?, token = NULL, finish_time = ?, error = coalesce(?, error),
              lease_expire_time = NULL, next_attempt_time = NULL WHERE id = ?
            """,
            [status, now.storedMicros, error, id]
        )
        erasedSecret()
    }

    /// A mailer's error as kept: nil when empty, else at most 1000
    /// characters (Unicode scalars, as SQLite counts them), a cut marked "…".
    static func bounded(_ error: String) -> String? {
        if error.isEmpty { return nil }
        let scalars = error.unicodeScalars
        guard scalars.count > 1000 else { return error }
        var cut = String.UnicodeScalarView()
        cut.append(contentsOf: scalars.prefix(999))
        return String(cut) + "…"
    }

    static func invitation(_ row: SQLRow) -> InvitationRecord {
        let respond: Int64? = row["respond_time"]
        return InvitationRecord(
            id: row["id"], organizationID: row["organization_id"], inviteeUserID: row["invitee_user_id"], email: row["email"],
            title: row["title"], givenName: row["given_name"], familyName: row["family_name"],
            role: InvitedRole(rawValue: row["role"]) ?? .agent, storedStatus: InvitationStatus(rawValue: row["status"]) ?? .pending,
            invitedBy: row["invited_by"], createTime: Date(storedMicros: row["create_time"]),
            lastSentTime: Date(storedMicros: row["last_sent_time"]), expireTime: Date(storedMicros: row["expire_time"]),
            sendCount: row["send_count"], respondTime: respond.map(Date.init(storedMicros:)),
            deliveryFailedTime: (row["delivery_failed_time"] as Int64?).map(Date.init(storedMicros:)),
            lastDeliveryError: row["last_delivery_error"]
        )
    }
}
