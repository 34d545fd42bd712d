import OrgdProto

/// `orgd.v1.MembershipService`: users, patients, staff and patient memberships, profile.
public struct MembershipClient: Sendable {
    public static let service = "orgd.v1.MembershipService"
    let connection: OrgdConnection

    public func createUser(
        _ request: Orgd_V1_CreateUserRequest = Orgd_V1_CreateUserRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_User {
        try await connection.call(service: Self.service, method: "CreateUser", request: request, options: options)
    }

    public func getUser(
        _ request: Orgd_V1_GetUserRequest = Orgd_V1_GetUserRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_User {
        try await connection.call(service: Self.service, method: "GetUser", request: request, options: options)
    }

    public func updateUser(
        _ request: Orgd_V1_UpdateUserRequest = Orgd_V1_UpdateUserRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_User {
        try await connection.call(service: Self.service, method: "UpdateUser", request: request, options: options)
    }

    public func listUsers(
        _ request: Orgd_V1_ListUsersRequest = Orgd_V1_ListUsersRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListUsersResponse {
        try await connection.call(service: Self.service, method: "ListUsers", request: request, options: options)
    }

    public func createPatient(
        _ request: Orgd_V1_CreatePatientRequest = Orgd_V1_CreatePatientRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Patient {
        try await connection.call(service: Self.service, method: "CreatePatient", request: request, options: options)
    }

    public func getPatient(
        _ request: Orgd_V1_GetPatientRequest = Orgd_V1_GetPatientRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Patient {
        try await connection.call(service: Self.service, method: "GetPatient", request: request, options: options)
    }

    public func updatePatient(
        _ request: Orgd_V1_UpdatePatientRequest = Orgd_V1_UpdatePatientRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Patient {
        try await connection.call(service: Self.service, method: "UpdatePatient", request: request, options: options)
    }

    public func listPatients(
        _ request: Orgd_V1_ListPatientsRequest = Orgd_V1_ListPatientsRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListPatientsResponse {
        try await connection.call(service: Self.service, method: "ListPatients", request: request, options: options)
    }

    public func addStaffMember(
        _ request: Orgd_V1_AddStaffMemberRequest = Orgd_V1_AddStaffMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_StaffMembership {
        try await connection.call(service: Self.service, method: "AddStaffMember", request: request, options: options)
    }

    public func updateStaffMember(
        _ request: Orgd_V1_UpdateStaffMemberRequest = Orgd_V1_UpdateStaffMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_StaffMembership {
        try await connection.call(service: Self.service, method: "UpdateStaffMember", request: request, options: options)
    }

    public func removeStaffMember(
        _ request: Orgd_V1_RemoveStaffMemberRequest = Orgd_V1_RemoveStaffMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_RemoveStaffMemberResponse {
        try await connection.call(service: Self.service, method: "RemoveStaffMember", request: request, options: options)
    }

    public func listStaffMembers(
        _ request: Orgd_V1_ListStaffMembersRequest = Orgd_V1_ListStaffMembersRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListStaffMembersResponse {
        try await connection.call(service: Self.service, method: "ListStaffMembers", request: request, options: options)
    }

    public func addPatientMember(
        _ request: Orgd_V1_AddPatientMemberRequest = Orgd_V1_AddPatientMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientMembership {
        try await connection.call(service: Self.service, method: "AddPatientMember", request: request, options: options)
    }

    public func updatePatientMember(
        _ request: Orgd_V1_UpdatePatientMemberRequest = Orgd_V1_UpdatePatientMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientMembership {
        try await connection.call(service: Self.service, method: "UpdatePatientMember", request: request, options: options)
    }

    public func removePatientMember(
        _ request: Orgd_V1_RemovePatientMemberRequest = Orgd_V1_RemovePatientMemberRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_RemovePatientMemberResponse {
        try await connection.call(service: Self.service, method: "RemovePatientMember", request: request, options: options)
    }

    public func listPatientMembers(
        _ request: Orgd_V1_ListPatientMembersRequest = Orgd_V1_ListPatientMembersRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListPatientMembersResponse {
        try await connection.call(service: Self.service, method: "ListPatientMembers", request: request, options: options)
    }

    public func getProfile(
        _ request: Orgd_V1_GetProfileRequest = Orgd_V1_GetProfileRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Profile {
        try await connection.call(service: Self.service, method: "GetProfile", request: request, options: options)
    }

    public func listMyOrganizations(
        _ request: Orgd_V1_ListMyOrganizationsRequest = Orgd_V1_ListMyOrganizationsRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListMyOrganizationsResponse {
        try await connection.call(service: Self.service, method: "ListMyOrganizations", request: request, options: options)
    }
}
