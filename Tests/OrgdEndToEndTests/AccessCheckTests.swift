import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdStore
import Testing

@Suite("CheckAccess end to end")
struct AccessCheckTests {
    /// An agent allowed to read the patient's blood pressure through a study.
    static func allowedWorld(_ world: ConsentWorld) async throws -> Orgd_V1_ConsentRequest {
        let study = try await world.request("Study", [world.bloodPressure, world.bloodGlucose])
        try await world.ask(study)
        try await world.answer(study, [(world.bloodPressure, true), (world.bloodGlucose, false)])
        let allowed = try await world.check(world.bloodPressure)
        #expect(allowed.allowed && allowed.reason == .allowed)
        #expect(allowed.organizationID == world.organization.id && allowed.consentRequestID == study.id)
        return study
    }

    @Test("allowed says which organisation and request; a false answer or another scope is NO_CONSENT")
    func allowedAndWhy() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            let glucose = try await world.check(world.bloodGlucose)
            #expect(!glucose.allowed && glucose.reason == .noConsent)
        }
    }

    @Test("removing the agent denies the very next check")
    func removeAgent() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            var remove = Orgd_V1_RemoveStaffMemberRequest()
            remove.organizationID = world.organization.id
            remove.userID = world.agent.id
            _ = try await world.local.memberships.removeStaffMember(remove)
            #expect(try await world.check(world.bloodPressure).reason == .notAnAgent)
        }
    }

    @Test("taking away the agent role (leaving membership manager) denies: a manager is not an agent")
    func managerIsNotAnAgent() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            var update = Orgd_V1_UpdateStaffMemberRequest()
            update.organizationID = world.organization.id
            update.userID = world.agent.id
            update.roles = [.membershipManager]
            _ = try await world.local.memberships.updateStaffMember(update)
            let denied = try await world.check(world.bloodPressure)
            #expect(!denied.allowed && denied.reason == .notAnAgent)
            // The organisation's own membership manager never could.
            #expect(try await world.check(agent: world.manager.id, world.bloodPressure).reason == .notAnAgent)
        }
    }

    @Test("revoking the consent denies the very next check")
    func revokeConsent() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await Self.allowedWorld(world)
            _ = try await world.patientClient.consents.revokeConsents(ConsentWorld.answers(world.patient.id, study.id, [(world.bloodPressure, nil)]))
            #expect(try await world.check(world.bloodPressure).reason == .noConsent)
        }
    }

    @Test("changing the answer to false denies the very next check")
    func updateToFalse() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await Self.allowedWorld(world)
            _ = try await world.patientClient.consents.updateConsents(ConsentWorld.answers(world.patient.id, study.id, [(world.bloodPressure, false)]))
            #expect(try await world.check(world.bloodPressure).reason == .noConsent)
        }
    }

    @Test("ending the request denies the very next check")
    func endRequest() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await Self.allowedWorld(world)
            var end = Orgd_V1_EndConsentRequestRequest()
            end.id = study.id
            let ended = try await world.managerClient.consents.endConsentRequest(end)
            #expect(ended.hasEndTime)
            #expect(try await world.check(world.bloodPressure).reason == .noConsent)
        }
    }

    @Test("deactivating the organisation denies the very next check; reactivating allows again")
    func deactivateOrganization() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = world.organization.id
            _ = try await world.local.organizations.deactivateOrganization(deactivate)
            #expect(try await world.check(world.bloodPressure).reason == .notAnAgent)
            var reactivate = Orgd_V1_ReactivateOrganizationRequest()
            reactivate.id = world.organization.id
            _ = try await world.local.organizations.reactivateOrganization(reactivate)
            #expect(try await world.check(world.bloodPressure).allowed)
        }
    }

    @Test("disabling the agent's account denies the very next check")
    func disableAgent() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            var disable = Orgd_V1_UpdateUserRequest()
            disable.id = world.agent.id
            disable.version = world.agent.version
            disable.status = .disabled
            _ = try await world.local.memberships.updateUser(disable)
            #expect(try await world.check(world.bloodPressure).reason == .agentDisabled)
        }
    }

    @Test("moving the request's dates so now is outside them denies; consents count only inside [start, end); a consented period is never widened back")
    func requestDates() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await Self.allowedWorld(world)
            var update = Orgd_V1_UpdateConsentRequestRequest()
            update.id = study.id
            update.version = study.version
            update.startTime = .init(date: Date().addingTimeInterval(3600))
            let future = try await world.managerClient.consents.updateConsentRequest(update)
            #expect(try await world.check(world.bloodPressure).reason == .noConsent)
            var back = Orgd_V1_UpdateConsentRequestRequest()
            back.id = study.id
            back.version = future.version
            back.startTime = .init(date: Date().addingTimeInterval(-3600))
            // Widening a period patients consented to needs their answer again (SECURITY.md).
            let widened = await rpcError { _ = try await world.managerClient.consents.updateConsentRequest(back) }
            #expect(widened?.code == .failedPrecondition)
            #expect(try await world.check(world.bloodPressure).reason == .noConsent)
        }
    }

    @Test("an agency request: consent for any agent of the organisation, including one who joins later")
    func agencyRequest() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let agency = try await world.request("Agency", [world.bloodPressure], kind: .agency)
            try await world.ask(agency)
            try await world.answer(agency, [(world.bloodPressure, true)])
            let newcomer = try await MembershipEndToEndTests.user(world.local)
            #expect(try await world.check(agent: newcomer.id, world.bloodPressure).reason == .notAnAgent)
            try await MembershipEndToEndTests.addStaff(world.local, world.organization.id, newcomer.id, [.agent])
            #expect(try await world.check(agent: newcomer.id, world.bloodPressure).allowed)
        }
    }

    @Test("an agent of another organisation is not allowed by this one's consent")
    func otherOrganization() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            let other = try await MembershipEndToEndTests.organization(world.local, "Elsewhere")
            let stranger = try await MembershipEndToEndTests.user(world.local)
            try await MembershipEndToEndTests.addStaff(world.local, other.id, stranger.id, [.agent])
            #expect(try await world.check(agent: stranger.id, world.bloodPressure).reason == .noConsent)
        }
    }

    @Test("unknown agent, patient and scope are answered with their reasons, not errors")
    func unknowns() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            #expect(try await world.check(agent: UUID().uuidString, world.bloodPressure).reason == .unknownAgent)
            #expect(try await world.check(patient: UUID().uuidString, world.bloodPressure).reason == .unknownPatient)
            var nothing = Orgd_V1_Scope()
            nothing.codingSystem = "x"
            nothing.codingCode = "y"
            #expect(try await world.check(nothing).reason == .unknownScope)
            let malformed = await rpcError { _ = try await world.service.consents.checkAccess(ConsentWorld.checkRequest("nope", world.patient.id, world.bloodPressure)) }
            #expect(malformed?.code == .invalidArgument && malformed?.fieldViolations.first?.field == "agent_user_id")
        }
    }

    @Test("BatchCheckAccess agrees with single checks on a randomised data set")
    func batchAgreesWithSingle() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            var generator = SeededGenerator(seed: 20261121)
            var agents = [world.agent.id, world.manager.id, UUID().uuidString]
            for _ in 0..<5 {
                let user = try await MembershipEndToEndTests.user(world.local)
                let roles: [Orgd_V1_StaffRole] = Bool.random(using: &generator) ? [.agent] : [.membershipManager]
                try await MembershipEndToEndTests.addStaff(world.local, world.organization.id, user.id, roles)
                agents.append(user.id)
            }
            // Patients answer through an app acting for each of them.
            var account = Orgd_V1_CreateServiceAccountRequest()
            account.name = "patient-app"
            account.mayActAs = true
            var token = Orgd_V1_CreateTokenRequest()
            token.serviceAccountID = try await world.local.tokens.createServiceAccount(account).id
            let appSecret = try await world.local.tokens.createToken(token).secret
            var patients: [(patient: String, user: String)] = [(world.patient.id, world.patientUser.id)]
            for index in 0..<7 {
                let user = try await MembershipEndToEndTests.user(world.local)
                let patient = try await ConsentWorld.addPatient(world.local, organization: world.organization.id, user: user.id, family: "Random \(index)")
                patients.append((patient.id, user.id))
            }
            let scopes = [world.bloodPressure, world.bloodGlucose]
            let studies = [
                try await world.request("Study A", scopes),
                try await world.request("Agency B", [world.bloodPressure], kind: .agency),
                try await world.request("Ended C", scopes),
            ]
            for study in studies { try await world.ask(study, patients.map(\.patient)) }
            for (patient, user) in patients {
                let app = try await OrgdClient.connect(to: world.daemon.tcp, token: appSecret, actAs: user)
                for study in studies {
                    let answers = study.scopes.compactMap { scope -> (Orgd_V1_Scope, Bool)? in
                        Int.random(in: 0..<3, using: &generator) == 0 ? nil : (scope, Bool.random(using: &generator))
                    }
                    if !answers.isEmpty { try await world.answer(study, answers, patient: patient, by: app) }
                }
                await app.close()
            }
            var end = Orgd_V1_EndConsentRequestRequest()
            end.id = studies[2].id
            _ = try await world.managerClient.consents.endConsentRequest(end)

            var batch = Orgd_V1_BatchCheckAccessRequest()
            for agent in agents {
                for (patient, _) in patients + [(UUID().uuidString, "")] {
                    for scope in scopes { batch.checks.append(ConsentWorld.checkRequest(agent, patient, scope)) }
                }
            }
            batch.checks.shuffle(using: &generator)
            let results = try await world.service.consents.batchCheckAccess(batch).results
            #expect(results.count == batch.checks.count)
            var allowed = 0
            for (check, result) in zip(batch.checks, results) {
                let single = try await world.service.consents.checkAccess(check)
                #expect(single == result, "\(check.agentUserID) \(check.patientID) \(check.scope.codingCode)")
                allowed += result.allowed ? 1 : 0
            }
            #expect(allowed > 0 && allowed < results.count, "the data set has both answers (\(allowed) of \(results.count) allowed)")


            // ListAccessiblePatients agrees too.
            for agent in agents {
                for scope in scopes {
                    var list = Orgd_V1_ListAccessiblePatientsRequest()
                    list.agentUserID = agent
                    list.scope = ConsentWorld.reference(scope)
                    let accessible = Set(try await world.service.consents.listAccessiblePatients(list).patientIds)
                    let expected = Set(zip(batch.checks, results).filter { $0.0.agentUserID == agent && $0.0.scope.codingCode == scope.codingCode && $0.1.allowed }.map(\.0.patientID))
                    #expect(accessible == expected)
                }
            }

            // The access index answers every check exactly as the database
            // does, and goes on doing so through changes of every kind it
            // follows, each checked on the very next call.
            try await Self.expectIndexAgreesWithStore(world, batch, "after the answers")
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = world.organization.id
            _ = try await world.local.organizations.deactivateOrganization(deactivate)
            try await Self.expectIndexAgreesWithStore(world, batch, "organisation deactivated")
            var reactivate = Orgd_V1_ReactivateOrganizationRequest()
            reactivate.id = world.organization.id
            _ = try await world.local.organizations.reactivateOrganization(reactivate)
            try await Self.expectIndexAgreesWithStore(world, batch, "organisation reactivated")
            var disable = Orgd_V1_UpdateUserRequest()
            disable.id = world.agent.id
            disable.version = world.agent.version
            disable.status = .disabled
            _ = try await world.local.memberships.updateUser(disable)
            try await Self.expectIndexAgreesWithStore(world, batch, "agent disabled")
            var remove = Orgd_V1_RemoveStaffMemberRequest()
            remove.organizationID = world.organization.id
            remove.userID = agents[3]
            _ = try await world.local.memberships.removeStaffMember(remove)
            try await Self.expectIndexAgreesWithStore(world, batch, "a staff member removed")
            _ = try await world.patientClient.consents.revokeConsents(
                ConsentWorld.answers(world.patient.id, studies[0].id, [(world.bloodPressure, nil)]))
            try await Self.expectIndexAgreesWithStore(world, batch, "a consent revoked")
            let newcomer = try await MembershipEndToEndTests.user(world.local)
            try await MembershipEndToEndTests.addStaff(world.local, world.organization.id, newcomer.id, [.agent])
            var joined = Orgd_V1_BatchCheckAccessRequest()
            joined.checks = patients.flatMap { patient in scopes.map { ConsentWorld.checkRequest(newcomer.id, patient.patient, $0) } }
            try await Self.expectIndexAgreesWithStore(world, joined, "an agent joined (the agency request covers them)")
        }
    }

    /// Sends `batch` (answered from the access index: its counter moves by
    /// one) and expects each answer to be the database's own decision, read
    /// straight from the daemon's store.
    static func expectIndexAgreesWithStore(_ world: ConsentWorld, _ batch: Orgd_V1_BatchCheckAccessRequest, _ label: String) async throws {
        let before = world.daemon.indexAnswers
        let answers = try await world.service.consents.batchCheckAccess(batch).results
        #expect(world.daemon.indexAnswers == before + 1, "\(label): answered from the access index")
        let checks = batch.checks
        let expected = try await world.daemon.store.read { tx in
            try checks.map { check -> String in
                guard let scope = try tx.scope(codingSystem: check.scope.codingSystem, codingCode: check.scope.codingCode) else { return "no scope" }
                let decision = try tx.checkAccess(agentID: check.agentUserID.lowercased(), patientID: check.patientID.lowercased(), scopeID: scope.id)
                return "\(decision.allowed) \(decision.organizationID ?? "") \(decision.consentRequestID ?? "") \(decision.message)"
            }
        }
        #expect(answers.count == expected.count)
        for (answer, expected) in zip(answers, expected) {
            #expect("\(answer.allowed) \(answer.organizationID) \(answer.consentRequestID) \(answer.message)" == expected, "\(label)")
        }
    }

    @Test("the access index authenticates as the database does: a disabled admin's token is refused on the very next check and works again once re-enabled; a revoked token is refused")
    func indexTokens() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            _ = try await Self.allowedWorld(world)
            let admin = try await MembershipEndToEndTests.user(world.local, role: .admin)
            var create = Orgd_V1_CreateTokenRequest()
            create.userID = admin.id
            let issued = try await world.local.tokens.createToken(create)
            let client = try await world.daemon.client(world.daemon.tcp, token: issued.secret)
            defer { Task { await client.close() } }
            let check = ConsentWorld.checkRequest(world.agent.id, world.patient.id, world.bloodPressure)
            let before = world.daemon.indexAnswers
            #expect(try await client.consents.checkAccess(check).allowed)

            var update = Orgd_V1_UpdateUserRequest()
            update.id = admin.id
            update.version = admin.version
            update.status = .disabled
            let disabled = try await world.local.memberships.updateUser(update)
            #expect(await rpcError { _ = try await client.consents.checkAccess(check) }?.code == .unauthenticated)
            update.version = disabled.version
            update.status = admin.status
            _ = try await world.local.memberships.updateUser(update)
            #expect(try await client.consents.checkAccess(check).allowed)

            var revoke = Orgd_V1_RevokeTokenRequest()
            revoke.id = issued.token.id
            _ = try await world.local.tokens.revokeToken(revoke)
            #expect(await rpcError { _ = try await client.consents.checkAccess(check) }?.code == .unauthenticated)
            #expect(world.daemon.indexAnswers == before + 4, "every check was answered from the access index")
        }
    }

    @Test("BatchCheckAccess refuses more than 1000 checks, naming the field")
    func batchLimit() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            var batch = Orgd_V1_BatchCheckAccessRequest()
            batch.checks = Array(repeating: ConsentWorld.checkRequest(world.agent.id, world.patient.id, world.bloodPressure), count: 1001)
            let error = await rpcError { _ = try await world.service.consents.batchCheckAccess(batch) }
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "checks")
        }
    }

    @Test("ListAccessiblePatients pages through the patients an agent may read")
    func accessiblePaging() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let agency = try await world.request("Agency", [world.bloodPressure], kind: .agency)
            var expected: [String] = [world.patient.id]
            var askees = [world.patient.id]
            for index in 0..<4 { askees.append(try await ConsentWorld.addPatient(world.local, organization: world.organization.id, family: "P\(index)").id) }
            try await world.ask(agency, askees)
            try await world.answer(agency, [(world.bloodPressure, true)])
            expected = [world.patient.id]
            var list = Orgd_V1_ListAccessiblePatientsRequest()
            list.agentUserID = world.agent.id
            list.scope = ConsentWorld.reference(world.bloodPressure)
            list.pageSize = 1
            let first = try await world.service.consents.listAccessiblePatients(list)
            #expect(first.patientIds == expected && first.nextPageToken.isEmpty)
        }
    }
}

/// A small deterministic generator, so a failing randomised test can be re-run.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
