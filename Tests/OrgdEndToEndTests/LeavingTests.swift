import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdStore
import Testing

/// Leaving an organisation (issue 13 item 2) and history that says what was
/// asked (item 8), over a real socket.
@Suite("Leaving an organisation, and what history says was asked")
struct LeavingTests {
    /// An admin user and a client speaking as them, so history can name the remover.
    static func admin(_ world: ConsentWorld) async throws -> (Orgd_V1_User, OrgdClient) {
        let admin = try await MembershipEndToEndTests.user(world.local, role: .admin)
        let client = try await world.daemon.client(world.daemon.tcp, token: try await MembershipEndToEndTests.token(world.local, user: admin.id))
        return (admin, client)
    }

    static func removePatient(_ client: OrgdClient, _ organization: String, _ patient: String) async throws {
        var remove = Orgd_V1_RemovePatientMemberRequest()
        remove.organizationID = organization
        remove.patientID = patient
        _ = try await client.memberships.removePatientMember(remove)
    }

    static func addPatient(_ client: OrgdClient, _ organization: String, _ patient: String) async throws {
        var add = Orgd_V1_AddPatientMemberRequest()
        add.organizationID = organization
        add.patientID = patient
        _ = try await client.memberships.addPatientMember(add)
    }

    static func history(_ world: ConsentWorld, patient: String? = nil) async throws -> [Orgd_V1_ConsentHistoryEntry] {
        var request = Orgd_V1_ListConsentHistoryRequest()
        request.patientID = patient ?? world.patient.id
        request.pageSize = 1000
        return try await world.local.consents.listConsentHistory(request).entries
    }

    static func view(_ world: ConsentWorld) async throws -> Orgd_V1_PatientConsents {
        var get = Orgd_V1_GetPatientConsentsRequest()
        get.patientID = world.patient.id
        return try await world.patientClient.consents.getPatientConsents(get)
    }

    func accessible(_ world: ConsentWorld, agent: String? = nil, _ scope: Orgd_V1_Scope) async throws -> [String] {
        var list = Orgd_V1_ListAccessiblePatientsRequest()
        list.agentUserID = agent ?? world.agent.id
        list.scope = ConsentWorld.reference(scope)
        return try await world.service.consents.listAccessiblePatients(list).patientIds
    }

    func batch(_ world: ConsentWorld, _ scopes: [Orgd_V1_Scope]) async throws -> [Bool] {
        var batch = Orgd_V1_BatchCheckAccessRequest()
        batch.checks = scopes.map { ConsentWorld.checkRequest(world.agent.id, world.patient.id, $0) }
        return try await world.service.consents.batchCheckAccess(batch).results.map(\.allowed)
    }

    @Test("removing a patient member ends access through the organisation's requests on the very next call, withdraws its asks, keeps both in history; other organisations are untouched")
    func leavingEndsWhatItCarried() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let (admin, adminClient) = try await Self.admin(world)
            let agency = try await world.request("Agency", [world.bloodPressure, world.bloodGlucose], kind: .agency)
            let pendingStudy = try await world.request("Pending study", [world.bloodPressure])
            try await world.ask(agency)
            try await world.ask(pendingStudy)
            try await world.answer(agency, [(world.bloodPressure, true), (world.bloodGlucose, false)])

            // Another organisation the patient stays in, with its own agent and consent.
            let other = try await MembershipEndToEndTests.organization(world.local, "Other Clinic")
            let otherAgent = try await MembershipEndToEndTests.user(world.local)
            try await MembershipEndToEndTests.addStaff(world.local, other.id, otherAgent.id, [.agent])
            try await Self.addPatient(world.local, other.id, world.patient.id)
            let otherStudy = try await world.request("Other study", [world.bloodPressure], organization: other.id, by: world.local)
            var ask = Orgd_V1_AskPatientsRequest()
            ask.consentRequestID = otherStudy.id
            ask.patientIds = [world.patient.id]
            _ = try await world.local.consents.askPatients(ask)
            try await world.answer(otherStudy, [(world.bloodPressure, true)])

            #expect(try await world.check(world.bloodPressure).allowed)
            #expect(try await batch(world, [world.bloodPressure]) == [true])
            #expect(try await accessible(world, world.bloodPressure) == [world.patient.id])
            let before = try await Self.history(world).count

            try await Self.removePatient(adminClient, world.organization.id, world.patient.id)

            let check = try await world.check(world.bloodPressure)
            #expect(!check.allowed && check.reason == .noConsent, "\(check)")
            #expect(try await batch(world, [world.bloodPressure, world.bloodGlucose]) == [false, false])
            #expect(try await accessible(world, world.bloodPressure).isEmpty)
            // The other organisation's consent still grants its agent access.
            #expect(try await world.check(agent: otherAgent.id, world.bloodPressure).allowed)
            #expect(try await accessible(world, agent: otherAgent.id, world.bloodPressure) == [world.patient.id])

            // The view shows nothing of the organisation left: no answer, nothing pending.
            let view = try await Self.view(world)
            #expect(view.studiesPendingConsent.isEmpty)
            #expect(view.studies.map(\.id) == [otherStudy.id])
            #expect(view.consolidatedConsentedScopes == [world.bloodPressure])

            // Answering or changing what was withdrawn is refused, naming the field; nothing changes.
            let pid = world.patient.id
            for (body, change) in [
                (ConsentWorld.answers(pid, pendingStudy.id, [(world.bloodPressure, true)]), "answer"),
                (ConsentWorld.answers(pid, agency.id, [(world.bloodGlucose, true)]), "update"),
                (ConsentWorld.answers(pid, agency.id, [(world.bloodPressure, nil)]), "revoke"),
            ] {
                let error = await rpcError {
                    switch change {
                    case "answer": _ = try await world.patientClient.consents.answerConsents(body)
                    case "update": _ = try await world.patientClient.consents.updateConsents(body)
                    default: _ = try await world.patientClient.consents.revokeConsents(body)
                    }
                }
                #expect(error?.code == .failedPrecondition, "\(change): \(String(describing: error))")
                #expect(error?.fieldViolations.first?.field == "study_scope_consents[0].study_id", "\(change)")
                #expect(error?.message.contains("not asked") == true, "\(change): \(String(describing: error))")
            }
            #expect(!(try await world.check(world.bloodPressure).allowed))

            // History keeps what was, and says how it ended and who ended it.
            let entries = Array(try await Self.history(world).dropFirst(before))
            #expect(entries.map(\.action) == ["ended", "ended", "withdrawn"])
            #expect(entries.map(\.consentRequestID) == [agency.id, agency.id, pendingStudy.id])
            #expect(entries.map(\.scope) == [world.bloodPressure, world.bloodGlucose, world.bloodPressure])
            #expect(entries.map { $0.hasBefore ? "\($0.before)" : "-" } == ["true", "false", "-"])
            #expect(entries.allSatisfy { !$0.hasAfter })
            #expect(entries.allSatisfy { $0.actor == admin.id && $0.actorKind == .user && $0.actingFor.isEmpty })
            await adminClient.close()
        }
    }

    @Test("joining again revives nothing: access and asks come back only when asked and answered again")
    func joiningAgainNeedsFreshAnswers() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let agency = try await world.request("Agency", [world.bloodPressure, world.bloodGlucose], kind: .agency)
            try await world.ask(agency)
            try await world.answer(agency, [(world.bloodPressure, true)])
            #expect(try await world.check(world.bloodPressure).allowed)

            try await Self.removePatient(world.local, world.organization.id, world.patient.id)
            try await Self.addPatient(world.local, world.organization.id, world.patient.id)

            #expect(!(try await world.check(world.bloodPressure).allowed))
            #expect(try await accessible(world, world.bloodPressure).isEmpty)
            let view = try await Self.view(world)
            #expect(view.studies.isEmpty && view.studiesPendingConsent.isEmpty)
            let refused = await rpcError { try await world.answer(agency, [(world.bloodGlucose, true)]) }
            #expect(refused?.code == .failedPrecondition)

            // Asked again: every scope is pending again, nothing answered.
            try await world.ask(agency)
            let asked = try await Self.view(world)
            #expect(asked.studies.isEmpty)
            #expect(asked.studiesPendingConsent.map(\.id) == [agency.id])
            #expect(asked.studiesPendingConsent.first?.pendingScopeConsents.map(\.code) == [world.bloodPressure, world.bloodGlucose])
            #expect(!(try await world.check(world.bloodPressure).allowed))

            try await world.answer(agency, [(world.bloodPressure, true)])
            #expect(try await world.check(world.bloodPressure).allowed)
            #expect(try await accessible(world, world.bloodPressure) == [world.patient.id])
        }
    }

    @Test("removing a patient who answered nothing and was asked nothing is not refused; removing an agent stops their access")
    func otherRemovals() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let quiet = try await ConsentWorld.addPatient(world.local, organization: world.organization.id, family: "Quiet")
            try await Self.removePatient(world.local, world.organization.id, quiet.id)
            #expect(try await Self.history(world, patient: quiet.id).isEmpty)
            let again = await rpcError { try await Self.removePatient(world.local, world.organization.id, quiet.id) }
            #expect(again?.code == .notFound)

            let agency = try await world.request("Agency", [world.bloodPressure], kind: .agency)
            try await world.ask(agency)
            try await world.answer(agency, [(world.bloodPressure, true)])
            #expect(try await world.check(world.bloodPressure).allowed)
            var remove = Orgd_V1_RemoveStaffMemberRequest()
            remove.organizationID = world.organization.id
            remove.userID = world.agent.id
            _ = try await world.local.memberships.removeStaffMember(remove)
            let check = try await world.check(world.bloodPressure)
            #expect(!check.allowed && check.reason == .notAnAgent, "\(check)")
        }
    }

    @Test("history's asked entries carry each scope asked, including scopes added to the request later")
    func historySaysWhatWasAsked() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure])
            try await world.ask(study)
            var entries = try await Self.history(world)
            #expect(entries.map(\.action) == ["asked"])
            #expect(entries.map(\.scope) == [world.bloodPressure])
            #expect(entries.first?.actor == world.manager.id)

            // Adding a scope asks every patient already asked for it (and
            // names a scope already there once more: no entry for that).
            let late = try await ConsentWorld.addPatient(world.local, organization: world.organization.id, family: "Late")
            var update = Orgd_V1_UpdateConsentRequestRequest()
            update.id = study.id
            update.version = study.version
            update.addScopes = [ConsentWorld.reference(world.bloodGlucose), ConsentWorld.reference(world.bloodPressure)]
            _ = try await world.managerClient.consents.updateConsentRequest(update)
            entries = try await Self.history(world)
            #expect(entries.map(\.action) == ["asked", "asked"])
            #expect(entries.map(\.scope) == [world.bloodPressure, world.bloodGlucose])
            #expect(entries.allSatisfy { $0.actor == world.manager.id && $0.consentRequestID == study.id })
            #expect(try await Self.view(world).studiesPendingConsent.first?.pendingScopeConsents.map(\.code) == [world.bloodPressure, world.bloodGlucose])
            #expect(try await Self.history(world, patient: late.id).isEmpty, "not asked, so no entry")

            // A patient asked now is asked both scopes at once.
            try await world.ask(study, [late.id])
            let lateEntries = try await Self.history(world, patient: late.id)
            #expect(lateEntries.map(\.action) == ["asked", "asked"])
            #expect(lateEntries.map(\.scope) == [world.bloodPressure, world.bloodGlucose])

            // Asking again asks nothing new, and writes nothing.
            try await world.ask(study)
            #expect(try await Self.history(world).count == 2)
        }
    }

    /// consent_history as migration v3 made it, before v9 rebuilt it.
    static let historyBeforeV9 = """
        CREATE TABLE old_history AS SELECT * FROM consent_history;
        DROP TABLE consent_history;
        CREATE TABLE consent_history (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL UNIQUE CHECK (length(id) = 36),
          patient_id TEXT NOT NULL REFERENCES patient(id),
          consent_request_id TEXT NOT NULL REFERENCES consent_request(id),
          scope_id TEXT REFERENCES scope(id),
          action TEXT NOT NULL CHECK (action IN ('asked', 'answered', 'updated', 'revoked')),
          before INTEGER CHECK (before IN (0, 1)),
          after INTEGER CHECK (after IN (0, 1)),
          actor TEXT NOT NULL,
          acting_for TEXT NOT NULL DEFAULT '',
          time INTEGER NOT NULL
        ) STRICT;
        INSERT INTO consent_history SELECT * FROM old_history ORDER BY seq;
        DROP TABLE old_history;
        CREATE INDEX consent_history_by_patient ON consent_history(patient_id, seq);
        CREATE TRIGGER consent_history_no_update BEFORE UPDATE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        CREATE TRIGGER consent_history_no_delete BEFORE DELETE ON consent_history
          BEGIN SELECT RAISE(ABORT, 'consent history is append-only'); END;
        DELETE FROM grdb_migrations WHERE identifier LIKE 'v9:%';
        """

    @Test("migration v9 keeps every history row (ids, order, times), its append-only triggers, and lets history carry on after them", .sqliteOnly("SQLite's migration v9"))
    func migrationKeepsHistory() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let study = try await world.request("Study", [world.bloodPressure, world.bloodGlucose])
            try await world.ask(study)
            try await world.answer(study, [(world.bloodPressure, true)])
            let path = world.daemon.directory + "/orgd.sqlite"
            let sqlite = "/usr/bin/sqlite3"
            let down = try await TTRPCInteropTests.run(sqlite, [path, Self.historyBeforeV9], environment: [:])
            #expect(down.status == 0, "\(down.output)")
            let refused = try await TTRPCInteropTests.run(sqlite, [path, "INSERT INTO consent_history SELECT seq + 100, lower(hex(randomblob(18))), patient_id, consent_request_id, scope_id, 'ended', before, NULL, actor, acting_for, time FROM consent_history LIMIT 1"], environment: [:])
            #expect(refused.status != 0 && refused.output.contains("CHECK"), "the old table refuses the new action: \(refused.output)")

            // Opening the store runs v9 on the old table.
            let before = try await Self.history(world)
            let upgraded = try Store(path: path)
            let pid = world.patient.id
            let migrated = try await upgraded.read { tx in try tx.listConsentHistory(patientID: pid, after: nil, limit: 100).items }
            try upgraded.close()
            #expect(migrated.map(\.id) == before.map(\.id))
            #expect(migrated.map(\.action.rawValue) == ["asked", "asked", "answered"])
            #expect(migrated.map(\.time) == before.map { $0.time.date })
            for sql in ["DELETE FROM consent_history", "UPDATE consent_history SET after = 1"] {
                let result = try await TTRPCInteropTests.run(sqlite, [path, sql], environment: [:])
                #expect(result.status != 0 && result.output.contains("append-only"), "\(sql): \(result.output)")
            }

            // Leaving after the migration: new actions, after the old rows.
            try await Self.removePatient(world.local, world.organization.id, pid)
            let after = try await Self.history(world)
            #expect(after.map(\.action) == ["asked", "asked", "answered", "ended", "withdrawn"])
            #expect(Array(after.prefix(3).map(\.id)) == before.map(\.id))
        }
    }
}
