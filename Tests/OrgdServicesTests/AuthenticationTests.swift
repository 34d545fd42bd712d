import Foundation
import OrgdCore
import OrgdProto
import OrgdServices
import Testing

@Suite("authentication and access rules")
struct AuthenticationTests {
    static let organizationMethods = [
        "CreateOrganization", "GetOrganization", "UpdateOrganization", "ListOrganizations",
        "DeactivateOrganization", "ReactivateOrganization",
    ]

    @Test("TCP without a token, with a malformed header, or with an unknown token is UNAUTHENTICATED")
    func unauthenticated() async throws {
        let harness = try Harness()
        let request = Orgd_V1_ListOrganizationsRequest()
        let anonymous = try await harness.raw(Harness.organizations, "ListOrganizations", payload: request.serializedBytes(), as: .anonymous)
        #expect(anonymous.code == .unauthenticated)
        let basic = try await harness.raw(
            Harness.organizations, "ListOrganizations", payload: request.serializedBytes(), as: .anonymous,
            metadata: ["authorization": "Basic dXNlcjpwYXNz"]
        )
        #expect(basic.code == .unauthenticated)
        let unknown = try await harness.raw(Harness.organizations, "ListOrganizations", payload: request.serializedBytes(), as: .token("orgd_nope"))
        #expect(unknown.code == .unauthenticated)
    }

    @Test("a revoked token stops working on the next call")
    func revoked() async throws {
        let harness = try Harness()
        let admin = try await harness.serviceToken(role: .admin)
        _ = try await harness.listOrganizations()
        let ok = try await harness.raw(Harness.organizations, "ListOrganizations", payload: [], as: .token(admin.secret))
        #expect(ok.code == .ok)
        let tokens: Orgd_V1_ListTokensResponse = try await harness.call("orgd.v1.TokenService", "ListTokens", Orgd_V1_ListTokensRequest())
        var revoke = Orgd_V1_RevokeTokenRequest()
        revoke.id = try #require(tokens.tokens.first).id
        let revokedToken: Orgd_V1_ApiToken = try await harness.call("orgd.v1.TokenService", "RevokeToken", revoke)
        #expect(revokedToken.hasRevokeTime)
        let after = try await harness.raw(Harness.organizations, "ListOrganizations", payload: [], as: .token(admin.secret))
        #expect(after.code == .unauthenticated)
    }

    @Test("a token stops working when it expires (clock injected, no sleeping)")
    func expired() async throws {
        let harness = try Harness()
        let account = try await harness.serviceToken(role: .admin).account
        var create = Orgd_V1_CreateTokenRequest()
        create.serviceAccountID = account.id
        create.expiresInSeconds = 60
        let issued: Orgd_V1_CreateTokenResponse = try await harness.call("orgd.v1.TokenService", "CreateToken", create)
        #expect(issued.token.expireTime.date == harness.clock.addingTimeInterval(60))
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: [], as: .token(issued.secret)).code == .ok)
        harness.advance(by: 60)
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: [], as: .token(issued.secret)).code == .unauthenticated)
    }

    @Test("a disabled user's token is refused")
    func disabledUser() async throws {
        let harness = try Harness()
        let disabled = try await harness.userToken(role: .admin, status: .disabled)
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: [], as: .token(disabled.secret)).code == .unauthenticated)
    }

    @Test("organisation methods: admin and superadmin allowed, role none denied", arguments: organizationMethods)
    func organizationRoles(method: String) async throws {
        let harness = try Harness()
        let none = try await harness.userToken(role: .none)
        let admin = try await harness.userToken(role: .admin)
        let superadmin = try await harness.serviceToken(role: .superadmin)
        #expect(try await harness.raw(Harness.organizations, method, payload: [], as: .token(none.secret)).code == .permissionDenied)
        // Allowed callers get past authorisation; the empty request then fails validation.
        for secret in [admin.secret, superadmin.secret] {
            let code = try await harness.raw(Harness.organizations, method, payload: [], as: .token(secret)).code
            #expect(code != .permissionDenied && code != .unauthenticated, "\(method)")
        }
    }

    @Test("token management is superadmin only")
    func tokenServiceRoles() async throws {
        let harness = try Harness()
        let admin = try await harness.serviceToken(role: .admin)
        let superadmin = try await harness.userToken(role: .superadmin)
        let request = Orgd_V1_ListTokensRequest()
        #expect(try await harness.raw("orgd.v1.TokenService", "ListTokens", payload: request.serializedBytes(), as: .token(admin.secret)).code == .permissionDenied)
        #expect(try await harness.raw("orgd.v1.TokenService", "ListTokens", payload: request.serializedBytes(), as: .token(superadmin.secret)).code == .ok)
    }

    @Test("act-as: only allowed service accounts, and the acted-for user's role applies")
    func actAs() async throws {
        let harness = try Harness()
        let plainService = try await harness.serviceToken(role: .admin)
        let bff = try await harness.serviceToken(role: .superadmin, mayActAs: true)
        let admin = try await harness.userToken(role: .admin)
        let nobody = try await harness.userToken(role: .none)
        let list: [UInt8] = try Orgd_V1_ListOrganizationsRequest().serializedBytes()
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(plainService.secret, actAs: admin.user.id)).code == .permissionDenied)
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(bff.secret, actAs: admin.user.id)).code == .ok)
        // The service is superadmin, but acting for a role-none user it has that user's rights only.
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(bff.secret, actAs: nobody.user.id)).code == .permissionDenied)
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(bff.secret, actAs: UUID().uuidString)).code == .permissionDenied)
        // A user's own token cannot act for someone else.
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(admin.secret, actAs: nobody.user.id)).code == .permissionDenied)
    }

    @Test("act-as never escalates: acting for an admin or superadmin needs that role; tokens, service accounts and the audit log never go through act-as")
    func actAsNeverEscalates() async throws {
        let harness = try Harness()
        let roleless = try await harness.serviceToken(role: .none, mayActAs: true)
        let adminService = try await harness.serviceToken(role: .admin, mayActAs: true)
        let superService = try await harness.serviceToken(role: .superadmin, mayActAs: true)
        let admin = try await harness.userToken(role: .admin)
        let superadmin = try await harness.userToken(role: .superadmin)
        let target = try await harness.userToken(role: .none)
        let list: [UInt8] = try Orgd_V1_ListOrganizationsRequest().serializedBytes()
        var account = Orgd_V1_CreateServiceAccountRequest()
        account.name = "minted"
        account.systemRole = .superadmin
        var token = Orgd_V1_CreateTokenRequest()
        token.userID = target.user.id
        let superadminCalls: [(String, String, [UInt8])] = [
            ("orgd.v1.TokenService", "CreateToken", try token.serializedBytes()),
            ("orgd.v1.TokenService", "CreateServiceAccount", try account.serializedBytes()),
            ("orgd.v1.TokenService", "ListTokens", try Orgd_V1_ListTokensRequest().serializedBytes()),
            ("orgd.v1.AuditService", "ListAuditLog", try Orgd_V1_ListAuditLogRequest().serializedBytes()),
        ]
        // A role-less service acting for a superadmin or an admin: refused outright.
        for user in [superadmin.user, admin.user] {
            let listed = try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(roleless.secret, actAs: user.id))
            #expect(listed.code == .permissionDenied && listed.status.message.contains("may not act for user"))
            for (service, method, payload) in superadminCalls {
                #expect(try await harness.raw(service, method, payload: payload, as: .token(roleless.secret, actAs: user.id)).code == .permissionDenied)
            }
        }
        // An admin service acting for an admin: allowed, with the admin's rights; not for a superadmin.
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(adminService.secret, actAs: admin.user.id)).code == .ok)
        #expect(try await harness.raw(Harness.organizations, "ListOrganizations", payload: list, as: .token(adminService.secret, actAs: superadmin.user.id)).code == .permissionDenied)
        // Even a superadmin service acting for a superadmin, and the local
        // operator acting for one, manage no tokens or accounts that way.
        for (service, method, payload) in superadminCalls {
            let acting = try await harness.raw(service, method, payload: payload, as: .token(superService.secret, actAs: superadmin.user.id))
            #expect(acting.code == .permissionDenied && acting.status.message.contains("orgd-act-as"), "\(method)")
            let local = try await harness.raw(service, method, payload: payload, as: .local, metadata: ["orgd-act-as": superadmin.user.id])
            #expect(local.code == .permissionDenied, "\(method)")
        }
        // Nothing was minted; with its own credentials the superadmin service still can.
        let accounts: Orgd_V1_ListServiceAccountsResponse = try await harness.call("orgd.v1.TokenService", "ListServiceAccounts", Orgd_V1_ListServiceAccountsRequest())
        #expect(!accounts.serviceAccounts.contains { $0.name == "minted" })
        let tokens: Orgd_V1_ListTokensResponse = try await harness.call("orgd.v1.TokenService", "ListTokens", Orgd_V1_ListTokensRequest())
        #expect(tokens.tokens.count == 6)
        #expect(try await harness.raw("orgd.v1.TokenService", "CreateServiceAccount", payload: try account.serializedBytes(), as: .token(superService.secret)).code == .ok)
    }

    @Test("unknown services and methods are UNIMPLEMENTED in ttrpc's words; every declared method is served")
    func unimplemented() async throws {
        let harness = try Harness()
        let service = try await harness.raw("orgd.v1.Nope", "X", payload: [])
        #expect(service.code == .unimplemented && service.status.message == "service orgd.v1.Nope")
        let method = try await harness.raw(Harness.organizations, "Nope", payload: [])
        #expect(method.code == .unimplemented && method.status.message == "method Nope")
        // Every RPC that proto/ declares is served, read from the .proto files
        // themselves, and nothing answers UNIMPLEMENTED.
        let declared = try Self.declaredRPCs()
        #expect(declared.count > 50)
        #expect(Set(harness.dispatcher.methods.map(\.fullName)) == declared.union(["grpc.health.v1.Health/Check"]).subtracting(["grpc.health.v1.Health/Watch"]))
        for name in declared where name.hasPrefix("orgd.") {
            let (service, method) = (String(name.split(separator: "/")[0]), String(name.split(separator: "/")[1]))
            let outcome = try await harness.raw(service, method, payload: [])
            #expect(outcome.code != .unimplemented, "\(name)")
        }
    }

    /// `package.Service/Method` of every rpc in proto/, parsed from the text.
    static func declaredRPCs() throws -> Set<String> {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var names: Set<String> = []
        let files = FileManager.default.enumerator(atPath: root.appendingPathComponent("proto").path)!.compactMap { $0 as? String }
        for file in files where file.hasSuffix(".proto") {
            let text = try String(contentsOf: root.appendingPathComponent("proto/" + file), encoding: .utf8)
            var package = "", service = ""
            for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                let words = line.split(whereSeparator: { " ({;".contains($0) }).map(String.init)
                if words.first == "package", words.count > 1 { package = words[1] }
                if words.first == "service", words.count > 1 { service = words[1] }
                if words.first == "rpc", words.count > 1 { names.insert("\(package).\(service)/\(words[1])") }
            }
        }
        return names
    }

    @Test("a payload that does not decode as the method's request is INVALID_ARGUMENT")
    func undecodablePayload() async throws {
        let harness = try Harness()
        let outcome = try await harness.raw(Harness.organizations, "CreateOrganization", payload: [0x0a, 0xff, 0xff])
        #expect(outcome.code == .invalidArgument)
        #expect(outcome.status.message.contains("orgd.v1.CreateOrganizationRequest"))
    }

    @Test("health needs no token, and knows which services exist")
    func health() async throws {
        let harness = try Harness()
        let any: Grpc_Health_V1_HealthCheckResponse = try await harness.call("grpc.health.v1.Health", "Check", Grpc_Health_V1_HealthCheckRequest(), as: .anonymous)
        #expect(any.status == .serving)
        var known = Grpc_Health_V1_HealthCheckRequest()
        known.service = Harness.organizations
        let served: Grpc_Health_V1_HealthCheckResponse = try await harness.call("grpc.health.v1.Health", "Check", known, as: .anonymous)
        #expect(served.status == .serving)
        known.service = "nope.Service"
        #expect(await rpcError { let _: Grpc_Health_V1_HealthCheckResponse = try await harness.call("grpc.health.v1.Health", "Check", known) }?.code == .notFound)
    }
}
