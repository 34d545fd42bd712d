import Foundation
import OrgdCore
import OrgdStore

/// An organisation as a FHIR R4 Bundle (seed 001 section 3): the
/// `Organization`, a `PractitionerRole` per staff membership, a `CareTeam`
/// whose participants are the patient members, and a `Patient` with
/// `managingOrganization` for each patient whose primary organisation it is.
enum FhirExport {
    /// The code systems and extension orgd defines for what FHIR has no code for.
    static let organizationTypeSystem = "urn:orgd:fhir:CodeSystem:organization-type"
    static let staffRoleSystem = "urn:orgd:fhir:CodeSystem:staff-role"
    static let primaryExtension = "urn:orgd:fhir:StructureDefinition:primary-organization"

    /// Reads everything in one transaction, so the bundle is a consistent snapshot.
    static func bundle(organizationID: String, _ tx: StoreTransaction) throws -> String {
        let organization = try tx.organization(id: organizationID)
        let staff = try all { try tx.listStaffMembers(organizationID: organizationID, after: $0, limit: 1000) }
        let patients = try all { try tx.listPatientMembers(organizationID: organizationID, after: $0, limit: 1000) }
        let organizationReference: [String: Any] = ["reference": "Organization/\(organization.id)", "display": organization.name]

        var entries: [[String: Any]] = [entry(organizationResource(organization))]
        for member in staff {
            var codings: [[String: Any]] = []
            if member.membership.roles.membershipManager {
                codings.append(["system": staffRoleSystem, "code": "membership_manager", "display": "Membership manager"])
            }
            if member.membership.roles.agent {
                codings.append(["system": staffRoleSystem, "code": "agent", "display": "Agent"])
            }
            entries.append(entry([
                "resourceType": "PractitionerRole",
                "id": "\(organization.id.prefix(8))-\(member.user.id)",
                "active": member.user.status != .disabled,
                "practitioner": ["reference": "Practitioner/\(member.user.id)", "display": displayName(member.user.givenName, member.user.familyName)],
                "organization": organizationReference,
                "code": codings.map { ["coding": [$0]] },
                "extension": [["url": primaryExtension, "valueBoolean": member.membership.isPrimary]],
            ]))
        }
        if !patients.isEmpty {
            entries.append(entry([
                "resourceType": "CareTeam",
                "id": "patients-\(organization.id)",
                "status": organization.active ? "active" : "inactive",
                "name": "Patients of \(organization.name)",
                "managingOrganization": [organizationReference],
                "participant": patients.map { member in
                    ["member": ["reference": "Patient/\(member.patient.id)", "display": displayName(member.patient.givenName, member.patient.familyName)]]
                },
            ]))
        }
        for member in patients where member.membership.isPrimary {
            var name: [String: Any] = ["family": member.patient.familyName, "given": [member.patient.givenName]]
            if !member.patient.title.isEmpty { name["prefix"] = [member.patient.title] }
            entries.append(entry([
                "resourceType": "Patient",
                "id": member.patient.id,
                "name": [name],
                "managingOrganization": organizationReference,
            ]))
        }
        let bundle: [String: Any] = [
            "resourceType": "Bundle",
            "id": UUID().uuidString.lowercased(),
            "type": "collection",
            "timestamp": ISO8601DateFormatter().string(from: tx.now),
            "entry": entries,
        ]
        let data = try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func organizationResource(_ organization: OrganizationRecord) -> [String: Any] {
        var resource: [String: Any] = [
            "resourceType": "Organization",
            "id": organization.id,
            "active": organization.active,
            "name": organization.name,
            "type": [["coding": [["system": organizationTypeSystem, "code": organization.kind.rawValue]]]],
            "meta": ["versionId": "\(organization.version)", "lastUpdated": ISO8601DateFormatter().string(from: organization.updateTime)],
        ]
        if let identifier = organization.identifier {
            resource["identifier"] = [["system": identifier.system, "value": identifier.value]]
        }
        return resource
    }

    /// A bundle entry; `fullUrl` only where the id is a UUID, as `urn:uuid:` requires.
    static func entry(_ resource: [String: Any]) -> [String: Any] {
        guard let id = resource["id"] as? String, UUID(uuidString: id) != nil else { return ["resource": resource] }
        return ["fullUrl": "urn:uuid:\(id)", "resource": resource]
    }

    static func displayName(_ given: String, _ family: String) -> String { "\(given) \(family)" }

    /// Follows pages to the end.
    static func all<T>(_ page: (Int64?) throws -> Page<T>) throws -> [T] {
        var items: [T] = []
        var after: Int64?
        repeat {
            let next = try page(after)
            items += next.items
            after = next.nextAfter
        } while after != nil
        return items
    }
}
