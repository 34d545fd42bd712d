import Foundation
import GRPCCore
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServices
import Testing

@Suite("authentication and access rules")
struct AuthenticationTests {
    static let organizationMethods: [MethodDescriptor] = [
        Orgd_V1_OrganizationService.Method.CreateOrganization.descriptor,
        Orgd_V1_OrganizationService.Method.GetOrganization.descriptor,
        Orgd_V1_OrganizationService.Method.UpdateOrganization.descriptor,
        Orgd_V1_OrganizationService.Method.ListOrganizations.descriptor,
        Orgd_V1_OrganizationService.Method.DeactivateOrganization.descriptor,
        Orgd_V1_OrganizationService.Method.ReactivateOrganization.descriptor,
    ]

    @Test("TCP without a token, with a malformed header, or with an unknown token is UNAUTHENTICATED")
    func unauthenticated() async throws {
        let harness = try await Harness()
        #expect(await harness.code(as: .anonymous) { try await $0.organizations.listOrganizations() } == .unauthenticated)
        let basic = await harness.code(as: .anonymous) {
            try await $0.organizations.listOrganizations(options: options(["authorization": "Basic dXNlcjpwYXNz"]))
        }
        #expect(basic == .unauthenticated)
        #expect(await harness.code(as: .token("orgd_nope")) { try await $0.organizations.listOrganizations() } == .unauthenticated)
    }

    @Test("a revoked token stops working on the next call")
    func revoked() async throws {
        let harness = try await Harness()
        let admin = try await harness.serviceToken(role: .admin)
        _ = try await harness.listOrganizations()
        #expect(await harness.code(as: .token(admin.secret)) { try await $0.organizations.listOrganizations() } == .ok)
        let tokens = try await harness.client().tokens.listTokens()
        var revoke = Orgd_V1_RevokeTokenRequest()
        revoke.id = try #require(tokens.tokens.first).id
        let revokedToken = try await harness.client().tokens.revokeToken(revoke)
        #expect(revokedToken.hasRevokeTime)
        #expect(await harness.code(as: .token(admin.secret)) { try await $0.organizations.listOrganizations() } == .unauthenticated)
    }

    @Test("a token stops working when it expires (clock injected, no sleeping)")
    func expired() async throws {
        let harness = try await Harness()
        let account = try await harness.serviceToken(role: .admin).account
        var create = Orgd_V1_CreateTokenRequest()
        create.serviceAccountID = account.id
        create.expiresInSeconds = 60
        let issued = try await harness.client().tokens.createToken(create)
        #expect(issued.token.expireTime.date == harness.clock.addingTimeInterval(60))
        #expect(await harness.code(as: .token(issued.secret)) { try await $0.organizations.listOrganizations() } == .ok)
        harness.advance(by: 60)
        #expect(await harness.code(as: .token(issued.secret)) { try await $0.organizations.listOrganizations() } == .unauthenticated)
    }

    @Test("a disabled user's token is refused")
    func disabledUser() async throws {
        let harness = try await Harness()
        let disabled = try await harness.userToken(role: .admin, status: .disabled)
        #expect(await harness.code(as: .token(disabled.secret)) { try await $0.organizations.listOrganizations() } == .unauthenticated)
    }

    @Test("organisation methods: admin and superadmin allowed, role none denied", arguments: organizationMethods)
    func organizationRoles(method: MethodDescriptor) async throws {
        let harness = try await Harness()
        let none = try await harness.userToken(role: .none)
        let admin = try await harness.userToken(role: .admin)
        let superadmin = try await harness.serviceToken(role: .superadmin)
        // An empty request (no bytes) to each method by its descriptor.
        #expect(await harness.code(as: .token(none.secret)) { try await $0.connection.call(method, payload: []) } == .permissionDenied)
        // Allowed callers get past authorisation; the empty request then fails validation.
        for secret in [admin.secret, superadmin.secret] {
            let code = await harness.code(as: .token(secret)) { try await $0.connection.call(method, payload: []) }
            #expect(code != .permissionDenied && code != .unauthenticated, "\(method)")
        }
    }

    @Test("token management is superadmin only")
    func tokenServiceRoles() async throws {
        let harness = try await Harness()
        let admin = try await harness.serviceToken(role: .admin)
        let superadmin = try await harness.userToken(role: .superadmin)
        let request = Orgd_V1_ListTokensRequest()
        #expect(await harness.code(as: .token(admin.secret)) { try await $0.tokens.listTokens() } == .permissionDenied)
        #expect(await harness.code(as: .token(superadmin.secret)) { try await $0.tokens.listTokens() } == .ok)
    }

    @Test("act-as: only allowed service accounts, and the acted-for user's role applies")
    func actAs() async throws {
        let harness = try await Harness()
        let plainService = try await harness.serviceToken(role: .admin)
        let bff = try await harness.serviceToken(role: .superadmin, mayActAs: true)
        let admin = try await harness.userToken(role: .admin)
        let nobody = try await harness.userToken(role: .none)
        #expect(await harness.code(as: .token(plainService.secret, actAs: admin.user.id)) { try await $0.organizations.listOrganizations() } == .permissionDenied)
        #expect(await harness.code(as: .token(bff.secret, actAs: admin.user.id)) { try await $0.organizations.listOrganizations() } == .ok)
        // The service is superadmin, but acting for a role-none user it has that user's rights only.
        #expect(await harness.code(as: .token(bff.secret, actAs: nobody.user.id)) { try await $0.organizations.listOrganizations() } == .permissionDenied)
        #expect(await harness.code(as: .token(bff.secret, actAs: UUID().uuidString)) { try await $0.organizations.listOrganizations() } == .permissionDenied)
        // A user's own token cannot act for someone else.
        #expect(await harness.code(as: .token(admin.secret, actAs: nobody.user.id)) { try await $0.organizations.listOrganizations() } == .permissionDenied)
    }

    @Test("act-as never escalates: acting for an admin or superadmin needs that role; tokens, service accounts and the audit log never go through act-as")
    func actAsNeverEscalates() async throws {
        let harness = try await Harness()
        let roleless = try await harness.serviceToken(role: .none, mayActAs: true)
        let adminService = try await harness.serviceToken(role: .admin, mayActAs: true)
        let superService = try await harness.serviceToken(role: .superadmin, mayActAs: true)
        let admin = try await harness.userToken(role: .admin)
        let superadmin = try await harness.userToken(role: .superadmin)
        let target = try await harness.userToken(role: .none)
        var account = Orgd_V1_CreateServiceAccountRequest()
        account.name = "minted"
        account.systemRole = .superadmin
        var token = Orgd_V1_CreateTokenRequest()
        token.userID = target.user.id
        let superadminCalls: [(method: String, call: (OrgdClient) async throws -> Void)] = [
            ("CreateToken", { _ = try await $0.tokens.createToken(token) }),
            ("CreateServiceAccount", { _ = try await $0.tokens.createServiceAccount(account) }),
            ("ListTokens", { _ = try await $0.tokens.listTokens() }),
            ("ListAuditLog", { _ = try await $0.audit.listAuditLog() }),
        ]
        // A role-less service acting for a superadmin or an admin: refused outright.
        for user in [superadmin.user, admin.user] {
            let listed = await rpcError { _ = try await harness.client(as: .token(roleless.secret, actAs: user.id)).organizations.listOrganizations() }
            #expect(listed?.code == .permissionDenied && listed?.message.contains("may not act for user") == true)
            for (method, call) in superadminCalls {
                #expect(await harness.code(as: .token(roleless.secret, actAs: user.id), call) == .permissionDenied, "\(method)")
            }
        }
        // An admin service acting for an admin: allowed, with the admin's rights; not for a superadmin.
        #expect(await harness.code(as: .token(adminService.secret, actAs: admin.user.id)) { try await $0.organizations.listOrganizations() } == .ok)
        #expect(await harness.code(as: .token(adminService.secret, actAs: superadmin.user.id)) { try await $0.organizations.listOrganizations() } == .permissionDenied)
        // Even a superadmin service acting for a superadmin, and the local
        // operator acting for one, manage no tokens or accounts that way.
        for (method, call) in superadminCalls {
            let acting = await rpcError { try await call(harness.client(as: .token(superService.secret, actAs: superadmin.user.id))) }
            #expect(acting?.code == .permissionDenied && acting?.message.contains("orgd-act-as") == true, "\(method)")
            #expect(await rpcError { try await call(harness.client(as: .localActing(for: superadmin.user.id))) }?.code == .permissionDenied, "\(method)")
        }
        // Nothing was minted; with its own credentials the superadmin service still can.
        let accounts = try await harness.client().tokens.listServiceAccounts()
        #expect(!accounts.serviceAccounts.contains { $0.name == "minted" })
        let tokens = try await harness.client().tokens.listTokens()
        #expect(tokens.tokens.count == 6)
        #expect(await harness.code(as: .token(superService.secret)) { try await $0.tokens.createServiceAccount(account) } == .ok)
    }

    @Test("unknown services and methods are UNIMPLEMENTED in ttrpc's words; every declared method is served")
    func unimplemented() async throws {
        let harness = try await Harness()
        let service = try await harness.raw("orgd.v1.Nope", "X", payload: [])
        #expect(service.code == .unimplemented && service.status.message == "service orgd.v1.Nope")
        let method = try await harness.raw(Orgd_V1_OrganizationService.descriptor.fullyQualifiedService, "Nope", payload: [])
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
        let harness = try await Harness()
        let error = await rpcError {
            _ = try await harness.client().connection.call(Orgd_V1_OrganizationService.Method.CreateOrganization.descriptor, payload: [0x0a, 0xff, 0xff])
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("orgd.v1.CreateOrganizationRequest") == true)
    }

    @Test("health needs no token, and knows which services exist")
    func health() async throws {
        let harness = try await Harness()
        let any = try await harness.client(as: .anonymous).health.check()
        #expect(any.status == .serving)
        var known = Grpc_Health_V1_HealthCheckRequest()
        known.service = Orgd_V1_OrganizationService.descriptor.fullyQualifiedService
        let served = try await harness.client(as: .anonymous).health.check(known)
        #expect(served.status == .serving)
        known.service = "nope.Service"
        #expect(await rpcError { _ = try await harness.client().health.check(known) }?.code == .notFound)
    }
}
