import Foundation
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdStore
import Testing

/// An access rule that depends on the data is decided in the same transaction
/// as the write it guards: nothing can change between the decision and the
/// change.
@Suite("access checks inside the write")
struct TransactionCheckTests {
    @Test("a manager demoted after their call was queued, but before it ran, is refused, and nothing is written")
    func demotedWhileQueued() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Ward 7 Team")
        let (manager, secret) = try await harness.userToken(role: .none)
        try await harness.store.write { tx in
            _ = try tx.addStaffMember(
                organizationID: organization.id, userID: manager.id, roles: StaffRoles(membershipManager: true, agent: false), isPrimary: false)
        }
        // Hold the writer with a write that, once let go, demotes the manager.
        let gate = GroupCommitTests.Gate()
        let demotion = Task {
            try await harness.store.write { tx in
                gate.entered.signal()
                gate.release.wait()
                _ = try tx.updateStaffMember(
                    organizationID: organization.id, userID: manager.id, roles: StaffRoles(membershipManager: false, agent: true), isPrimary: nil)
            }
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread { gate.entered.wait(); continuation.resume() }.start()
        }
        // The manager's invitation gets as far as the writer's queue: it was
        // a manager until now, and has passed everything that runs before.
        let invite = Task {
            await rpcError { _ = try await harness.client(as: .token(secret)).invitations.inviteMember(InvitationServiceTests.inviteRequest(organization.id)) }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while harness.store.queuedWrites < 1 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(harness.store.queuedWrites >= 1, "the invitation waits behind the held write")
        gate.release.signal()
        try await demotion.value
        let refusal = await invite.value
        #expect(refusal?.code == .permissionDenied, "\(String(describing: refusal))")
        let invitations = try await harness.store.read { tx in
            try tx.listInvitations(organizationID: organization.id, status: nil, after: nil, limit: 10).items
        }
        #expect(invitations.isEmpty)
    }
}
