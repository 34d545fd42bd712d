import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// A write's answer carries its change-feed revision as an opaque token
/// (`orgd-consistency-token`); a call that sends one back is answered from
/// a state at least that fresh, and a token not from this database is refused.
@Suite("consistency tokens")
struct ConsistencyTokenTests {
    static func revision(_ token: String?) throws -> Int64 {
        let token = try #require(token, "the answer carried a token")
        return try #require(ConsistencyTokens.revision(of: token))
    }

    @Test("each write's answer carries the revision the feed files it under, over ttrpc and gRPC; reads and refused calls carry none; an idempotent repeat's is no older than the first")
    func writesCarryTheirRevision() async throws {
        try await withDaemon(configure: { $0.grpcHost = "127.0.0.1" }) { daemon in
            let local = try await daemon.client()
            #expect(local.connection.consistencyToken == nil)
            let organization = try await MembershipEndToEndTests.organization(local, "Tokened")
            let first = try Self.revision(local.connection.consistencyToken)
            let changes = try await ChangeFeedTests.allChanges(local).changes
            #expect(changes.first { $0.kind == "organization" && $0.id == organization.id }?.revision == first)

            // A read and a refused write leave the newest token as it was.
            _ = try await local.organizations.listOrganizations(.init())
            _ = await rpcError { _ = try await local.organizations.createOrganization(.init()) }
            #expect(try Self.revision(local.connection.consistencyToken) == first)

            // The raw envelope shows the metadata entry itself.
            var create = Orgd_V1_CreateOrganizationRequest()
            create.name = "Raw"
            create.type = .department
            let raw = try await local.connection.call(
                service: "orgd.v1.OrganizationService", method: "CreateOrganization", payload: try create.serializedBytes(),
                options: CallOptions(idempotencyKey: "raw-1"))
            let entries = raw.metadata.filter { $0.key == "orgd-consistency-token" }
            #expect(entries.count == 1)
            let second = try Self.revision(entries.first?.value)
            #expect(second > first)
            #expect(try Self.revision(local.connection.consistencyToken) == second, "the connection keeps the newest")
            // The same create again under its key: nothing is written, and the
            // token is still one at least as fresh as the first answer.
            let repeated = try await local.connection.call(
                service: "orgd.v1.OrganizationService", method: "CreateOrganization", payload: try create.serializedBytes(),
                options: CallOptions(idempotencyKey: "raw-1"))
            #expect(try Self.revision(repeated.metadata.first { $0.key == "orgd-consistency-token" }?.value) >= second)
            #expect(try await ChangeFeedTests.allChanges(local).latest == second, "the repeat wrote nothing")

            // gRPC: the token travels in the answer's headers.
            let token = try await daemon.serviceToken(role: .admin)
            let grpc = try await daemon.client(.grpc(host: "127.0.0.1", port: daemon.grpcPort), token: token.secret)
            _ = try await MembershipEndToEndTests.organization(grpc, "Over gRPC")
            #expect(try Self.revision(grpc.connection.consistencyToken) > second)
            await grpc.close()
            await local.close()
        }
    }

    @Test("a read sent with a write's token is answered (on ttrpc's fast path and in a task, and over gRPC); a garbled token, one signed for something else, or one from another database is INVALID_ARGUMENT naming orgd-consistency-token")
    func readsCheckTheToken() async throws {
        try await withDaemon(configure: { $0.grpcHost = "127.0.0.1" }) { daemon in
            let local = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(local, "Fresh")
            let token = try #require(local.connection.consistencyToken)
            var get = Orgd_V1_GetOrganizationRequest()
            get.id = organization.id
            let fresh = CallOptions(consistencyToken: token)
            #expect(try await local.organizations.getOrganization(get, options: fresh).organization.name == "Fresh")
            // A write sent with a token is checked too.
            _ = try await Self.createUser(local, options: fresh)
            let admin = try await daemon.serviceToken(role: .admin)
            let grpc = try await daemon.client(.grpc(host: "127.0.0.1", port: daemon.grpcPort), token: admin.secret)
            #expect(try await grpc.organizations.getOrganization(get, options: fresh).organization.name == "Fresh")

            var pageTokenRequest = Orgd_V1_ListOrganizationsRequest()
            pageTokenRequest.pageSize = 1
            _ = try await MembershipEndToEndTests.organization(local, "Second")
            let pageToken = try await local.organizations.listOrganizations(pageTokenRequest).nextPageToken
            #expect(!pageToken.isEmpty)
            let otherDatabase = try await withDaemonToken()
            // One character changed in the middle (in the revision's bytes).
            var flipped = Array(token)
            flipped[5] = flipped[5] == "A" ? "B" : "A"
            for bad in ["garbled", String(token.dropLast()), String(flipped), pageToken, otherDatabase] {
                for client in [local, grpc] {
                    let refused = await rpcError { _ = try await client.organizations.getOrganization(get, options: CallOptions(consistencyToken: bad)) }
                    #expect(refused?.code == .invalidArgument, "\(bad): \(String(describing: refused))")
                    #expect(refused?.fieldViolations.first?.field == "orgd-consistency-token")
                    let write = await rpcError { _ = try await Self.createUser(client, options: CallOptions(consistencyToken: bad)) }
                    #expect(write?.code == .invalidArgument)
                }
            }
            await grpc.close()
            await local.close()
        }
    }

    static func createUser(_ client: OrgdClient, options: CallOptions) async throws -> Orgd_V1_User {
        var request = Orgd_V1_CreateUserRequest()
        request.email = "\(UUID().uuidString.prefix(12))@example.org"
        request.givenName = "Kim"
        request.familyName = "Lee"
        return try await client.memberships.createUser(request, options: options)
    }

    /// A write's token from a daemon over a database of its own.
    private func withDaemonToken() async throws -> String {
        var token: String?
        try await withDaemon { other in
            let client = try await other.client()
            _ = try await MembershipEndToEndTests.organization(client, "Elsewhere")
            token = client.connection.consistencyToken
            await client.close()
        }
        return try #require(token)
    }
}
