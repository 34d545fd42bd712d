import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// Who answers consents, for what period, and who reads the mail: the rules
/// a black-box attack found holes in, over real sockets.
@Suite("consent and mailer rules")
struct ConsentRulesTests {
    @Test("consents are answered by patients only: not an admin who re-links a patient to themself, not a login holding a system role (nor a service acting for one), not the local operator with orgd-act-as")
    func onlyPatientsAnswer() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let daemon = world.daemon
            let study = try await world.request("Study", [world.bloodPressure])
            try await world.ask(study)
            let body = ConsentWorld.answers(world.patient.id, study.id, [(world.bloodPressure, true)])

            // The local operator acting for the patient.
            let localActing = try await OrgdClient.connect(to: daemon.unix, actAs: world.patientUser.id)
            #expect(await rpcError { _ = try await localActing.consents.answerConsents(body) }?.code == .permissionDenied)
            await localActing.close()

            // The attack: an admin re-links the patient record to their own login, then answers.
            let admin = try await MembershipEndToEndTests.user(world.local, role: .admin)
            let adminClient = try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(world.local, user: admin.id))
            var relink = Orgd_V1_UpdatePatientRequest()
            relink.id = world.patient.id
            relink.version = world.patient.version
            relink.userID = admin.id
            #expect(await rpcError { _ = try await adminClient.memberships.updatePatient(relink) }?.code == .failedPrecondition)
            #expect(await rpcError { _ = try await adminClient.consents.answerConsents(body) }?.code == .permissionDenied)
            await adminClient.close()

            // A patient login that holds a system role anyway (written into the
            // file directly, as older versions allowed through UpdateUser).
            let sql = try await daemon.sql("UPDATE \"user\" SET system_role = 'admin' WHERE id = '\(world.patientUser.id)'")
            #expect(sql.status == 0, "\(sql.output)")
            #expect(await rpcError { _ = try await world.patientClient.consents.answerConsents(body) }?.code == .permissionDenied)
            for role in [Orgd_V1_SystemRole.none, .admin] {
                let app = try await daemon.serviceToken(role: role, mayActAs: true)
                let acting = try await OrgdClient.connect(to: daemon.tcp, token: app.secret, actAs: world.patientUser.id)
                #expect(await rpcError { _ = try await acting.consents.answerConsents(body) }?.code == .permissionDenied, "service with role \(role)")
                await acting.close()
            }

            // Nothing was answered: no consent, no access.
            var consents = Orgd_V1_GetPatientConsentsRequest()
            consents.patientID = world.patient.id
            #expect(try await world.local.consents.getPatientConsents(consents).consolidatedConsentedScopes.isEmpty)
            #expect(try await world.check(world.bloodPressure).allowed == false)
        }
    }

    @Test("the period is part of the consent: an ended request never reopens, and a running one that patients consented to is never widened")
    func periodIsPartOfTheConsent() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let end = Date().addingTimeInterval(86_400)
            let study = try await world.request("Study", [world.bloodPressure], end: end)
            try await world.ask(study)
            try await world.answer(study, [(world.bloodPressure, true)])
            #expect(try await world.check(world.bloodPressure).allowed)

            func version(_ request: Orgd_V1_ConsentRequest) async throws -> Int64 {
                var get = Orgd_V1_GetConsentRequestRequest()
                get.id = request.id
                return try await world.local.consents.getConsentRequest(get).version
            }
            func update(_ request: Orgd_V1_ConsentRequest, _ change: (inout Orgd_V1_UpdateConsentRequestRequest) -> Void) async throws -> RPCError? {
                var update = Orgd_V1_UpdateConsentRequestRequest()
                update.id = request.id
                update.version = try await version(request)
                change(&update)
                return await rpcError { _ = try await world.managerClient.consents.updateConsentRequest(update) }
            }
            // Running, with a consent given: later end or no end is refused.
            let later = try await update(study) { $0.endTime = .init(date: end.addingTimeInterval(86_400)) }
            #expect(later?.code == .failedPrecondition && later?.fieldViolations.first?.field == "end_time", "\(String(describing: later))")
            let open = try await update(study) { $0.removeEndTime = true }
            #expect(open?.code == .failedPrecondition && open?.fieldViolations.first?.field == "remove_end_time")
            // Narrowing is fine.
            #expect(try await update(study) { $0.endTime = .init(date: end.addingTimeInterval(-3600)) } == nil)

            // Ended: the period never changes again, and access stays denied.
            var endIt = Orgd_V1_EndConsentRequestRequest()
            endIt.id = study.id
            _ = try await world.managerClient.consents.endConsentRequest(endIt)
            #expect(try await world.check(world.bloodPressure).allowed == false)
            let reopened = try await update(study) { $0.removeEndTime = true }
            #expect(reopened?.code == .failedPrecondition && reopened?.message.contains("has ended") == true, "\(String(describing: reopened))")
            let extended = try await update(study) { $0.endTime = .init(date: Date().addingTimeInterval(365 * 86_400)) }
            #expect(extended?.code == .failedPrecondition && extended?.message.contains("has ended") == true)
            let currentVersion = try await version(study)
            let adminReopen = await rpcError {
                var update = Orgd_V1_UpdateConsentRequestRequest()
                update.id = study.id
                update.version = currentVersion
                update.removeEndTime = true
                _ = try await world.local.consents.updateConsentRequest(update)
            }
            #expect(adminReopen?.code == .failedPrecondition)
            #expect(try await update(study) { $0.name = "Study (closed)" } == nil)
            #expect(try await world.check(world.bloodPressure).allowed == false)

            // A request nobody has consented to yet may still be re-dated freely.
            let draft = try await world.request("Draft", [world.bloodPressure], end: end)
            #expect(try await update(draft) { $0.removeEndTime = true } == nil)
        }
    }

    @Test("only a mailer service (or the local operator) claims or acknowledges the outbox: not a role-less service, not an admin service, not a superadmin")
    func onlyTheMailerReadsMail() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let daemon = world.daemon
            _ = try await world.managerClient.invitations.inviteMember(InvitationEndToEndTests.inviteRequest(world.organization.id, "mail@x.example"))
            var claim = Orgd_V1_ClaimOutboxRequest()
            claim.mailerID = "m"
            var ack = Orgd_V1_AckOutboxRequest()
            ack.id = UUID().uuidString
            ack.mailerID = "m"
            ack.delivered = true
            let adminService = try await daemon.client(daemon.tcp, token: try await daemon.serviceToken(role: .superadmin).secret)
            let superadmin = try await MembershipEndToEndTests.user(world.local, role: .superadmin)
            let superadminClient = try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(world.local, user: superadmin.id))
            for (name, client) in [("role-less service", world.service), ("superadmin service", adminService), ("superadmin user", superadminClient)] {
                #expect(await rpcError { _ = try await client.invitations.claimOutbox(claim) }?.code == .permissionDenied, "\(name)")
                #expect(await rpcError { _ = try await client.invitations.ackOutbox(ack) }?.code == .permissionDenied, "\(name)")
            }
            let mailer = try await daemon.serviceToken(role: .none, name: "mailer", mailer: true)
            let accounts = try await world.local.tokens.listServiceAccounts(.init()).serviceAccounts
            #expect(accounts.filter(\.mailer).map(\.name) == ["mailer"])
            let mailerClient = try await daemon.client(daemon.tcp, token: mailer.secret)
            let mail = try await mailerClient.invitations.claimOutbox(claim).messages
            #expect(mail.count == 1 && mail[0].token.hasPrefix("inv_"))
            ack.id = mail[0].id
            _ = try await mailerClient.invitations.ackOutbox(ack)
            for client in [adminService, superadminClient, mailerClient] { await client.close() }
        }
    }
}
