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

    /// Every `reference` string in a resource, with its path.
    static func references(_ value: Any, _ path: String = "") -> [(String, String)] {
        if let object = value as? JSON {
            return object.sorted { $0.key < $1.key }.flatMap { key, item -> [(String, String)] in
                if key == "reference", let target = item as? String { return [(path, target)] }
                return references(item, path + "." + key)
            }
        }
        if let array = value as? [Any] {
            return array.enumerated().flatMap { references($1, path + "[\($0)]") }
        }
        return []
    }

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

            var byURL: [String: JSON] = [:]
            for entry in entries {
                let resource = try #require(entry["resource"] as? JSON)
                let type = try #require(resource["resourceType"] as? String)
                let id = try #require(resource["id"] as? String)
                #expect(entry["fullUrl"] as? String == "urn:uuid:\(id)")
                #expect(UUID(uuidString: id) != nil, "\(type) id \(id) is not a UUID")
                let request = entry["request"] as? JSON
                #expect(request?["method"] as? String == "PUT" && request?["url"] as? String == "\(type)/\(id)")
                #expect(byURL["urn:uuid:\(id)"] == nil, "urn:uuid:\(id) twice")
                byURL["urn:uuid:\(id)"] = resource
            }
            /// The type of the entry a reference names, or nil when it names none.
            func resolved(_ reference: Any?) -> (type: String, id: String)? {
                guard let target = (reference as? JSON)?["reference"] as? String, let resource = byURL[target] else { return nil }
                return (resource["resourceType"] as! String, resource["id"] as! String)
            }
            var referenceCount = 0
            for resource in byURL.values {
                for (path, target) in Self.references(resource) {
                    referenceCount += 1
                    #expect(target.hasPrefix("urn:uuid:") && byURL[target] != nil, "\(resource["resourceType"]!)\(path): \(target) resolves to no entry")
                }
            }
            func resources(_ type: String) -> [JSON] { byURL.values.filter { $0["resourceType"] as? String == type } }

            #expect(Set(resources("Practitioner").map { $0["id"] as! String }) == [manager.id, agent.id])
            let roles = resources("PractitionerRole")
            #expect(Set(roles.compactMap { resolved($0["practitioner"]) }.filter { $0.type == "Practitioner" }.map(\.id)) == [manager.id, agent.id])
            #expect(roles.allSatisfy { resolved($0["organization"])?.type == "Organization" && resolved($0["organization"])?.id == organization.id })
            let patientResources = resources("Patient")
            #expect(Set(patientResources.map { $0["id"] as! String }) == Set(patients))
            let managed = patientResources.filter { resolved($0["managingOrganization"])?.id == organization.id }.map { $0["id"] as! String }
            #expect(managed == [patients[0]])
            #expect(patientResources.filter { $0["managingOrganization"] == nil }.map { $0["id"] as! String } == [patients[1]])
            let team = try #require(resources("CareTeam").first)
            let members = (team["participant"] as? [JSON] ?? []).compactMap { resolved($0["member"]) }
            #expect(members.allSatisfy { $0.type == "Patient" } && Set(members.map(\.id)) == Set(patients))
            // 2 roles x 2 references, 1 managed patient, the team's organisation and 2 members.
            #expect(referenceCount == 8)

            // A re-export names the same resources with the same content.
            let again = try await client.organizations.exportOrganizationFhir(export).bundleJson
            let againBundle = try #require(try JSONSerialization.jsonObject(with: Data(again.utf8)) as? JSON)
            let first = try JSONSerialization.data(withJSONObject: entries, options: [.sortedKeys])
            let second = try JSONSerialization.data(withJSONObject: againBundle["entry"] as! [JSON], options: [.sortedKeys])
            #expect(first == second)
            await client.close()
        }
    }
}
