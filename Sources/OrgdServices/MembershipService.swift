import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// `orgd.v1.MembershipService`: users, patients, and the two membership
/// tables (seeds 000, 001, 002). Direct changes are admin only; a membership
/// manager may list their own organisation's members; everyone may read their
/// own profile and organisations.
struct MembershipService {
    let store: Store

    func register(in table: inout MethodTable) {
        table.add(Method.CreateUser.self, createUser)
        table.add(Method.GetUser.self, subject: { .user($0.id.lowercased()) }) { (request: Orgd_V1_GetUserRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.read { tx in try tx.user(id: id) }.proto
        }
        table.add(Method.UpdateUser.self, updateUser)
        table.add(Method.ListUsers.self, listUsers)

        table.add(Method.CreatePatient.self, createPatient)
        table.add(Method.GetPatient.self, subject: { .patient($0.id.lowercased()) }) { (request: Orgd_V1_GetPatientRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.read { tx in try tx.patient(id: id) }.proto
        }
        table.add(Method.UpdatePatient.self, updatePatient)
        table.add(Method.ListPatients.self, listPatients)

        table.add(Method.AddStaffMember.self, addStaffMember)
        table.add(Method.UpdateStaffMember.self, updateStaffMember)
        table.add(Method.RemoveStaffMember.self) { (request: Orgd_V1_RemoveStaffMemberRequest, _) in
            let (organizationID, userID) = (try Validation.id(request.organizationID, field: "organization_id"), try Validation.id(request.userID, field: "user_id"))
            try await store.write { tx in try tx.removeStaffMember(organizationID: organizationID, userID: userID) }
            return Orgd_V1_RemoveStaffMemberResponse()
        }
        table.add(Method.ListStaffMembers.self, subject: { .organization($0.organizationID.lowercased()) }, listStaffMembers)

        table.add(Method.AddPatientMember.self, addPatientMember)
        table.add(Method.UpdatePatientMember.self) { (request: Orgd_V1_UpdatePatientMemberRequest, _) in
            let (organizationID, patientID) = (try Validation.id(request.organizationID, field: "organization_id"), try Validation.id(request.patientID, field: "patient_id"))
            guard request.hasIsPrimary else { throw RPCError(.invalidArgument, "the update names no field: set is_primary") }
            return try await store.write { tx in
                try tx.updatePatientMember(organizationID: organizationID, patientID: patientID, isPrimary: request.isPrimary)
            }.proto
        }
        table.add(Method.RemovePatientMember.self) { (request: Orgd_V1_RemovePatientMemberRequest, context) in
            let (organizationID, patientID) = (try Validation.id(request.organizationID, field: "organization_id"), try Validation.id(request.patientID, field: "patient_id"))
            let actor = ConsentService.actor(context)
            try await store.write { tx in try tx.removePatientMember(organizationID: organizationID, patientID: patientID, actor: actor) }
            return Orgd_V1_RemovePatientMemberResponse()
        }
        table.add(Method.ListPatientMembers.self, subject: { .organization($0.organizationID.lowercased()) }, listPatientMembers)

        table.add(Method.GetProfile.self, getProfile)
        table.add(Method.ListMyOrganizations.self, listMyOrganizations)
    }

    // MARK: Users

    func createUser(_ request: Orgd_V1_CreateUserRequest, _ context: CallContext) async throws -> Orgd_V1_User {
        let role = request.systemRole == .unspecified ? .none : try SystemRole(validating: request.systemRole, field: "system_role")
        try Self.checkMayGrant(role, context)
        let new = NewUser(
            email: try Validation.email(request.email),
            title: try Validation.text(request.title, field: "title", maximum: 50, required: false),
            givenName: try Validation.text(request.givenName, field: "given_name"),
            familyName: try Validation.text(request.familyName, field: "family_name"),
            systemRole: role,
            status: request.status == .unspecified ? .active : try UserStatus(validating: request.status, field: "status")
        )
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.createUser(new).proto.serializedBytes()
        }
        return try Orgd_V1_User(serializedBytes: bytes)
    }

    func updateUser(_ request: Orgd_V1_UpdateUserRequest, _ context: CallContext) async throws -> Orgd_V1_User {
        let id = try Validation.id(request.id)
        let version = try Validation.version(request.version)
        var changes = UserChanges()
        if request.hasEmail { changes.email = try Validation.email(request.email) }
        if request.hasTitle { changes.title = try Validation.text(request.title, field: "title", maximum: 50, required: false) }
        if request.hasGivenName { changes.givenName = try Validation.text(request.givenName, field: "given_name") }
        if request.hasFamilyName { changes.familyName = try Validation.text(request.familyName, field: "family_name") }
        if request.hasSystemRole {
            let role = try SystemRole(validating: request.systemRole, field: "system_role")
            try Self.checkMayGrant(role, context)
            changes.systemRole = role
        }
        if request.hasStatus { changes.status = try UserStatus(validating: request.status, field: "status") }
        if changes.isEmpty { throw RPCError(.invalidArgument, "the update names no field") }
        let finalChanges = changes
        let callerRole = context.principal.systemRole
        return try await store.write { tx in
            if try tx.user(id: id).systemRole == .superadmin && callerRole < .superadmin {
                throw RPCError.permissionDenied("only a superadmin may change a superadmin")
            }
            return try tx.updateUser(id: id, expectedVersion: version, finalChanges)
        }.proto
    }

    func listUsers(_ request: Orgd_V1_ListUsersRequest, _ context: CallContext) async throws -> Orgd_V1_ListUsersResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let status = request.hasStatus ? try UserStatus(validating: request.status, field: "status") : nil
        let prefix = try Validation.prefix(request.emailPrefix, field: "email_prefix", maximum: 254)
        let scope = "users|\(prefix.lowercased())|\(status?.rawValue ?? "")"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let page = try await store.read { tx in try tx.listUsers(emailPrefix: prefix, status: status, after: after, limit: limit) }
        var response = Orgd_V1_ListUsersResponse()
        response.users = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    /// Only a superadmin makes superadmins.
    static func checkMayGrant(_ role: SystemRole, _ context: CallContext) throws {
        if role == .superadmin && context.principal.systemRole < .superadmin {
            throw RPCError.permissionDenied("only a superadmin may grant the superadmin role")
        }
    }

    // MARK: Patients

    func createPatient(_ request: Orgd_V1_CreatePatientRequest, _ context: CallContext) async throws -> Orgd_V1_Patient {
        let new = NewPatient(
            title: try Validation.text(request.title, field: "title", maximum: 50, required: false),
            givenName: try Validation.text(request.givenName, field: "given_name"),
            familyName: try Validation.text(request.familyName, field: "family_name"),
            userID: request.userID.isEmpty ? nil : try Validation.id(request.userID, field: "user_id")
        )
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.createPatient(new).proto.serializedBytes()
        }
        return try Orgd_V1_Patient(serializedBytes: bytes)
    }

    func updatePatient(_ request: Orgd_V1_UpdatePatientRequest, _ context: CallContext) async throws -> Orgd_V1_Patient {
        let id = try Validation.id(request.id)
        let version = try Validation.version(request.version)
        var changes = PatientChanges()
        if request.hasTitle { changes.title = try Validation.text(request.title, field: "title", maximum: 50, required: false) }
        if request.hasGivenName { changes.givenName = try Validation.text(request.givenName, field: "given_name") }
        if request.hasFamilyName { changes.familyName = try Validation.text(request.familyName, field: "family_name") }
        if request.hasUserID && request.removeUserID {
            throw RPCError.invalidArgument(field: "remove_user_id", "cannot both set and remove the user")
        }
        if request.hasUserID { changes.userID = .some(try Validation.id(request.userID, field: "user_id")) }
        if request.removeUserID { changes.userID = .some(nil) }
        if changes.isEmpty { throw RPCError(.invalidArgument, "the update names no field") }
        let finalChanges = changes
        return try await store.write { tx in try tx.updatePatient(id: id, expectedVersion: version, finalChanges) }.proto
    }

    func listPatients(_ request: Orgd_V1_ListPatientsRequest, _ context: CallContext) async throws -> Orgd_V1_ListPatientsResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let prefix = try Validation.prefix(request.familyNamePrefix, field: "family_name_prefix")
        let scope = "patients|\(prefix)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let page = try await store.read { tx in try tx.listPatients(familyNamePrefix: prefix, after: after, limit: limit) }
        var response = Orgd_V1_ListPatientsResponse()
        response.patients = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    // MARK: Staff memberships

    func addStaffMember(_ request: Orgd_V1_AddStaffMemberRequest, _ context: CallContext) async throws -> Orgd_V1_StaffMembership {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let userID = try Validation.id(request.userID, field: "user_id")
        let roles = try StaffRoles(validating: request.roles)
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.addStaffMember(organizationID: organizationID, userID: userID, roles: roles, isPrimary: request.isPrimary)
                .proto.serializedBytes()
        }
        return try Orgd_V1_StaffMembership(serializedBytes: bytes)
    }

    func updateStaffMember(_ request: Orgd_V1_UpdateStaffMemberRequest, _ context: CallContext) async throws -> Orgd_V1_StaffMembership {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let userID = try Validation.id(request.userID, field: "user_id")
        let roles = request.roles.isEmpty ? nil : try StaffRoles(validating: request.roles)
        let isPrimary = request.hasIsPrimary ? request.isPrimary : nil
        if roles == nil && isPrimary == nil { throw RPCError(.invalidArgument, "the update names no field: set roles or is_primary") }
        return try await store.write { tx in
            try tx.updateStaffMember(organizationID: organizationID, userID: userID, roles: roles, isPrimary: isPrimary)
        }.proto
    }

    func listStaffMembers(_ request: Orgd_V1_ListStaffMembersRequest, _ context: CallContext) async throws -> Orgd_V1_ListStaffMembersResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let limit = try PageToken.pageSize(request.pageSize)
        let scope = "staff|\(organizationID)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let (page, count) = try await store.read { tx in
            _ = try tx.organization(id: organizationID)
            return (try tx.listStaffMembers(organizationID: organizationID, after: after, limit: limit),
                    try tx.staffCount(organizationID: organizationID))
        }
        var response = Orgd_V1_ListStaffMembersResponse()
        response.members = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        response.totalCount = count
        return response
    }

    // MARK: Patient memberships

    func addPatientMember(_ request: Orgd_V1_AddPatientMemberRequest, _ context: CallContext) async throws -> Orgd_V1_PatientMembership {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let patientID = try Validation.id(request.patientID, field: "patient_id")
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.addPatientMember(organizationID: organizationID, patientID: patientID, isPrimary: request.isPrimary)
                .proto.serializedBytes()
        }
        return try Orgd_V1_PatientMembership(serializedBytes: bytes)
    }

    func listPatientMembers(_ request: Orgd_V1_ListPatientMembersRequest, _ context: CallContext) async throws -> Orgd_V1_ListPatientMembersResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let limit = try PageToken.pageSize(request.pageSize)
        let scope = "patients|\(organizationID)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let (page, count) = try await store.read { tx in
            _ = try tx.organization(id: organizationID)
            return (try tx.listPatientMembers(organizationID: organizationID, after: after, limit: limit),
                    try tx.patientCount(organizationID: organizationID))
        }
        var response = Orgd_V1_ListPatientMembersResponse()
        response.members = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        response.totalCount = count
        return response
    }

    // MARK: The caller's own view

    /// The user whose profile this is: the caller, or the user a service acts for.
    static func profileUser(_ context: CallContext) throws -> UserRecord {
        guard let user = context.principal.effectiveUser else {
            throw RPCError(
                .failedPrecondition,
                "this caller is not a user: call with a user's token, or as a service acting for a user (orgd-act-as)"
            )
        }
        return user
    }

    func getProfile(_ request: Orgd_V1_GetProfileRequest, _ context: CallContext) async throws -> Orgd_V1_Profile {
        let user = try Self.profileUser(context)
        let (fresh, patient) = try await store.read { tx in (try tx.user(id: user.id), try tx.patient(forUser: user.id)) }
        // Seed 002's profile, key for key: the user's own fields at the top.
        var profile = Orgd_V1_Profile()
        profile.id = fresh.id
        profile.email = fresh.email
        profile.firstName = fresh.givenName
        profile.lastName = fresh.familyName
        if let patient { profile.patient = patient.proto }
        return profile
    }

    func listMyOrganizations(_ request: Orgd_V1_ListMyOrganizationsRequest, _ context: CallContext) async throws -> Orgd_V1_ListMyOrganizationsResponse {
        let user = try Self.profileUser(context)
        let (staff, patient) = try await store.read { tx in
            let staff = try tx.staffMemberships(userID: user.id)
            let patient = try tx.patient(forUser: user.id).map { try tx.patientMemberships(patientID: $0.id) } ?? []
            return (staff, patient)
        }
        func entry(_ organization: OrganizationRecord, roles: [Orgd_V1_StaffRole], isPrimary: Bool) -> Orgd_V1_MyOrganization {
            var message = Orgd_V1_MyOrganization()
            message.organizationID = organization.id
            message.name = organization.name
            message.type = organization.kind.proto
            message.active = organization.active
            message.roles = roles
            message.isPrimary = isPrimary
            return message
        }
        var response = Orgd_V1_ListMyOrganizationsResponse()
        response.asStaff = staff.map { entry($0.organization, roles: $0.membership.roles.proto, isPrimary: $0.membership.isPrimary) }
        response.asPatient = patient.map { entry($0.organization, roles: [], isPrimary: $0.membership.isPrimary) }
        // Seed 001: the primary staff membership is the landing context at
        // login; a patient lands in their primary responsible organisation.
        response.primaryOrganizationID = staff.first { $0.membership.isPrimary }?.organization.id
            ?? patient.first { $0.membership.isPrimary }?.organization.id ?? ""
        return response
    }
}
