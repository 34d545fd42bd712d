import Foundation
import OrgdClient
import OrgdCore
import OrgdProto

/// A small world for consent tests, built through the API on a real daemon:
/// an organisation with a membership manager and an agent, a patient who logs
/// in, a data service, and seed 002's two scopes.
struct ConsentWorld {
    static let openMHealth = "https://w3id.org/openmhealth"

    let daemon: TestDaemon
    let local: OrgdClient
    let organization: Orgd_V1_Organization
    let manager: Orgd_V1_User
    let managerClient: OrgdClient
    let agent: Orgd_V1_User
    let agentClient: OrgdClient
    let patient: Orgd_V1_Patient
    let patientUser: Orgd_V1_User
    let patientClient: OrgdClient
    /// A data service: a service account with no system role.
    let service: OrgdClient
    let bloodPressure: Orgd_V1_Scope
    let bloodGlucose: Orgd_V1_Scope

    static func make(_ daemon: TestDaemon) async throws -> ConsentWorld {
        let local = try await daemon.client()
        let organization = try await MembershipEndToEndTests.organization(local, "Cardiology Research")
        let manager = try await MembershipEndToEndTests.user(local)
        let agent = try await MembershipEndToEndTests.user(local)
        try await MembershipEndToEndTests.addStaff(local, organization.id, manager.id, [.membershipManager])
        try await MembershipEndToEndTests.addStaff(local, organization.id, agent.id, [.agent])
        let patientUser = try await MembershipEndToEndTests.user(local)
        let patient = try await addPatient(local, organization: organization.id, user: patientUser.id, family: "ThePatient")
        let service = try await daemon.serviceToken(role: .none)
        func client(_ user: Orgd_V1_User) async throws -> OrgdClient {
            try await daemon.client(daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: user.id))
        }
        return ConsentWorld(
            daemon: daemon, local: local, organization: organization,
            manager: manager, managerClient: try await client(manager),
            agent: agent, agentClient: try await client(agent),
            patient: patient, patientUser: patientUser, patientClient: try await client(patientUser),
            service: try await daemon.client(daemon.tcp, token: service.secret),
            bloodPressure: try await scope(local, "omh:blood-pressure:4.0", "Blood pressure"),
            bloodGlucose: try await scope(local, "omh:blood-glucose:4.0", "Blood glucose")
        )
    }

    static func scope(_ client: OrgdClient, _ code: String, _ text: String) async throws -> Orgd_V1_Scope {
        var request = Orgd_V1_CreateScopeRequest()
        request.codingSystem = openMHealth
        request.codingCode = code
        request.text = text
        return try await client.consents.createScope(request)
    }

    static func addPatient(_ client: OrgdClient, organization: String, user: String = "", family: String) async throws -> Orgd_V1_Patient {
        var create = Orgd_V1_CreatePatientRequest()
        create.givenName = "Peter"
        create.familyName = family
        create.userID = user
        let patient = try await client.memberships.createPatient(create)
        var member = Orgd_V1_AddPatientMemberRequest()
        member.organizationID = organization
        member.patientID = patient.id
        _ = try await client.memberships.addPatientMember(member)
        return patient
    }

    static func reference(_ scope: Orgd_V1_Scope) -> Orgd_V1_ScopeRef {
        var reference = Orgd_V1_ScopeRef()
        reference.codingSystem = scope.codingSystem
        reference.codingCode = scope.codingCode
        return reference
    }

    /// A consent request made by the organisation's membership manager.
    func request(
        _ name: String, _ scopes: [Orgd_V1_Scope], kind: Orgd_V1_ConsentRequestKind = .study,
        organization: String? = nil, start: Date? = nil, end: Date? = nil, by client: OrgdClient? = nil
    ) async throws -> Orgd_V1_ConsentRequest {
        var request = Orgd_V1_CreateConsentRequestRequest()
        request.organizationID = organization ?? self.organization.id
        request.kind = kind
        request.name = name
        request.scopes = scopes.map(Self.reference)
        if let start { request.startTime = .init(date: start) }
        if let end { request.endTime = .init(date: end) }
        return try await (client ?? managerClient).consents.createConsentRequest(request)
    }

    func ask(_ request: Orgd_V1_ConsentRequest, _ patients: [String]? = nil) async throws {
        var ask = Orgd_V1_AskPatientsRequest()
        ask.consentRequestID = request.id
        ask.patientIds = patients ?? [patient.id]
        _ = try await managerClient.consents.askPatients(ask)
    }

    static func answers(_ patient: String, _ request: String, _ answers: [(Orgd_V1_Scope, Bool?)]) -> Orgd_V1_ConsentAnswersRequest {
        var study = Orgd_V1_StudyScopeConsents()
        study.studyID = request
        study.scopeConsents = answers.map { scope, consented in
            var answer = Orgd_V1_ScopeAnswer()
            answer.codingSystem = scope.codingSystem
            answer.codingCode = scope.codingCode
            if let consented { answer.consented = consented }
            return answer
        }
        var body = Orgd_V1_ConsentAnswersRequest()
        body.patientID = patient
        body.studyScopeConsents = [study]
        return body
    }

    @discardableResult
    func answer(_ request: Orgd_V1_ConsentRequest, _ answers: [(Orgd_V1_Scope, Bool)], patient: String? = nil, by client: OrgdClient? = nil) async throws -> Orgd_V1_PatientConsents {
        try await (client ?? patientClient).consents.answerConsents(Self.answers(patient ?? self.patient.id, request.id, answers.map { ($0, $1) }))
    }

    func check(agent: String? = nil, patient: String? = nil, _ scope: Orgd_V1_Scope) async throws -> Orgd_V1_CheckAccessResponse {
        try await service.consents.checkAccess(Self.checkRequest(agent ?? self.agent.id, patient ?? self.patient.id, scope))
    }

    static func checkRequest(_ agent: String, _ patient: String, _ scope: Orgd_V1_Scope) -> Orgd_V1_CheckAccessRequest {
        var request = Orgd_V1_CheckAccessRequest()
        request.agentUserID = agent
        request.patientID = patient
        request.scope = reference(scope)
        return request
    }

    func close() async {
        for client in [local, managerClient, agentClient, patientClient, service] { await client.close() }
    }
}

/// Runs `body` with a fresh daemon and consent world.
func withConsentWorld(_ body: (ConsentWorld) async throws -> Void) async throws {
    try await withDaemon { daemon in
        let world = try await ConsentWorld.make(daemon)
        do {
            try await body(world)
        } catch {
            await world.close()
            throw error
        }
        await world.close()
    }
}
