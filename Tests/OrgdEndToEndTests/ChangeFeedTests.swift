import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import NIOConcurrencyHelpers
import Testing

@Suite("change feed")
struct ChangeFeedTests {
    /// Every change after (revision, entry), read page by page.
    static func allChanges(_ client: OrgdClient, afterRevision: Int64 = 0, pageSize: Int32 = 0) async throws -> (changes: [Orgd_V1_Change], latest: Int64) {
        var changes: [Orgd_V1_Change] = []
        var request = Orgd_V1_ListChangesRequest()
        request.afterRevision = afterRevision
        request.pageSize = pageSize
        var latest: Int64 = 0
        for _ in 0..<10_000 {
            let page = try await client.changes.listChanges(request)
            changes += page.changes
            latest = page.latestRevision
            guard page.more, let last = page.changes.last else { break }
            request.afterRevision = last.revision
            request.afterEntry = last.entry
        }
        return (changes, latest)
    }

    @Test("each committed write gets the next revision and the feed names what it changed; refused calls and reads add none; pages of one walk it all")
    func feedNamesChanges() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let start = try await Self.allChanges(local).latest
            let organization = try await MembershipEndToEndTests.organization(local, "Fed")
            let user = try await MembershipEndToEndTests.user(local)
            try await MembershipEndToEndTests.addStaff(local, organization.id, user.id, [.agent])
            _ = await rpcError { _ = try await local.organizations.createOrganization(.init()) }  // refused
            _ = try await local.organizations.listOrganizations(.init())                          // a read
            var remove = Orgd_V1_RemoveStaffMemberRequest()
            remove.organizationID = organization.id
            remove.userID = user.id
            _ = try await local.memberships.removeStaffMember(remove)

            let (changes, latest) = try await Self.allChanges(local, afterRevision: start)
            #expect(latest == start + 4, "four writes, four revisions")
            #expect(Set(changes.map(\.revision)) == Set((start + 1)...(start + 4)))
            #expect(changes.map(\.revision) == changes.map(\.revision).sorted())
            let named = changes.map { "\($0.revision - start) \($0.kind) \($0.id)" }
            #expect(named.contains("1 organization \(organization.id)"))
            #expect(named.contains("2 user \(user.id)"))
            #expect(named.contains("3 staff_member \(organization.id)/\(user.id)"))
            #expect(named.contains("4 staff_member \(organization.id)/\(user.id)"), "removal is a change too")
            #expect(changes.allSatisfy { $0.commitTime.seconds > 0 })

            // Pages of one: the same entries in the same order, none twice.
            let single = try await Self.allChanges(local, afterRevision: start, pageSize: 1)
            #expect(single.changes == changes)
            // From the middle of the feed.
            let tail = try await Self.allChanges(local, afterRevision: start + 2)
            #expect(tail.changes == changes.filter { $0.revision > start + 2 })
            // Bad positions are named.
            var bad = Orgd_V1_ListChangesRequest()
            bad.afterRevision = -1
            let refused = await rpcError { _ = try await local.changes.listChanges(bad) }
            #expect(refused?.code == .invalidArgument && refused?.message.contains("after_revision") == true)
            await local.close()
        }
    }

    @Test("service accounts and admins follow the feed; other users and anonymous callers do not")
    func feedAccess() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let service = try await daemon.serviceToken(role: .none)
            let follower = try await daemon.client(daemon.tcp, token: service.secret)
            #expect(try await follower.changes.listChanges(.init()).latestRevision > 0)
            let plain = try await MembershipEndToEndTests.user(local)
            let userClient = try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: plain.id))
            #expect(await rpcError { _ = try await userClient.changes.listChanges(.init()) }?.code == .permissionDenied)
            let anonymous = try await daemon.client(daemon.tcp)
            #expect(await rpcError { _ = try await anonymous.changes.listChanges(.init()) }?.code == .unauthenticated)
            for client in [local, follower, userClient, anonymous] { await client.close() }
        }
    }

    @Test("a follower reading while many writers commit never sees a revision appear behind one it already saw")
    func noSkippedRevisions() async throws {
        try await withDaemon { daemon in
            let setup = try await daemon.client()
            let writers = 8
            let perWriter = 15
            let done = ManagedFlag()
            async let follower: [[Int64]] = {
                let client = try await daemon.client()
                var snapshots: [[Int64]] = []
                while !done.isSet {
                    snapshots.append(try await Self.allChanges(client).changes.map(\.revision))
                }
                snapshots.append(try await Self.allChanges(client).changes.map(\.revision))
                await client.close()
                return snapshots
            }()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        let client = try await daemon.client()
                        for index in 0..<perWriter {
                            _ = try await MembershipEndToEndTests.organization(client, "W\(writer)-\(index)")
                        }
                        await client.close()
                    }
                }
                try await group.waitForAll()
            }
            done.set()
            let snapshots = try await follower
            let final = snapshots.last!
            // Every revision the follower saw at any moment is a prefix of
            // the final feed: nothing it had not seen turned up later behind it.
            for snapshot in snapshots {
                #expect(Array(final.prefix(snapshot.count)) == snapshot)
            }
            #expect(Set(final).count >= writers * perWriter)
            await setup.close()
        }
    }
}

/// A flag one task sets and another polls.
final class ManagedFlag: Sendable {
    private let value = NIOLockedValueBox(false)
    var isSet: Bool { value.withLockedValue { $0 } }
    func set() { value.withLockedValue { $0 = true } }
}
