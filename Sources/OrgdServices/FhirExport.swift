import Crypto
import Foundation
import OrgdCore
import OrgdStore

/// An organisation as a FHIR R4 Bundle that stands on its own (seed 001
/// section 3, issue 13 item 7): the `Organization`, a `Practitioner` for
/// every staff member and a `PractitionerRole` per staff membership, a
/// `Patient` for every patient member (`managingOrganization` only where this
/// is the patient's primary organisation) and a `CareTeam` whose participants
/// are the patient members.
///
/// Every entry has a `fullUrl` `urn:uuid:<id>` and every reference is one of
/// those, so each resolves inside the bundle. The bundle is a `transaction`
/// whose entries are `PUT <Type>/<id>`: `POST [base]` of it to a FHIR server
/// upserts every resource under orgd's ids, and the server rewrites the
/// `urn:uuid:` references to the resources it wrote (FHIR R4 http.html,
/// transaction processing rules). Ids are orgd's own; a PractitionerRole or
/// CareTeam, which has no orgd id, gets a name-based UUID (version 5) over the
/// organisation and user ids, so a re-export names the same resources.
enum FhirExport {
    /// The code systems and extension orgd defines for what FHIR has no code for.
    static let organizationTypeSystem = "urn:orgd:fhir:CodeSystem:organization-type"
    static let staffRoleSystem = "urn:orgd:fhir:CodeSystem:staff-role"
    static let primaryExtension = "urn:orgd:fhir:StructureDefinition:primary-organization"
    /// The namespace of orgd's name-based UUIDs (fixed for good: changing it
    /// renames every PractitionerRole and CareTeam already loaded somewhere).
    static let namespace = UUID(uuidString: "b3b41942-afd5-42ac-bdb2-8b52924f98af")!

    /// Reads everything in one transaction, so the bundle is a consistent snapshot.
    static func bundle(organizationID: String, _ tx: StoreTransaction) throws -> String {
        let organization = try tx.organization(id: organizationID)
        let staff = try all { try tx.listStaffMembers(organizationID: organizationID, after: $0, limit: 1000) }
        let patients = try all { try tx.listPatientMembers(organizationID: organizationID, after: $0, limit: 1000) }
        let organizationReference = reference(organization.id, display: organization.name)

        var entries: [[String: Any]] = [entry(organizationResource(organization))]
        for member in staff {
            entries.append(entry(practitioner(member.user)))
        }
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
                "id": nameBasedID("PractitionerRole", organization.id, member.user.id),
                "active": member.user.status != .disabled,
                "practitioner": reference(member.user.id, display: displayName(member.user.givenName, member.user.familyName)),
                "organization": organizationReference,
                "code": codings.map { ["coding": [$0]] },
                "extension": [["url": primaryExtension, "valueBoolean": member.membership.isPrimary]],
            ]))
        }
        for member in patients {
            var name: [String: Any] = ["family": member.patient.familyName, "given": [member.patient.givenName]]
            if !member.patient.title.isEmpty { name["prefix"] = [member.patient.title] }
            var resource: [String: Any] = ["resourceType": "Patient", "id": member.patient.id, "name": [name]]
            if member.membership.isPrimary { resource["managingOrganization"] = organizationReference }
            entries.append(entry(resource))
        }
        if !patients.isEmpty {
            entries.append(entry([
                "resourceType": "CareTeam",
                "id": nameBasedID("CareTeam", organization.id, "patients"),
                "status": organization.active ? "active" : "inactive",
                "name": "Patients of \(organization.name)",
                "managingOrganization": [organizationReference],
                "participant": patients.map { member in
                    ["member": reference(member.patient.id, display: displayName(member.patient.givenName, member.patient.familyName))]
                },
            ]))
        }
        let bundle: [String: Any] = [
            "resourceType": "Bundle",
            "type": "transaction",
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

    /// A staff member as a person: their names and work e-mail.
    static func practitioner(_ user: UserRecord) -> [String: Any] {
        var name: [String: Any] = ["family": user.familyName, "given": [user.givenName]]
        if !user.title.isEmpty { name["prefix"] = [user.title] }
        return [
            "resourceType": "Practitioner",
            "id": user.id,
            "active": user.status != .disabled,
            "name": [name],
            "telecom": [["system": "email", "value": user.email, "use": "work"]],
        ]
    }

    /// A reference to the bundle entry whose resource has this id.
    static func reference(_ id: String, display: String) -> [String: Any] {
        ["reference": "urn:uuid:\(id)", "display": display]
    }

    /// An entry that upserts its resource under its id.
    static func entry(_ resource: [String: Any]) -> [String: Any] {
        let id = resource["id"] as! String
        let type = resource["resourceType"] as! String
        return ["fullUrl": "urn:uuid:\(id)", "resource": resource, "request": ["method": "PUT", "url": "\(type)/\(id)"]]
    }

    /// RFC 9562's version 5 UUID of `parts` joined by "/" in orgd's namespace, lower case.
    static func nameBasedID(_ parts: String...) -> String {
        var bytes = withUnsafeBytes(of: namespace.uuid) { Array($0) }
        bytes += Array(parts.joined(separator: "/").utf8)
        var digest = Array(Insecure.SHA1.hash(data: bytes).prefix(16))
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        let uuid = digest.withUnsafeBytes { UUID(uuid: $0.load(as: uuid_t.self)) }
        return uuid.uuidString.lowercased()
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
