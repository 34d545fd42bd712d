import OrgdProto

/// `orgd.v1.InvitationService`: invitations by e-mail and the mail outbox.
public struct InvitationClient: Sendable {
    public static let service = "orgd.v1.InvitationService"
    let connection: OrgdConnection

    public func inviteMember(
        _ request: Orgd_V1_InviteMemberRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_InviteMemberResponse {
        try await connection.call(service: Self.service, method: "InviteMember", request: request, options: options)
    }

    public func bulkInviteMembers(
        _ request: Orgd_V1_BulkInviteMembersRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_BulkInviteMembersResponse {
        try await connection.call(service: Self.service, method: "BulkInviteMembers", request: request, options: options)
    }

    public func getInvitation(
        _ request: Orgd_V1_GetInvitationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Invitation {
        try await connection.call(service: Self.service, method: "GetInvitation", request: request, options: options)
    }

    public func listInvitations(
        _ request: Orgd_V1_ListInvitationsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListInvitationsResponse {
        try await connection.call(service: Self.service, method: "ListInvitations", request: request, options: options)
    }

    public func resendInvitation(
        _ request: Orgd_V1_ResendInvitationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Invitation {
        try await connection.call(service: Self.service, method: "ResendInvitation", request: request, options: options)
    }

    public func withdrawInvitation(
        _ request: Orgd_V1_WithdrawInvitationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Invitation {
        try await connection.call(service: Self.service, method: "WithdrawInvitation", request: request, options: options)
    }

    public func acceptInvitation(
        _ request: Orgd_V1_AcceptInvitationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_AcceptInvitationResponse {
        try await connection.call(service: Self.service, method: "AcceptInvitation", request: request, options: options)
    }

    public func declineInvitation(
        _ request: Orgd_V1_DeclineInvitationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Invitation {
        try await connection.call(service: Self.service, method: "DeclineInvitation", request: request, options: options)
    }

    public func claimOutbox(
        _ request: Orgd_V1_ClaimOutboxRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ClaimOutboxResponse {
        try await connection.call(service: Self.service, method: "ClaimOutbox", request: request, options: options)
    }

    public func ackOutbox(
        _ request: Orgd_V1_AckOutboxRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_AckOutboxResponse {
        try await connection.call(service: Self.service, method: "AckOutbox", request: request, options: options)
    }
}
