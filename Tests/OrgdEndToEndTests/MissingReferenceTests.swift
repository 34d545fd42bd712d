import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// PROTOCOL.md's one rule for references: an id (or scope code) in a request
/// that names nothing is NOT_FOUND, the message starts with the field path it
/// came from, and the status details carry that path — in every method that
/// takes a reference. Something that exists but is in the wrong state or
/// relation is FAILED_PRECONDITION, naming the field too.
@Suite("missing references")
struct MissingReferenceTests {
    /// The call's error, which must be NOT_FOUND naming `field` first in its message and in its details.
    static func expectMissing(_ field: String, _ call: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        let error = await rpcError(call)
        #expect(error?.code == .notFound, "\(field): \(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.message.hasPrefix("\(field): ") == true, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.fieldViolations.map(\.field) == [field], "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    @Test("every reference to nothing is NOT_FOUND with its field path, over a real socket")
    func oneRule() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let local = world.local
            let nobody = UUID().uuidString.lowercased()

            var staff = Orgd_V1_AddStaffMemberRequest()
            staff.organizationID = nobody
            staff.userID = world.agent.id
            staff.roles = [.agent]
            await Self.expectMissing("organization_id") { _ = try await local.memberships.addStaffMember(staff) }
            staff.organizationID = world.organization.id
            staff.userID = nobody
            await Self.expectMissing("user_id") { _ = try await local.memberships.addStaffMember(staff) }

            var member = Orgd_V1_AddPatientMemberRequest()
            member.organizationID = nobody
            member.patientID = world.patient.id
            await Self.expectMissing("organization_id") { _ = try await local.memberships.addPatientMember(member) }
            member.organizationID = world.organization.id
            member.patientID = nobody
            await Self.expectMissing("patient_id") { _ = try await local.memberships.addPatientMember(member) }

            var patient = Orgd_V1_CreatePatientRequest()
            patient.givenName = "No"
            patient.familyName = "Login"
            patient.userID = nobody
            await Self.expectMissing("user_id") { _ = try await local.memberships.createPatient(patient) }

            var token = Orgd_V1_CreateTokenRequest()
            token.userID = nobody
            await Self.expectMissing("user_id") { _ = try await local.tokens.createToken(token) }
            token.serviceAccountID = nobody
            await Self.expectMissing("service_account_id") { _ = try await local.tokens.createToken(token) }

            var unknownScope = Orgd_V1_Scope()
            unknownScope.codingSystem = ConsentWorld.openMHealth
            unknownScope.codingCode = "omh:nothing:1.0"
            var create = Orgd_V1_CreateConsentRequestRequest()
            create.organizationID = nobody
            create.kind = .study
            create.name = "Study"
            create.scopes = [ConsentWorld.reference(world.bloodPressure)]
            await Self.expectMissing("organization_id") { _ = try await local.consents.createConsentRequest(create) }
            await Self.expectMissing("scopes[1]") { _ = try await world.request("Study", [world.bloodPressure, unknownScope]) }

            let study = try await world.request("Study", [world.bloodPressure])
            var update = Orgd_V1_UpdateConsentRequestRequest()
            update.id = study.id
            update.version = study.version
            update.addScopes = [ConsentWorld.reference(unknownScope)]
            await Self.expectMissing("add_scopes[0]") { _ = try await world.managerClient.consents.updateConsentRequest(update) }

            var ask = Orgd_V1_AskPatientsRequest()
            ask.consentRequestID = nobody
            ask.patientIds = [world.patient.id]
            await Self.expectMissing("consent_request_id") { _ = try await local.consents.askPatients(ask) }
            ask.consentRequestID = study.id
            ask.patientIds = [world.patient.id, nobody]
            await Self.expectMissing("patient_ids[1]") { _ = try await world.managerClient.consents.askPatients(ask) }

            // Answers: an unknown study, and a scope the study does not ask for.
            let patientID = world.patient.id
            await Self.expectMissing("study_scope_consents[0].study_id") {
                _ = try await world.patientClient.consents.answerConsents(ConsentWorld.answers(patientID, nobody, [(world.bloodPressure, true)]))
            }
            try await world.ask(study)
            await Self.expectMissing("study_scope_consents[0].scope_consents[0]") {
                _ = try await world.patientClient.consents.answerConsents(ConsentWorld.answers(patientID, study.id, [(world.bloodGlucose, true)]))
            }
            // It exists but was not asked of this patient: the wrong state, not missing.
            let unasked = try await world.request("Not asked", [world.bloodPressure])
            let notAsked = await rpcError {
                _ = try await world.patientClient.consents.answerConsents(ConsentWorld.answers(patientID, unasked.id, [(world.bloodPressure, true)]))
            }
            #expect(notAsked?.code == .failedPrecondition && notAsked?.fieldViolations.first?.field == "study_scope_consents[0].study_id")

            var accessible = Orgd_V1_ListAccessiblePatientsRequest()
            accessible.agentUserID = world.agent.id
            accessible.scope = ConsentWorld.reference(unknownScope)
            await Self.expectMissing("scope") { _ = try await world.service.consents.listAccessiblePatients(accessible) }

            // Nothing was written by any of the refused calls.
            var consents = Orgd_V1_GetPatientConsentsRequest()
            consents.patientID = world.patient.id
            #expect(try await local.consents.getPatientConsents(consents).consolidatedConsentedScopes.isEmpty)
        }
    }

    @Test("seed 003's team is an organisation: an invitation names an existing, active one")
    func invitationsNameATeam() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let local = world.local
            var invite = Orgd_V1_InviteMemberRequest()
            invite.organizationID = UUID().uuidString.lowercased()
            invite.title = "Dr"
            invite.givenName = "Tess"
            invite.familyName = "Team"
            invite.email = "tess.team@example.org"
            invite.role = "agent"
            let toNowhere = invite
            await Self.expectMissing("organization_id") { _ = try await local.invitations.inviteMember(toNowhere) }
            invite.organizationID = world.organization.id
            let toInactive = invite
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = world.organization.id
            _ = try await local.organizations.deactivateOrganization(deactivate)
            let refused = await rpcError { _ = try await local.invitations.inviteMember(toInactive) }
            #expect(refused?.code == .failedPrecondition)
        }
    }
}
