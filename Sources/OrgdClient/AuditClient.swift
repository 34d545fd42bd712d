import OrgdProto

/// `orgd.v1.AuditService`: the audit log of administrative changes.
public struct AuditClient: Sendable {
    public static let service = "orgd.v1.AuditService"
    let connection: OrgdConnection

    public func listAuditLog(
        _ request: Orgd_V1_ListAuditLogRequest = Orgd_V1_ListAuditLogRequest(), options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListAuditLogResponse {
        try await connection.call(service: Self.service, method: "ListAuditLog", request: request, options: options)
    }
}
