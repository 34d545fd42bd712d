import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// E-mail identity over a real socket (issue 13 item 6): an address typed
/// composed, decomposed or in other case is one account.
@Suite("e-mail identity end to end")
struct EmailIdentityTests {
    static let composed = "jos\u{00E9}@example.com"
    static let decomposedUpper = "JOSE\u{0301}@EXAMPLE.COM"

    static func createUser(_ client: OrgdClient, _ email: String) async throws -> Orgd_V1_User {
        var request = Orgd_V1_CreateUserRequest()
        request.email = email
        request.givenName = "José"
        request.familyName = "Silva"
        return try await client.memberships.createUser(request)
    }

    @Test("josé typed composed, then decomposed and upper-cased, is one account: CreateUser ALREADY_EXISTS, InviteMember re-invites it, GetUser and ListUsers show NFC")
    func oneAccount() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let created = try await Self.createUser(world.local, Self.composed)
            #expect(Array(created.email.utf8) == Array(Self.composed.utf8))

            let duplicate = await rpcError { _ = try await Self.createUser(world.local, Self.decomposedUpper) }
            #expect(duplicate?.code == .alreadyExists, "\(String(describing: duplicate))")
            #expect(duplicate?.fieldViolations.first?.field == "email")
            let decomposedLower = await rpcError { _ = try await Self.createUser(world.local, "jose\u{0301}@example.com") }
            #expect(decomposedLower?.code == .alreadyExists)

            // Typed decomposed, the address is stored composed.
            let other = try await Self.createUser(world.local, "rene\u{0301}@example.com")
            var get = Orgd_V1_GetUserRequest()
            get.id = other.id
            let read = try await world.local.memberships.getUser(get)
            #expect(Array(read.email.utf8) == Array("ren\u{00E9}@example.com".utf8))

            // An invitation to the other form finds the same user, twice.
            var invite = InvitationEndToEndTests.inviteRequest(world.organization.id, Self.decomposedUpper)
            let first = try await world.managerClient.invitations.inviteMember(invite)
            #expect(first.id == created.id)
            invite.email = "Jose\u{0301}@Example.com"
            let second = try await world.managerClient.invitations.inviteMember(invite)
            #expect(second.id == created.id && second.reinvited)
            #expect(Array(second.invitation.email.utf8) == Array(Self.composed.utf8))

            // ListUsers' prefix is compared by key too.
            for prefix in ["JOSE\u{0301}", "jos\u{00E9}@", "Jos\u{00E9}@EX"] {
                var list = Orgd_V1_ListUsersRequest()
                list.emailPrefix = prefix
                let found = try await world.local.memberships.listUsers(list)
                #expect(found.users.map(\.id) == [created.id], "\(prefix.debugDescription)")
            }

            // UpdateUser to another form of a taken address is refused too.
            var update = Orgd_V1_UpdateUserRequest()
            update.id = other.id
            update.version = read.version
            update.email = "JOS\u{00C9}@example.com"
            let moved = await rpcError { _ = try await world.local.memberships.updateUser(update) }
            #expect(moved?.code == .alreadyExists, "\(String(describing: moved))")
        }
    }

    @Test("jock..jones@x.com is refused INVALID_ARGUMENT saying why")
    func doubledDot() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let error = await rpcError { _ = try await Self.createUser(client, "jock..jones@x.com") }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == "email: not a valid e-mail address, local part has two dots in a row: jock..jones@x.com")
            await client.close()
        }
    }
}
