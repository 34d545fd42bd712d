import NIOCore
import NIOPosix
import OrgdProto
import OrgdWire

/// The entry point: a connection and typed clients for each service.
///
/// ```swift
/// let client = try await OrgdClient.connect(to: .unix(path: "orgd.sock"))
/// var request = Orgd_V1_CreateOrganizationRequest()
/// request.name = "Ward 7 Team"
/// request.type = .hospitalTeam
/// let organization = try await client.organizations.createOrganization(request)
/// ```
public struct OrgdClient: Sendable {
    public let connection: OrgdConnection

    public init(connection: OrgdConnection) {
        self.connection = connection
    }

    /// Connects over a Unix socket or TCP; see `OrgdConnection.connect`.
    public static func connect(
        to endpoint: OrgdEndpoint, token: String? = nil, actAs: String? = nil, tls: OrgdTLS? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdClient {
        OrgdClient(connection: try await OrgdConnection.connect(to: endpoint, token: token, actAs: actAs, tls: tls, group: group))
    }

    public var organizations: OrganizationClient { OrganizationClient(connection: connection) }
    public var memberships: MembershipClient { MembershipClient(connection: connection) }
    public var consents: ConsentClient { ConsentClient(connection: connection) }
    public var invitations: InvitationClient { InvitationClient(connection: connection) }
    public var tokens: TokenClient { TokenClient(connection: connection) }
    public var audit: AuditClient { AuditClient(connection: connection) }
    public var health: HealthClient { HealthClient(connection: connection) }

    /// Closes the connection.
    public func close() async { await connection.close() }
}

/// `orgd.v1.OrganizationService`.
public struct OrganizationClient: Sendable {
    public static let service = "orgd.v1.OrganizationService"
    let connection: OrgdConnection

    public func createOrganization(
        _ request: Orgd_V1_CreateOrganizationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Organization {
        try await connection.call(service: Self.service, method: "CreateOrganization", request: request, options: options)
    }

    public func getOrganization(
        _ request: Orgd_V1_GetOrganizationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_GetOrganizationResponse {
        try await connection.call(service: Self.service, method: "GetOrganization", request: request, options: options)
    }

    public func updateOrganization(
        _ request: Orgd_V1_UpdateOrganizationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Organization {
        try await connection.call(service: Self.service, method: "UpdateOrganization", request: request, options: options)
    }

    public func listOrganizations(
        _ request: Orgd_V1_ListOrganizationsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListOrganizationsResponse {
        try await connection.call(service: Self.service, method: "ListOrganizations", request: request, options: options)
    }

    public func deactivateOrganization(
        _ request: Orgd_V1_DeactivateOrganizationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Organization {
        try await connection.call(service: Self.service, method: "DeactivateOrganization", request: request, options: options)
    }

    public func reactivateOrganization(
        _ request: Orgd_V1_ReactivateOrganizationRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Organization {
        try await connection.call(service: Self.service, method: "ReactivateOrganization", request: request, options: options)
    }

    public func exportOrganizationFhir(
        _ request: Orgd_V1_ExportOrganizationFhirRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ExportOrganizationFhirResponse {
        try await connection.call(service: Self.service, method: "ExportOrganizationFhir", request: request, options: options)
    }
}

/// `orgd.v1.TokenService`.
public struct TokenClient: Sendable {
    public static let service = "orgd.v1.TokenService"
    let connection: OrgdConnection

    public func createServiceAccount(
        _ request: Orgd_V1_CreateServiceAccountRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ServiceAccount {
        try await connection.call(service: Self.service, method: "CreateServiceAccount", request: request, options: options)
    }

    public func listServiceAccounts(
        _ request: Orgd_V1_ListServiceAccountsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListServiceAccountsResponse {
        try await connection.call(service: Self.service, method: "ListServiceAccounts", request: request, options: options)
    }

    public func createToken(
        _ request: Orgd_V1_CreateTokenRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_CreateTokenResponse {
        try await connection.call(service: Self.service, method: "CreateToken", request: request, options: options)
    }

    public func listTokens(
        _ request: Orgd_V1_ListTokensRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListTokensResponse {
        try await connection.call(service: Self.service, method: "ListTokens", request: request, options: options)
    }

    public func revokeToken(_ request: Orgd_V1_RevokeTokenRequest, options: CallOptions = CallOptions()) async throws -> Orgd_V1_ApiToken {
        try await connection.call(service: Self.service, method: "RevokeToken", request: request, options: options)
    }
}

/// `grpc.health.v1.Health`.
public struct HealthClient: Sendable {
    public static let service = "grpc.health.v1.Health"
    let connection: OrgdConnection

    public func check(service: String = "", options: CallOptions = CallOptions()) async throws -> Grpc_Health_V1_HealthCheckResponse {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = service
        return try await connection.call(service: Self.service, method: "Check", request: request, options: options)
    }
}
