import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// `orgd.v1.OrganizationService`: care organisations (seed 001).
/// Every method is admin or superadmin only.
struct OrganizationService {
    let store: Store

    func register(in table: inout MethodTable) {
        table.add(Method.CreateOrganization.self, create)
        table.addRead(Method.GetOrganization.self, get)
        table.add(Method.UpdateOrganization.self, update)
        table.addRead(Method.ListOrganizations.self, list)
        table.add(Method.DeactivateOrganization.self) { (request: Orgd_V1_DeactivateOrganizationRequest, _) in
            try await setActive(false, id: request.id, version: request.version)
        }
        table.add(Method.ReactivateOrganization.self) { (request: Orgd_V1_ReactivateOrganizationRequest, _) in
            try await setActive(true, id: request.id, version: request.version)
        }
        table.add(Method.ExportOrganizationFhir.self) { (request: Orgd_V1_ExportOrganizationFhirRequest, _) in
            let id = try Validation.id(request.id)
            var response = Orgd_V1_ExportOrganizationFhirResponse()
            response.bundleJson = try await store.read { tx in try FhirExport.bundle(organizationID: id, tx) }
            return response
        }
    }

    func create(_ request: Orgd_V1_CreateOrganizationRequest, _ context: CallContext) async throws -> Orgd_V1_Organization {
        let new = NewOrganization(
            name: try Validation.text(request.name, field: "name"),
            kind: try OrganizationKind(validating: request.type),
            identifier: request.hasIdentifier ? try Self.identifier(request.identifier) : nil
        )
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.createOrganization(new).proto.serializedBytes()
        }
        return try Orgd_V1_Organization(serializedBytes: bytes)
    }

    func get(_ request: Orgd_V1_GetOrganizationRequest, _ context: CallContext, _ tx: StoreTransaction) throws -> Orgd_V1_GetOrganizationResponse {
        let id = try Validation.id(request.id)
        let staffLimit = try PageToken.pageSize(request.staffPageSize, field: "staff_page_size")
        let patientLimit = try PageToken.pageSize(request.patientPageSize, field: "patient_page_size")
        let staffAfter = try context.pageTokens.decode(request.staffPageToken, scope: "staff|\(id)", field: "staff_page_token")
        let patientAfter = try context.pageTokens.decode(request.patientPageToken, scope: "patients|\(id)", field: "patient_page_token")
        // One read transaction: the lists and the counts agree with each other.
        let organization = try tx.organization(id: id)
        let staff = try tx.listStaffMembers(organizationID: id, after: staffAfter, limit: staffLimit)
        let staffCount = try tx.staffCount(organizationID: id)
        let patients = try tx.listPatientMembers(organizationID: id, after: patientAfter, limit: patientLimit)
        let patientCount = try tx.patientCount(organizationID: id)
        var response = Orgd_V1_GetOrganizationResponse()
        response.organization = organization.proto
        response.staff = staff.items.map(\.proto)
        response.staffCount = staffCount
        response.nextStaffPageToken = context.pageTokens.encode(after: staff.nextAfter, scope: "staff|\(id)")
        response.patients = patients.items.map(\.proto)
        response.patientCount = patientCount
        response.nextPatientPageToken = context.pageTokens.encode(after: patients.nextAfter, scope: "patients|\(id)")
        return response
    }

    func update(_ request: Orgd_V1_UpdateOrganizationRequest, _ context: CallContext) async throws -> Orgd_V1_Organization {
        let id = try Validation.id(request.id)
        let version = try Validation.version(request.version)
        var changes = OrganizationChanges()
        if request.hasName { changes.name = try Validation.text(request.name, field: "name") }
        if request.hasType { changes.kind = try OrganizationKind(validating: request.type) }
        if request.hasIdentifier && request.removeIdentifier {
            throw RPCError.invalidArgument(field: "remove_identifier", "cannot both set and clear the identifier")
        }
        if request.hasIdentifier { changes.identifier = .some(try Self.identifier(request.identifier)) }
        if request.removeIdentifier { changes.identifier = .some(nil) }
        if changes.name == nil && changes.kind == nil && changes.identifier == nil {
            throw RPCError(.invalidArgument, "the update names no field: set name, type, identifier or remove_identifier")
        }
        let finalChanges = changes
        let updated = try await store.write { tx in try tx.updateOrganization(id: id, expectedVersion: version, finalChanges) }
        return updated.proto
    }

    func list(_ request: Orgd_V1_ListOrganizationsRequest, _ context: CallContext, _ tx: StoreTransaction) throws -> Orgd_V1_ListOrganizationsResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let filter = OrganizationFilter(
            kind: request.hasType ? try OrganizationKind(validating: request.type) : nil,
            active: request.hasActive ? request.active : nil,
            namePrefix: try Validation.prefix(request.namePrefix, field: "name_prefix")
        )
        let scope = "organizations|\(filter.kind?.rawValue ?? "")|\(filter.active.map(String.init) ?? "")|\(filter.namePrefix)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let page = try tx.listOrganizations(filter, after: after, limit: limit)
        var response = Orgd_V1_ListOrganizationsResponse()
        response.organizations = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    /// Deactivating an inactive organisation (or reactivating an active one)
    /// changes nothing and answers its current state.
    func setActive(_ active: Bool, id rawID: String, version: Int64) async throws -> Orgd_V1_Organization {
        let id = try Validation.id(rawID)
        if version < 0 { throw RPCError.invalidArgument(field: "version", "must not be negative") }
        let record = try await store.write { tx in
            let current = try tx.organization(id: id)
            if current.active == active && (version == 0 || version == current.version) { return current }
            return try tx.updateOrganization(id: id, expectedVersion: version, OrganizationChanges(active: active))
        }
        return record.proto
    }

    static func identifier(_ identifier: Orgd_V1_Identifier) throws -> ExternalIdentifier {
        ExternalIdentifier(
            system: try Validation.text(identifier.system, field: "identifier.system"),
            value: try Validation.text(identifier.value, field: "identifier.value")
        )
    }
}
