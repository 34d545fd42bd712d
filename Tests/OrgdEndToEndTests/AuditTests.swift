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
            // A service acting for an admin user (it must hold the admin role itself).
            let admin = try await MembershipEndToEndTests.user(local, role: .admin)
            var account = Orgd_V1_CreateServiceAccountRequest()
            account.name = "bff"
            account.systemRole = .admin
            account.mayActAs = true
            var token = Orgd_V1_CreateTokenRequest()
            let accountID = try await local.tokens.createServiceAccount(account).id
            token.serviceAccountID = accountID
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
            // Actors are plain ids with their kind beside them.
            #expect(log[1].actor == "" && log[1].actorKind == .localOperator && log[1].requestJson.contains("Audited and renamed"))
            #expect(log[5].actor == accountID && log[5].actorKind == .serviceAccount && log[5].actingFor == admin.id)
            #expect(!log.contains { $0.requestJson.contains(secret) })

            // Only superadmins read it.
            let denied = await rpcError { _ = try await bff.audit.listAuditLog() }
            #expect(denied?.code == .permissionDenied)
            // The database refuses to change it.
            let sql = try await daemon.sql("DELETE FROM audit_log")
            #expect(sql.status != 0 && sql.output.contains("append-only"))
            await bff.close()
            await local.close()
        }
    }

    @Test("audit rows record what changed, after the access check, bounded: none for a refused call or a bulk invite whose rows all failed; a big request is cut off with a marker; every ListAuditLog page fits an answer, even over rows written before the cap")
    func auditSize() async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(local, "Audited")
            let bulkMethod = "orgd.v1.InvitationService/BulkInviteMembers"
            func audit(_ method: String = "", pageSize: Int32 = 0, token: String = "") async throws -> Orgd_V1_ListAuditLogResponse {
                var request = Orgd_V1_ListAuditLogRequest()
                request.method = method
                request.pageSize = pageSize
                request.pageToken = token
                return try await local.audit.listAuditLog(request)
            }
            // 500 invalid rows of 4 KB each: the call answers OK, nothing changes, so no audit row.
            let long = String(repeating: "x", count: 4000)
            var bulk = Orgd_V1_BulkInviteMembersRequest()
            bulk.organizationID = organization.id
            bulk.invitees = (0..<500).map {
                var row = InvitationEndToEndTests.inviteRequest(organization.id, "p\($0)@x.example")
                row.givenName = long
                return row
            }
            let results = try await local.invitations.bulkInviteMembers(bulk).results
            #expect(results.count == 500 && results.allSatisfy { $0.outcome == .invalid })
            // Refused by the access check: no row either.
            let nobody = try await MembershipEndToEndTests.user(local)
            let nobodyClient = try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: nobody.id))
            #expect(await rpcError { _ = try await nobodyClient.invitations.bulkInviteMembers(bulk) }?.code == .permissionDenied)
            await nobodyClient.close()
            #expect(try await audit(bulkMethod).entries.isEmpty)

            // One valid row among big invalid ones changes something: one row, cut off with a marker.
            var mixed = bulk
            mixed.invitees = [InvitationEndToEndTests.inviteRequest(organization.id, "ok@x.example")] + bulk.invitees.prefix(20)
            #expect(try await local.invitations.bulkInviteMembers(mixed).results.first?.outcome == .sent)
            let rows = try await audit(bulkMethod).entries
            #expect(rows.count == 1)
            let json = rows.first?.requestJson ?? ""
            #expect(json.utf8.count < 8192 + 40 && json.contains("ok@x.example"), "\(json.utf8.count)")
            #expect(json.range(of: #"…\(truncated, [0-9]{5,} bytes\)$"#, options: .regularExpression) != nil, "\(json.suffix(60))")

            // Rows written before the cap: 600 of 10 KB and one of 5 MB. Every
            // page of the largest size answers OK, and the pages hold every row.
            let insert = """
                WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
                INSERT INTO audit_log (time, actor, method, request_json) SELECT 0, 'legacy', 'legacy/Big', replace(hex(zeroblob(5000)), '0', 'y') FROM n;
                INSERT INTO audit_log (time, actor, method, request_json) VALUES (0, 'legacy', 'legacy/Huge', replace(hex(zeroblob(2500000)), '0', 'z'));
                SELECT count(*) FROM audit_log;
                """
            let sql = try await daemon.sql(insert, postgres: """
                INSERT INTO audit_log (time, actor, method, request_json) SELECT 0, 'legacy', 'legacy/Big', repeat('y', 10000) FROM generate_series(1, 600);
                INSERT INTO audit_log (time, actor, method, request_json) VALUES (0, 'legacy', 'legacy/Huge', repeat('z', 5000000));
                SELECT count(*) FROM audit_log;
                """)
            #expect(sql.status == 0, "\(sql.output)")
            let total = Int(sql.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
            var seen = 0, pages = 0, token = ""
            repeat {
                let page = try await audit(pageSize: 1000, token: token)
                #expect(!page.entries.isEmpty)
                #expect(page.entries.allSatisfy { $0.requestJson.utf8.count < 8192 + 40 })
                seen += page.entries.count
                pages += 1
                token = page.nextPageToken
            } while !token.isEmpty && pages < 100
            #expect(seen == total && total > 600, "\(seen) of \(total)")
            #expect(pages > 1)
            let huge = try await audit("legacy/Huge").entries
            #expect(huge.count == 1 && huge.first?.requestJson.hasSuffix("…(truncated, 5000000 bytes)") == true)
            await local.close()
        }
    }
}
