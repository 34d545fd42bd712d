import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// The FHIR export stands on its own (issue 13 item 7), checked in Swift
/// without the Python validator: every entry a `urn:uuid:` fullUrl and a PUT
/// of its own id, every reference resolving to an entry of the type it is
/// for, a Practitioner per staff member, a Patient per patient member, and
/// the same entries again on a re-export.
@Suite("FHIR bundle end to end")
struct FhirBundleTests {
    typealias JSON = [String: Any]

    @Test("every entry has a urn:uuid fullUrl and a PUT; every reference resolves; every staff and patient member is there; a re-export is the same")
    func standsOnItsOwn() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let organization = try await MembershipEndToEndTests.organization(client, "St Elsewhere Cardiology")
            let other = try await MembershipEndToEndTests.organization(client, "Other GP")
            let manager = try await MembershipEndToEndTests.user(client)
            let agent = try await MembershipEndToEndTests.user(client)
            try await MembershipEndToEndTests.addStaff(client, organization.id, manager.id, [.membershipManager], primary: true)
            try await MembershipEndToEndTests.addStaff(client, organization.id, agent.id, [.agent])
            var patients: [String] = []
            for (index, primaryHere) in [true, false].enumerated() {
                var request = Orgd_V1_CreatePatientRequest()
                request.givenName = "Patient"
                request.familyName = "Number \(index)"
                let patient = try await client.memberships.createPatient(request)
                patients.append(patient.id)
                var member = Orgd_V1_AddPatientMemberRequest()
                member.organizationID = organization.id
                member.patientID = patient.id
                member.isPrimary = primaryHere
                _ = try await client.memberships.addPatientMember(member)
            }
            var elsewhere = Orgd_V1_AddPatientMemberRequest()
            elsewhere.organizationID = other.id
            elsewhere.patientID = patients[1]
            elsewhere.isPrimary = true
            _ = try await client.memberships.addPatientMember(elsewhere)

            var export = Orgd_V1_ExportOrganizationFhirRequest()
            export.id = organization.id
            let json = try await client.organizations.exportOrganizationFhir(export).bundleJson
            let bundle = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? JSON)
            #expect(bundle["type"] as? String == "transaction")
            let entries = try #require(bundle["entry"] as? [JSON])

            let byURL = try Self.entriesByURL(entries)
            let allReferences = byURL.values.flatMap { resource in
                Self.references(resource).map { (where: "\(resource["resourceType"] ?? "")\($0.path)", target: $0.target) }
            }
            let unresolved = allReferences.filter { !$0.target.hasPrefix("urn:uuid:") || byURL[$0.target] == nil }.map { "\($0.where): \($0.target)" }
            #expect(unresolved.isEmpty, "references that resolve to no entry: \(unresolved)")
            let referenceCount = allReferences.count

            let practitioners = Set(Self.resources("Practitioner", in: byURL).map { $0["id"] as! String })
            #expect(practitioners == [manager.id, agent.id])
            let roles = Self.resources("PractitionerRole", in: byURL)
            let rolePractitioners = roles.compactMap { Self.resolve($0["practitioner"], in: byURL) }
            let roleOrganizations = roles.compactMap { Self.resolve($0["organization"], in: byURL) }
            let rolesRight = rolePractitioners.allSatisfy { $0.type == "Practitioner" } && Set(rolePractitioners.map { $0.id }) == [manager.id, agent.id]
                && roleOrganizations.count == 2 && roleOrganizations.allSatisfy { $0.type == "Organization" && $0.id == organization.id }
            #expect(rolesRight)
            let patientResources = Self.resources("Patient", in: byURL)
            let patientIDs = Set(patientResources.map { $0["id"] as! String })
            #expect(patientIDs == Set(patients))
            let managed = patientResources.filter { Self.resolve($0["managingOrganization"], in: byURL)?.id == organization.id }.map { $0["id"] as! String }
            #expect(managed == [patients[0]])
            let unmanaged = patientResources.filter { $0["managingOrganization"] == nil }.map { $0["id"] as! String }
            #expect(unmanaged == [patients[1]])
            let team = try #require(Self.resources("CareTeam", in: byURL).first)
            let members = (team["participant"] as? [JSON] ?? []).compactMap { Self.resolve($0["member"], in: byURL) }
            let membersRight = members.allSatisfy { $0.type == "Patient" } && Set(members.map { $0.id }) == Set(patients)
            #expect(membersRight)
            // 2 roles x 2 references, 1 managed patient, the team's organisation and 2 members.
            #expect(referenceCount == 8)

            // A re-export names the same resources with the same content.
            let again = try await client.organizations.exportOrganizationFhir(export).bundleJson
            let againBundle = try #require(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? JSON)
            let againEntries = try #require(againBundle["entry"] as? [JSON])
            let first = try JSONSerialization.data(withJSONObject: entries, options: [.sortedKeys])
            let second = try JSONSerialization.data(withJSONObject: againEntries, options: [.sortedKeys])
            #expect(first == second)
            await client.close()
        }
    }
}
