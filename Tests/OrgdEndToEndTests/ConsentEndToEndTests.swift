import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

@Suite("ConsentService rules end to end")
struct ConsentEndToEndTests {
    @Test("seed 002: pending on Demo Study 2 for blood pressure, consented to Demo Study 1 for blood glucose")
    func seedScenario() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study1 = try await world.request("Demo Study 1", [world.bloodGlucose])
            let study2 = try await world.request("Demo Study 2", [world.bloodPressure])
            try await world.ask(study1)
            try await world.ask(study2)
            try await world.answer(study1, [(world.bloodGlucose, true)])

            var get = Orgd_V1_GetPatientConsentsRequest()
            get.patientID = world.patient.id
            let view = try await world.patientClient.consents.getPatientConsents(get)
            #expect(view.patient.id == world.patient.id)
            #expect(view.patient.familyName == "ThePatient")
            // Consolidated: every scope consented anywhere, once. (Seed 002's
            // sample lists blood pressure here although it is only pending; by
            // its own rule the consented scope is blood glucose.)
            #expect(view.consolidatedConsentedScopes == [world.bloodGlucose])

            #expect(view.studiesPendingConsent.count == 1)
            let pending = view.studiesPendingConsent[0]
            #expect(pending.id == study2.id)
            #expect(pending.name == "Demo Study 2")
            #expect(pending.organization.id == world.organization.id && pending.organization.name == world.organization.name)
            #expect(pending.pendingScopeConsents.count == 1)
            #expect(pending.pendingScopeConsents[0].code == world.bloodPressure)
            #expect(pending.pendingScopeConsents[0].code.codingSystem == "https://w3id.org/openmhealth")
            #expect(pending.pendingScopeConsents[0].code.codingCode == "omh:blood-pressure:4.0")
            #expect(pending.pendingScopeConsents[0].code.text == "Blood pressure")
            #expect(pending.pendingScopeConsents[0].consented.kind == .nullValue(.nullValue), "consented: null while pending")
            #expect(pending.scopeConsents.isEmpty)

            #expect(view.studies.count == 1)
            let answered = view.studies[0]
            #expect(answered.id == study1.id && answered.name == "Demo Study 1")
            #expect(answered.scopeConsents.count == 1)
            #expect(answered.scopeConsents[0].code == world.bloodGlucose)
            #expect(answered.scopeConsents[0].code.codingCode == "omh:blood-glucose:4.0")
            #expect(answered.scopeConsents[0].consented.kind == .boolValue(true))
            #expect(answered.pendingScopeConsents.isEmpty)

            // POST the pending answer as seed 002 does; the view moves it over.
            let after = try await world.answer(study2, [(world.bloodPressure, true)])
            #expect(after.studiesPendingConsent.isEmpty)
            #expect(after.studies.map(\.id) == [study1.id, study2.id])
            #expect(after.consolidatedConsentedScopes == [world.bloodGlucose, world.bloodPressure])
        }
    }

    @Test("scopes are unique by coding system and code")
    func scopeUnique() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let duplicate = await rpcError { _ = try await ConsentWorld.scope(world.local, "omh:blood-pressure:4.0", "Again") }
            #expect(duplicate?.code == .alreadyExists)
            let list = try await world.agentClient.consents.listScopes(.init())
            #expect(list.scopes.map(\.codingCode) == ["omh:blood-pressure:4.0", "omh:blood-glucose:4.0"])
        }
    }

    @Test("consent requests: scopes required and known, dates ordered, active organisation only")
    func requestValidation() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let noScopes = await rpcError { _ = try await world.request("Empty", []) }
            #expect(noScopes?.code == .invalidArgument && noScopes?.fieldViolations.first?.field == "scopes")
            var unknown = Orgd_V1_Scope()
            unknown.codingSystem = ConsentWorld.openMHealth
            unknown.codingCode = "omh:nothing:1.0"
            let unknownScope = await rpcError { _ = try await world.request("Unknown", [world.bloodPressure, unknown]) }
            // A reference to nothing is NOT_FOUND naming the field (PROTOCOL.md's one rule).
            #expect(unknownScope?.code == .notFound && unknownScope?.fieldViolations.first?.field == "scopes[1]")
            let backwards = await rpcError { _ = try await world.request("Backwards", [world.bloodPressure], start: Date(), end: Date().addingTimeInterval(-60)) }
            #expect(backwards?.fieldViolations.first?.field == "end_time")
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = world.organization.id
            _ = try await world.local.organizations.deactivateOrganization(deactivate)
            let inactive = await rpcError { _ = try await world.request("Too late", [world.bloodPressure]) }
            #expect(inactive?.code == .failedPrecondition)
        }
    }

    @Test("asking: only the organisation's patients, each once")
    func asking() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure])
            var ask = Orgd_V1_AskPatientsRequest()
            ask.consentRequestID = study.id
            ask.patientIds = [world.patient.id]
            #expect(try await world.managerClient.consents.askPatients(ask).asked == 1)
            #expect(try await world.managerClient.consents.askPatients(ask).asked == 0)
            var outsider = Orgd_V1_CreatePatientRequest()
            outsider.givenName = "Out"
            outsider.familyName = "Sider"
            ask.patientIds = [world.patient.id, try await world.local.memberships.createPatient(outsider).id]
            let refused = await rpcError { _ = try await world.managerClient.consents.askPatients(ask) }
            #expect(refused?.code == .notFound && refused?.fieldViolations.first?.field == "patient_ids[1]")
            ask.patientIds = [UUID().uuidString]
            #expect(await rpcError { _ = try await world.managerClient.consents.askPatients(ask) }?.fieldViolations.first?.field == "patient_ids[0]")
        }
    }

    @Test("asking: an unknown patient id and another organisation's patient get the very same answer")
    func askingRevealsNoPatients() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure])
            let elsewhere = try await MembershipEndToEndTests.organization(world.local, "Elsewhere")
            let outsider = try await ConsentWorld.addPatient(world.local, organization: elsewhere.id, family: "Outsider")
            var ask = Orgd_V1_AskPatientsRequest()
            ask.consentRequestID = study.id
            ask.patientIds = [outsider.id]
            let foreign = try #require(await rpcError { _ = try await world.managerClient.consents.askPatients(ask) })
            ask.patientIds = [UUID().uuidString.lowercased()]
            let unknown = try #require(await rpcError { _ = try await world.managerClient.consents.askPatients(ask) })
            #expect(foreign.code == .notFound)
            #expect(foreign == unknown, "\(foreign) vs \(unknown)")
            #expect(foreign.message == "patient_ids[0]: no such patient among the patients of organization \(world.organization.id)")
        }
    }

    @Test("answers: answer pending, update answered, revoke back to pending; each refused out of turn")
    func answerLifecycle() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure, world.bloodGlucose])
            try await world.ask(study)
            let consents = world.patientClient.consents
            let pid = world.patient.id
            let updateFirst = await rpcError { _ = try await consents.updateConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, true)])) }
            #expect(updateFirst?.code == .failedPrecondition)
            let revokeFirst = await rpcError { _ = try await consents.revokeConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, nil)])) }
            #expect(revokeFirst?.code == .failedPrecondition)

            let answered = try await consents.answerConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, false)]))
            #expect(answered.studies.first?.scopeConsents.map(\.consented) == [false])
            #expect(answered.consolidatedConsentedScopes.isEmpty)
            let again = await rpcError { _ = try await consents.answerConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, true)])) }
            #expect(again?.code == .failedPrecondition)
            let updated = try await consents.updateConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, true)]))
            #expect(updated.consolidatedConsentedScopes == [world.bloodPressure])
            let revoked = try await consents.revokeConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, nil)]))
            #expect(revoked.consolidatedConsentedScopes.isEmpty)
            #expect(revoked.studiesPendingConsent.first?.pendingScopeConsents.map(\.code) == [world.bloodPressure, world.bloodGlucose])
        }
    }

    @Test("answers name the wrong field: unknown request, not asked, scope not asked for, consented missing; nothing is half-applied")
    func answerRefusals() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let asked = try await world.request("Asked", [world.bloodPressure])
            let notAsked = try await world.request("Not asked", [world.bloodPressure])
            try await world.ask(asked)
            let consents = world.patientClient.consents
            let pid = world.patient.id
            // Missing references are NOT_FOUND, the wrong state FAILED_PRECONDITION, bad values INVALID_ARGUMENT.
            let cases: [(Orgd_V1_ConsentAnswersRequest, String, StatusCode)] = [
                (ConsentWorld.answers(pid, UUID().uuidString, [(world.bloodPressure, true)]), "study_scope_consents[0].study_id", .notFound),
                (ConsentWorld.answers(pid, notAsked.id, [(world.bloodPressure, true)]), "study_scope_consents[0].study_id", .failedPrecondition),
                (ConsentWorld.answers(pid, asked.id, [(world.bloodPressure, true), (world.bloodGlucose, true)]), "study_scope_consents[0].scope_consents[1]", .notFound),
                (ConsentWorld.answers(pid, asked.id, [(world.bloodPressure, nil)]), "study_scope_consents[0].scope_consents[0].consented", .invalidArgument),
            ]
            for (request, field, code) in cases {
                let error = await rpcError { _ = try await consents.answerConsents(request) }
                #expect(error?.code == code, "\(field)")
                #expect(error?.fieldViolations.first?.field == field)
            }
            // The third case had a valid first answer: it was not applied.
            var get = Orgd_V1_GetPatientConsentsRequest()
            get.patientID = pid
            #expect(try await consents.getPatientConsents(get).studies.isEmpty)
        }
    }

    @Test("only the patient (or a service acting for them) answers; not an admin, not another patient")
    func onlyThePatientAnswers() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure])
            try await world.ask(study)
            let body = ConsentWorld.answers(world.patient.id, study.id, [(world.bloodPressure, true)])
            #expect(await rpcError { _ = try await world.local.consents.answerConsents(body) }?.code == .permissionDenied)
            let otherUser = try await MembershipEndToEndTests.user(world.local)
            _ = try await ConsentWorld.addPatient(world.local, organization: world.organization.id, user: otherUser.id, family: "Other")
            let other = try await world.daemon.client(world.daemon.tcp, token: try await MembershipEndToEndTests.token(world.local, user: otherUser.id))
            #expect(await rpcError { _ = try await other.consents.answerConsents(body) }?.code == .permissionDenied)
            await other.close()

            var account = Orgd_V1_CreateServiceAccountRequest()
            account.name = "patient-app"
            account.mayActAs = true
            let app = try await world.local.tokens.createServiceAccount(account)
            var token = Orgd_V1_CreateTokenRequest()
            token.serviceAccountID = app.id
            let secret = try await world.local.tokens.createToken(token).secret
            let acting = try await OrgdClient.connect(to: world.daemon.tcp, token: secret, actAs: world.patientUser.id)
            let view = try await acting.consents.answerConsents(body)
            #expect(view.consolidatedConsentedScopes == [world.bloodPressure])
            await acting.close()
        }
    }

    @Test("history records every change with who and for whom, is paged, and the database refuses to alter it")
    func history() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure])
            try await world.ask(study)
            let pid = world.patient.id
            try await world.answer(study, [(world.bloodPressure, true)])
            _ = try await world.patientClient.consents.updateConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, false)]))
            _ = try await world.patientClient.consents.revokeConsents(ConsentWorld.answers(pid, study.id, [(world.bloodPressure, nil)]))
            var request = Orgd_V1_ListConsentHistoryRequest()
            request.patientID = pid
            request.pageSize = 3
            let first = try await world.patientClient.consents.listConsentHistory(request)
            request.pageToken = first.nextPageToken
            let second = try await world.patientClient.consents.listConsentHistory(request)
            let entries = first.entries + second.entries
            #expect(entries.map(\.action) == ["asked", "answered", "updated", "revoked"])
            #expect(entries.map { $0.hasBefore ? "\($0.before)" : "-" } == ["-", "-", "true", "false"])
            #expect(entries.map { $0.hasAfter ? "\($0.after)" : "-" } == ["-", "true", "false", "-"])
            #expect(entries[0].actor == world.manager.id && entries[0].actorKind == .user)
            #expect(entries[1].actor == world.patientUser.id && entries[1].actorKind == .user && entries[1].scope == world.bloodPressure)
            #expect(Set(entries.map(\.consentRequestID)) == [study.id])

            for sql in ["DELETE FROM consent_history", "UPDATE consent_history SET after = 1"] {
                let result = try await world.daemon.sql(sql)
                #expect(result.status != 0 && result.output.contains("append-only"), "\(sql): \(result.output)")
            }
            request.pageToken = ""
            request.pageSize = 100
            #expect(try await world.patientClient.consents.listConsentHistory(request).entries.count == 4)
        }
    }
}
