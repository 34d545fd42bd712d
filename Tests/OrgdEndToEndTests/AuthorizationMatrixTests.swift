import Foundation
import Logging
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServices
import SwiftProtobuf
import Testing

/// Every RPC × every kind of caller, over real sockets, against the one table
/// in code (`AuthorizationMatrix`, also SECURITY.md's matrix).
@Suite("Authorisation matrix")
struct AuthorizationMatrixTests {
    typealias Caller = AuthorizationMatrix.Caller

    @Test("every RPC as every kind of caller gets what AuthorizationMatrix says")
    func everyRPCEveryCaller() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let daemon = world.daemon
            var clients = try await Self.callers(world)
            let requests = try await Self.requests(world)

            var logger = Logger(label: "matrix")
            logger.logLevel = .critical
            let rules = Dispatcher(store: daemon.store, logger: logger).accessRules
            #expect(Set(rules.map(\.method)) == Set(requests.keys), "a request for every RPC served, and no other")
            #expect(rules.count > 50)

            for (method, rule) in rules {
                guard let request = requests[method] else { continue }
                let (service, name) = Self.split(method)
                for caller in Caller.allCases {
                    let response = try await clients[caller]!.connection.call(service: service, method: name, payload: try request.serializedBytes())
                    let code = StatusCode(wireValue: response.status.code)
                    let detail = "\(method) (\(rule.rawValue)) as \(caller.rawValue): \(code) \(response.status.message)"
                    switch AuthorizationMatrix.outcome(rule, for: caller) {
                    case .allowed: #expect(code != .permissionDenied && code != .unauthenticated, "\(detail)")
                    case .denied: #expect(code == .permissionDenied, "\(detail)")
                    case .unauthenticated: #expect(code == .unauthenticated, "\(detail)")
                    }
                }
            }
            // The callers' identities survived the run: no allowed call above
            // changed who they are (else later rows proved less than they say).
            #expect(try await clients[.patient]!.memberships.getProfile().id == world.patientUser.id)
            #expect(try await clients[.serviceActingForPatient]!.memberships.getProfile().id == world.patientUser.id)
            for caller in Caller.allCases where ![.managerHere, .agent, .patient, .service].contains(caller) {
                await clients.removeValue(forKey: caller)?.close()
            }
        }
    }

    static func split(_ method: String) -> (String, String) {
        let slash = method.lastIndex(of: "/")!
        return (String(method[..<slash]), String(method[method.index(after: slash)...]))
    }

    /// A connected client for every kind of caller. The world already has the
    /// manager of O, an agent of O, the patient P and a role-less service.
    static func callers(_ world: ConsentWorld) async throws -> [Caller: OrgdClient] {
        let daemon = world.daemon, local = world.local
        func userClient(role: Orgd_V1_SystemRole = .none) async throws -> (Orgd_V1_User, String, OrgdClient) {
            let user = try await MembershipEndToEndTests.user(local, role: role)
            var request = Orgd_V1_CreateTokenRequest()
            request.userID = user.id
            let token = try await local.tokens.createToken(request)
            return (user, token.token.id, try await daemon.client(daemon.tcp, token: token.secret))
        }
        var clients: [Caller: OrgdClient] = [
            .localOperator: try await daemon.client(daemon.unix),
            .managerHere: world.managerClient, .agent: world.agentClient, .patient: world.patientClient, .service: world.service,
            .noToken: try await daemon.client(daemon.tcp),
        ]
        clients[.superadmin] = try await userClient(role: .superadmin).2
        clients[.admin] = try await userClient(role: .admin).2

        let elsewhere = try await MembershipEndToEndTests.organization(local, "Elsewhere")
        let (managerElsewhere, _, managerElsewhereClient) = try await userClient()
        try await MembershipEndToEndTests.addStaff(local, elsewhere.id, managerElsewhere.id, [.membershipManager])
        clients[.managerElsewhere] = managerElsewhereClient

        let actor = try await daemon.serviceToken(role: .none, mayActAs: true)
        clients[.serviceActingForPatient] = try await OrgdClient.connect(to: daemon.tcp, token: actor.secret, actAs: world.patientUser.id)
        clients[.mailerService] = try await daemon.client(daemon.tcp, token: try await daemon.serviceToken(role: .none, mailer: true).secret)

        // An admin whose account is then disabled: the token stays, the user may not.
        let (disabled, _, disabledClient) = try await userClient(role: .admin)
        var disable = Orgd_V1_UpdateUserRequest()
        disable.id = disabled.id
        disable.version = disabled.version
        disable.status = .disabled
        _ = try await local.memberships.updateUser(disable)
        clients[.disabledUser] = disabledClient

        // A superadmin's token, revoked.
        let (_, revokedID, revokedClient) = try await userClient(role: .superadmin)
        var revoke = Orgd_V1_RevokeTokenRequest()
        revoke.id = revokedID
        _ = try await local.tokens.revokeToken(revoke)
        clients[.revokedToken] = revokedClient
        return clients
    }

    /// One request for every RPC, about organisation O and patient P. Calls
    /// that change something aim where an allowed caller's change cannot alter
    /// any caller's rights: a throwaway organisation, an agent's title, a
    /// random id, a unique name (a repeat then fails on the data, which the
    /// matrix counts as "past authorisation").
    static func requests(_ world: ConsentWorld) async throws -> [String: any SwiftProtobuf.Message] {
        let local = world.local
        let o = world.organization.id, p = world.patient.id, pUser = world.patientUser.id
        let throwaway = try await MembershipEndToEndTests.organization(local, "Throwaway")
        let study = try await world.request("Matrix study", [world.bloodPressure])
        let toEnd = try await world.request("Matrix study to end", [world.bloodPressure])
        try await world.ask(study)
        let invitation = try await local.invitations.inviteMember(InvitationEndToEndTests.inviteRequest(o, "matrix-target@x.example")).invitation
        let tokenOwner = try await MembershipEndToEndTests.user(local)
        let unique = UUID().uuidString.prefix(8)

        var r: [String: any SwiftProtobuf.Message] = [:]
        r["grpc.health.v1.Health/Check"] = Grpc_Health_V1_HealthCheckRequest()
        r["orgd.v1.AuditService/ListAuditLog"] = Orgd_V1_ListAuditLogRequest()
        r["orgd.v1.ChangeService/ListChanges"] = Orgd_V1_ListChangesRequest()

        let organizations = "orgd.v1.OrganizationService/"
        r[organizations + "CreateOrganization"] = { var q = Orgd_V1_CreateOrganizationRequest(); q.name = "Matrix"; q.type = .hospitalTeam; q.identifier.system = "https://ods.example"; q.identifier.value = "matrix-\(unique)"; return q }()
        r[organizations + "GetOrganization"] = { var q = Orgd_V1_GetOrganizationRequest(); q.id = o; return q }()
        r[organizations + "UpdateOrganization"] = { var q = Orgd_V1_UpdateOrganizationRequest(); q.id = throwaway.id; q.version = throwaway.version; q.name = "Renamed"; return q }()
        r[organizations + "ListOrganizations"] = Orgd_V1_ListOrganizationsRequest()
        r[organizations + "DeactivateOrganization"] = { var q = Orgd_V1_DeactivateOrganizationRequest(); q.id = throwaway.id; return q }()
        r[organizations + "ReactivateOrganization"] = { var q = Orgd_V1_ReactivateOrganizationRequest(); q.id = throwaway.id; return q }()
        r[organizations + "ExportOrganizationFhir"] = { var q = Orgd_V1_ExportOrganizationFhirRequest(); q.id = o; return q }()

        let memberships = "orgd.v1.MembershipService/"
        r[memberships + "CreateUser"] = { var q = Orgd_V1_CreateUserRequest(); q.email = "matrix-\(unique)@x.org"; q.givenName = "N"; q.familyName = "U"; return q }()
        r[memberships + "GetUser"] = { var q = Orgd_V1_GetUserRequest(); q.id = pUser; return q }()
        r[memberships + "UpdateUser"] = { var q = Orgd_V1_UpdateUserRequest(); q.id = pUser; q.version = 0; q.title = "Dr"; return q }()
        r[memberships + "ListUsers"] = Orgd_V1_ListUsersRequest()
        r[memberships + "CreatePatient"] = { var q = Orgd_V1_CreatePatientRequest(); q.givenName = "A"; q.familyName = "B"; return q }()
        r[memberships + "GetPatient"] = { var q = Orgd_V1_GetPatientRequest(); q.id = p; return q }()
        r[memberships + "UpdatePatient"] = { var q = Orgd_V1_UpdatePatientRequest(); q.id = p; q.version = 0; q.title = "Mr"; return q }()
        r[memberships + "ListPatients"] = Orgd_V1_ListPatientsRequest()
        r[memberships + "AddStaffMember"] = { var q = Orgd_V1_AddStaffMemberRequest(); q.organizationID = o; q.userID = world.agent.id; q.roles = [.agent]; return q }()
        r[memberships + "UpdateStaffMember"] = { var q = Orgd_V1_UpdateStaffMemberRequest(); q.organizationID = o; q.userID = world.agent.id; q.roles = [.agent]; return q }()
        r[memberships + "RemoveStaffMember"] = { var q = Orgd_V1_RemoveStaffMemberRequest(); q.organizationID = o; q.userID = UUID().uuidString; return q }()
        r[memberships + "ListStaffMembers"] = { var q = Orgd_V1_ListStaffMembersRequest(); q.organizationID = o; return q }()
        r[memberships + "AddPatientMember"] = { var q = Orgd_V1_AddPatientMemberRequest(); q.organizationID = o; q.patientID = p; return q }()
        r[memberships + "UpdatePatientMember"] = { var q = Orgd_V1_UpdatePatientMemberRequest(); q.organizationID = o; q.patientID = p; q.isPrimary = true; return q }()
        r[memberships + "RemovePatientMember"] = { var q = Orgd_V1_RemovePatientMemberRequest(); q.organizationID = o; q.patientID = UUID().uuidString; return q }()
        r[memberships + "ListPatientMembers"] = { var q = Orgd_V1_ListPatientMembersRequest(); q.organizationID = o; return q }()
        r[memberships + "GetProfile"] = Orgd_V1_GetProfileRequest()
        r[memberships + "ListMyOrganizations"] = Orgd_V1_ListMyOrganizationsRequest()

        let invitations = "orgd.v1.InvitationService/"
        r[invitations + "InviteMember"] = InvitationEndToEndTests.inviteRequest(o, "matrix-\(unique)@x.example")
        r[invitations + "BulkInviteMembers"] = { var q = Orgd_V1_BulkInviteMembersRequest(); q.organizationID = o; q.invitees = [InvitationEndToEndTests.inviteRequest(o, "bulk-\(unique)@x.example")]; return q }()
        r[invitations + "GetInvitation"] = { var q = Orgd_V1_GetInvitationRequest(); q.id = invitation.id; return q }()
        r[invitations + "ListInvitations"] = { var q = Orgd_V1_ListInvitationsRequest(); q.organizationID = o; return q }()
        r[invitations + "ResendInvitation"] = { var q = Orgd_V1_ResendInvitationRequest(); q.id = invitation.id; return q }()
        r[invitations + "WithdrawInvitation"] = { var q = Orgd_V1_WithdrawInvitationRequest(); q.id = invitation.id; return q }()
        r[invitations + "AcceptInvitation"] = { var q = Orgd_V1_AcceptInvitationRequest(); q.token = "inv_unknown"; return q }()
        r[invitations + "DeclineInvitation"] = { var q = Orgd_V1_DeclineInvitationRequest(); q.token = "inv_unknown"; return q }()
        r[invitations + "ClaimOutbox"] = { var q = Orgd_V1_ClaimOutboxRequest(); q.mailerID = "matrix"; q.maxMessages = 1; return q }()
        r[invitations + "AckOutbox"] = { var q = Orgd_V1_AckOutboxRequest(); q.id = UUID().uuidString; q.mailerID = "matrix"; return q }()

        let consents = "orgd.v1.ConsentService/"
        r[consents + "CreateScope"] = { var q = Orgd_V1_CreateScopeRequest(); q.codingSystem = "s"; q.codingCode = "matrix-\(unique)"; return q }()
        r[consents + "ListScopes"] = Orgd_V1_ListScopesRequest()
        r[consents + "CreateConsentRequest"] = { var q = Orgd_V1_CreateConsentRequestRequest(); q.organizationID = o; q.kind = .study; q.name = "N"; q.scopes = [ConsentWorld.reference(world.bloodPressure)]; return q }()
        r[consents + "GetConsentRequest"] = { var q = Orgd_V1_GetConsentRequestRequest(); q.id = study.id; return q }()
        r[consents + "UpdateConsentRequest"] = { var q = Orgd_V1_UpdateConsentRequestRequest(); q.id = study.id; q.version = 0; q.name = "Renamed"; return q }()
        r[consents + "EndConsentRequest"] = { var q = Orgd_V1_EndConsentRequestRequest(); q.id = toEnd.id; return q }()
        r[consents + "ListConsentRequests"] = { var q = Orgd_V1_ListConsentRequestsRequest(); q.organizationID = o; return q }()
        r[consents + "AskPatients"] = { var q = Orgd_V1_AskPatientsRequest(); q.consentRequestID = study.id; q.patientIds = [p]; return q }()
        r[consents + "GetPatientConsents"] = { var q = Orgd_V1_GetPatientConsentsRequest(); q.patientID = p; return q }()
        r[consents + "AnswerConsents"] = ConsentWorld.answers(p, study.id, [(world.bloodPressure, true)])
        r[consents + "UpdateConsents"] = ConsentWorld.answers(p, study.id, [(world.bloodPressure, true)])
        r[consents + "RevokeConsents"] = ConsentWorld.answers(p, study.id, [(world.bloodPressure, nil)])
        r[consents + "ListConsentHistory"] = { var q = Orgd_V1_ListConsentHistoryRequest(); q.patientID = p; return q }()
        r[consents + "CheckAccess"] = ConsentWorld.checkRequest(world.agent.id, p, world.bloodPressure)
        r[consents + "BatchCheckAccess"] = { var q = Orgd_V1_BatchCheckAccessRequest(); q.checks = [ConsentWorld.checkRequest(world.agent.id, p, world.bloodPressure)]; return q }()
        r[consents + "ListAccessiblePatients"] = { var q = Orgd_V1_ListAccessiblePatientsRequest(); q.agentUserID = world.agent.id; q.scope = ConsentWorld.reference(world.bloodPressure); return q }()

        let tokens = "orgd.v1.TokenService/"
        r[tokens + "CreateServiceAccount"] = { var q = Orgd_V1_CreateServiceAccountRequest(); q.name = "matrix-\(unique)"; return q }()
        r[tokens + "ListServiceAccounts"] = Orgd_V1_ListServiceAccountsRequest()
        r[tokens + "CreateToken"] = { var q = Orgd_V1_CreateTokenRequest(); q.userID = tokenOwner.id; return q }()
        r[tokens + "ListTokens"] = Orgd_V1_ListTokensRequest()
        r[tokens + "RevokeToken"] = { var q = Orgd_V1_RevokeTokenRequest(); q.id = UUID().uuidString; return q }()
        return r
    }
}
