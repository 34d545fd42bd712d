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
///
/// The endpoint picks the transport: `.unix`/`.tcp` speak ttrpc,
/// `.grpc(host:port:)` gRPC; `OrgdClient(transport:)` takes any other
/// `OrgdCallTransport`. The typed clients, answers and errors are the same
/// over each.
public struct OrgdClient: Sendable {
    public let connection: OrgdConnection

    public init(connection: OrgdConnection) {
        self.connection = connection
    }

    /// Calls through `transport` (e.g. a test's in-process one).
    public init(transport: any OrgdCallTransport, token: String? = nil, actAs: String? = nil) {
        self.connection = OrgdConnection(transport: transport, token: token, actAs: actAs)
    }

    /// Connects over a Unix socket, TCP or gRPC; see `OrgdConnection.connect`.
    public static func connect(
        to endpoint: OrgdEndpoint, token: String? = nil, actAs: String? = nil, tls: OrgdTLS? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdClient {
        OrgdClient(connection: try await OrgdConnection.connect(to: endpoint, token: token, actAs: actAs, tls: tls, group: group))
    }

    /// Connects to the first of several daemons that answers and fails over
    /// to the next when it goes away; see `OrgdConnection.connect(to:)` for
    /// a list.
    public static func connect(
        to endpoints: [OrgdEndpoint], token: String? = nil, actAs: String? = nil, tls: OrgdTLS? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> OrgdClient {
        OrgdClient(connection: try await OrgdConnection.connect(to: endpoints, token: token, actAs: actAs, tls: tls, group: group))
    }

    public var organizations: OrganizationClient { OrganizationClient(connection: connection) }
    public var memberships: MembershipClient { MembershipClient(connection: connection) }
    public var consents: ConsentClient { ConsentClient(connection: connection) }
    public var invitations: InvitationClient { InvitationClient(connection: connection) }
    public var tokens: TokenClient { TokenClient(connection: connection) }
    public var audit: AuditClient { AuditClient(connection: connection) }
    public var changes: ChangeClient { ChangeClient(connection: connection) }
    public var health: HealthClient { HealthClient(connection: connection) }

    /// Closes the connection.
    public func close() async { await connection.close() }
}
