import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

@Suite("MembershipService end to end")
struct MembershipEndToEndTests {
    static func organization(_ client: OrgdClient, _ name: String) async throws -> Orgd_V1_Organization {
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = name
        request.type = .hospitalTeam
        request.identifier.system = "https://ods.example"
        request.identifier.value = UUID().uuidString
        return try await client.organizations.createOrganization(request)
    }

    static func user(_ client: OrgdClient, role: Orgd_V1_SystemRole = .none) async throws -> Orgd_V1_User {
        var request = Orgd_V1_CreateUserRequest()
        request.email = "\(UUID().uuidString.prefix(12))@example.org"
        request.givenName = "Sam"
        request.familyName = "Jones"
        request.systemRole = role
        return try await client.memberships.createUser(request)
    }

    static func token(_ client: OrgdClient, user: String) async throws -> String {
        var request = Orgd_V1_CreateTokenRequest()
        request.userID = user
        return try await client.tokens.createToken(request).secret
    }

    static func addStaff(_ client: OrgdClient, _ organization: String, _ user: String, _ roles: [Orgd_V1_StaffRole], primary: Bool = false) async throws {
        var request = Orgd_V1_AddStaffMemberRequest()
        request.organizationID = organization
        request.userID = user
        request.roles = roles
        request.isPrimary = primary
        _ = try await client.memberships.addStaffMember(request)
    }

    @Test("two clients racing to set different primaries leave exactly one, every time")
    func primaryRace() async throws {
        try await withDaemon { daemon in
            let setup = try await daemon.client()
            let a = try await Self.organization(setup, "Race A")
            let b = try await Self.organization(setup, "Race B")
            let user = try await Self.user(setup)
            try await Self.addStaff(setup, a.id, user.id, [.agent])
            try await Self.addStaff(setup, b.id, user.id, [.agent])
            let first = try await daemon.client()
            let second = try await daemon.client()
            for round in 0..<25 {
                async let one: Orgd_V1_StaffMembership = {
                    var request = Orgd_V1_UpdateStaffMemberRequest()
                    request.organizationID = a.id
                    request.userID = user.id
                    request.isPrimary = true
                    return try await first.memberships.updateStaffMember(request)
                }()
                async let two: Orgd_V1_StaffMembership = {
                    var request = Orgd_V1_UpdateStaffMemberRequest()
                    request.organizationID = b.id
                    request.userID = user.id
                    request.isPrimary = true
                    return try await second.memberships.updateStaffMember(request)
                }()
                _ = try await (one, two)
                let token = try await Self.token(setup, user: user.id)
                let mine = try await OrgdClient.connect(to: daemon.unix, token: token)
                let organizations = try await mine.memberships.listMyOrganizations()
                #expect(organizations.asStaff.filter(\.isPrimary).count == 1, "round \(round)")
                #expect([a.id, b.id].contains(organizations.primaryOrganizationID))
                await mine.close()
            }
            for client in [setup, first, second] { await client.close() }
        }
    }

    @Test("the FHIR R4 export validates with a real FHIR library and says what orgd holds")
    func fhirExport() async throws {
        let python = Subprocess.repositoryRoot.appendingPathComponent(".build-venv/bin/python").path
        try #require(FileManager.default.isExecutableFile(atPath: python), "run scripts/install-deps --test (scripts/test does) for the FHIR validator")
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let organization = try await Self.organization(client, "St Elsewhere Cardiology")
            let other = try await Self.organization(client, "Other GP")
            let manager = try await Self.user(client)
            let agent = try await Self.user(client)
            let both = try await Self.user(client)
            try await Self.addStaff(client, organization.id, manager.id, [.membershipManager], primary: true)
            try await Self.addStaff(client, organization.id, agent.id, [.agent])
            try await Self.addStaff(client, organization.id, both.id, [.agent, .membershipManager])
            var patients: [String] = []
            for (index, primary) in [true, false, true].enumerated() {
                var request = Orgd_V1_CreatePatientRequest()
                request.title = "Ms"
                request.givenName = "Patient"
                request.familyName = "Number \(index)"
                let patient = try await client.memberships.createPatient(request)
                patients.append(patient.id)
                var member = Orgd_V1_AddPatientMemberRequest()
                member.organizationID = organization.id
                member.patientID = patient.id
                member.isPrimary = primary
                _ = try await client.memberships.addPatientMember(member)
            }
            // Patient 1's primary organisation is elsewhere.
            var elsewhere = Orgd_V1_AddPatientMemberRequest()
            elsewhere.organizationID = other.id
            elsewhere.patientID = patients[1]
            elsewhere.isPrimary = true
            _ = try await client.memberships.addPatientMember(elsewhere)

            var export = Orgd_V1_ExportOrganizationFhirRequest()
            export.id = organization.id
            let bundle = try await client.organizations.exportOrganizationFhir(export).bundleJson
            let expectations: [String: Any] = [
                "organization_id": organization.id, "name": organization.name, "active": true,
                "identifier_system": organization.identifier.system, "identifier_value": organization.identifier.value,
                "staff": [
                    manager.id: ["roles": ["membership_manager"], "primary": true],
                    agent.id: ["roles": ["agent"], "primary": false],
                    both.id: ["roles": ["agent", "membership_manager"], "primary": false],
                ],
                "patients": patients,
                "managed_patients": [patients[0], patients[2]],
            ]
            let bundlePath = daemon.directory + "/bundle.json"
            let expectationsPath = daemon.directory + "/expected.json"
            try bundle.write(toFile: bundlePath, atomically: true, encoding: .utf8)
            try JSONSerialization.data(withJSONObject: expectations).write(to: URL(fileURLWithPath: expectationsPath))
            let script = Subprocess.repositoryRoot.appendingPathComponent("Tests/fhir/validate_bundle.py").path
            let result = try await TTRPCInteropTests.run(python, [script, bundlePath, expectationsPath], environment: [:])
            #expect(result.status == 0, "\(result.output)")
            #expect(result.output.contains("valid FHIR R4 bundle"))
            await client.close()
        }
    }
}

import SwiftProtobuf
typealias SwiftProtobufMessage = SwiftProtobuf.Message
