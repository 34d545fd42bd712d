import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

@Suite("audit log")
struct AuditTests {
    @Test("administrative changes are logged with who, for whom, what; failures and reads are not; superadmins only; append-only")
    func auditLog() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(local, "Audited")
            var update = Orgd_V1_UpdateOrganizationRequest()
            update.id = organization.id
            update.version = 1
            update.name = "Audited and renamed"
            _ = try await local.organizations.updateOrganization(update)
            _ = await rpcError { _ = try await local.organizations.createOrganization(.init()) }  // refused: not a change
            _ = try await local.organizations.listOrganizations(.init())                          // a read: not a change
            // A service acting for an admin user.
            let admin = try await MembershipEndToEndTests.user(local, role: .admin)
            var account = Orgd_V1_CreateServiceAccountRequest()
            account.name = "bff"
            account.mayActAs = true
            var token = Orgd_V1_CreateTokenRequest()
            token.serviceAccountID = try await local.tokens.createServiceAccount(account).id
            let secret = try await local.tokens.createToken(token).secret
            let bff = try await OrgdClient.connect(to: daemon.tcp, token: secret, actAs: admin.id)
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = organization.id
            _ = try await bff.organizations.deactivateOrganization(deactivate)

            let log = try await local.audit.listAuditLog().entries
            #expect(log.map(\.method) == [
                "orgd.v1.OrganizationService/CreateOrganization", "orgd.v1.OrganizationService/UpdateOrganization",
                "orgd.v1.MembershipService/CreateUser", "orgd.v1.TokenService/CreateServiceAccount", "orgd.v1.TokenService/CreateToken",
                "orgd.v1.OrganizationService/DeactivateOrganization",
            ])
            #expect(log[1].actor == "local" && log[1].requestJson.contains("Audited and renamed"))
            #expect(log[5].actor.hasPrefix("service:") && log[5].actingFor == "user:\(admin.id)")
            #expect(!log.contains { $0.requestJson.contains(secret) })

            // Only superadmins read it.
            let denied = await rpcError { _ = try await bff.audit.listAuditLog() }
            #expect(denied?.code == .permissionDenied)
            // SQLite refuses to change it.
            let sql = try await TTRPCInteropTests.run("/usr/bin/sqlite3", [daemon.directory + "/orgd.sqlite", "DELETE FROM audit_log"], environment: [:])
            #expect(sql.status != 0 && sql.output.contains("append-only"))
            await bff.close()
            await local.close()
        }
    }
}
