import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import SwiftProtobuf
import Testing

@Suite("ConsentService permission matrix")
struct ConsentPermissionTests {
    enum Caller: String, CaseIterable, CustomStringConvertible {
        var description: String { rawValue }
        case superadmin, admin, managerHere, managerElsewhere, agent, patient, service, anonymous
    }

    @Test("every ConsentService method × every kind of caller")
    func matrix() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let local = world.local
            let elsewhere = try await MembershipEndToEndTests.organization(local, "Elsewhere")
            let managerElsewhere = try await MembershipEndToEndTests.user(local)
            try await MembershipEndToEndTests.addStaff(local, elsewhere.id, managerElsewhere.id, [.membershipManager])
            var clients: [Caller: OrgdClient] = [
                .managerHere: world.managerClient, .agent: world.agentClient, .patient: world.patientClient, .service: world.service,
                .anonymous: try await world.daemon.client(world.daemon.tcp),
            ]
            for (caller, role) in [(Caller.superadmin, Orgd_V1_SystemRole.superadmin), (.admin, .admin)] {
                let user = try await MembershipEndToEndTests.user(local, role: role)
                clients[caller] = try await world.daemon.client(world.daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: user.id))
            }
            clients[.managerElsewhere] = try await world.daemon.client(
                world.daemon.tcp, token: try await MembershipEndToEndTests.token(local, user: managerElsewhere.id))

            let study = try await world.request("Matrix study", [world.bloodPressure])
            let toEnd = try await world.request("Matrix study to end", [world.bloodPressure])
            try await world.ask(study)

            let admins: Set<Caller> = [.superadmin, .admin]
            let managers = admins.union([.managerHere])
            let everyone = Set(Caller.allCases).subtracting([.anonymous])
            let pid = world.patient.id
            let cases: [(String, any SwiftProtobuf.Message, Set<Caller>)] = [
                ("CreateScope", { var r = Orgd_V1_CreateScopeRequest(); r.codingSystem = "s"; r.codingCode = UUID().uuidString; return r }(), admins),
                ("ListScopes", Orgd_V1_ListScopesRequest(), everyone),
                ("CreateConsentRequest", { var r = Orgd_V1_CreateConsentRequestRequest(); r.organizationID = world.organization.id; r.kind = .study; r.name = "N"; r.scopes = [ConsentWorld.reference(world.bloodPressure)]; return r }(), managers),
                ("GetConsentRequest", { var r = Orgd_V1_GetConsentRequestRequest(); r.id = study.id; return r }(), managers),
                ("UpdateConsentRequest", { var r = Orgd_V1_UpdateConsentRequestRequest(); r.id = study.id; r.version = 0; r.name = "Renamed"; return r }(), managers),
                ("ListConsentRequests", { var r = Orgd_V1_ListConsentRequestsRequest(); r.organizationID = world.organization.id; return r }(), managers),
                ("AskPatients", { var r = Orgd_V1_AskPatientsRequest(); r.consentRequestID = study.id; r.patientIds = [pid]; return r }(), managers),
                ("GetPatientConsents", { var r = Orgd_V1_GetPatientConsentsRequest(); r.patientID = pid; return r }(), admins.union([.patient])),
                ("AnswerConsents", ConsentWorld.answers(pid, study.id, [(world.bloodPressure, true)]), [.patient]),
                ("UpdateConsents", ConsentWorld.answers(pid, study.id, [(world.bloodPressure, true)]), [.patient]),
                ("RevokeConsents", ConsentWorld.answers(pid, study.id, [(world.bloodPressure, nil)]), [.patient]),
                ("ListConsentHistory", { var r = Orgd_V1_ListConsentHistoryRequest(); r.patientID = pid; return r }(), admins.union([.patient])),
                ("CheckAccess", ConsentWorld.checkRequest(world.agent.id, pid, world.bloodPressure), admins.union([.service])),
                ("BatchCheckAccess", { var r = Orgd_V1_BatchCheckAccessRequest(); r.checks = [ConsentWorld.checkRequest(world.agent.id, pid, world.bloodPressure)]; return r }(), admins.union([.service])),
                ("ListAccessiblePatients", { var r = Orgd_V1_ListAccessiblePatientsRequest(); r.agentUserID = world.agent.id; r.scope = ConsentWorld.reference(world.bloodPressure); return r }(), admins.union([.service])),
                ("EndConsentRequest", { var r = Orgd_V1_EndConsentRequestRequest(); r.id = toEnd.id; return r }(), managers),
            ]
            #expect(Set(cases.map(\.0)).count == 16, "every ConsentService method is in the matrix")
            try await checkPermissionMatrix(
                service: "orgd.v1.ConsentService", cases: cases.map { ($0.0, $0.1, $0.2) },
                callers: Caller.allCases, anonymous: .anonymous, clients: clients)
            for caller in [Caller.superadmin, .admin, .managerElsewhere, .anonymous] { await clients[caller]!.close() }
        }
    }
}
