import OrgdProto

/// `orgd.v1.ConsentService`: scopes, consent requests, patients' answers, history and the access check.
public struct ConsentClient: Sendable {
    public static let service = "orgd.v1.ConsentService"
    let connection: OrgdConnection

    public func createScope(
        _ request: Orgd_V1_CreateScopeRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_Scope {
        try await connection.call(service: Self.service, method: "CreateScope", request: request, options: options)
    }

    public func listScopes(
        _ request: Orgd_V1_ListScopesRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListScopesResponse {
        try await connection.call(service: Self.service, method: "ListScopes", request: request, options: options)
    }

    public func createConsentRequest(
        _ request: Orgd_V1_CreateConsentRequestRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ConsentRequest {
        try await connection.call(service: Self.service, method: "CreateConsentRequest", request: request, options: options)
    }

    public func getConsentRequest(
        _ request: Orgd_V1_GetConsentRequestRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ConsentRequest {
        try await connection.call(service: Self.service, method: "GetConsentRequest", request: request, options: options)
    }

    public func updateConsentRequest(
        _ request: Orgd_V1_UpdateConsentRequestRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ConsentRequest {
        try await connection.call(service: Self.service, method: "UpdateConsentRequest", request: request, options: options)
    }

    public func endConsentRequest(
        _ request: Orgd_V1_EndConsentRequestRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ConsentRequest {
        try await connection.call(service: Self.service, method: "EndConsentRequest", request: request, options: options)
    }

    public func listConsentRequests(
        _ request: Orgd_V1_ListConsentRequestsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListConsentRequestsResponse {
        try await connection.call(service: Self.service, method: "ListConsentRequests", request: request, options: options)
    }

    public func askPatients(
        _ request: Orgd_V1_AskPatientsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_AskPatientsResponse {
        try await connection.call(service: Self.service, method: "AskPatients", request: request, options: options)
    }

    public func getPatientConsents(
        _ request: Orgd_V1_GetPatientConsentsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientConsents {
        try await connection.call(service: Self.service, method: "GetPatientConsents", request: request, options: options)
    }

    public func answerConsents(
        _ request: Orgd_V1_ConsentAnswersRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientConsents {
        try await connection.call(service: Self.service, method: "AnswerConsents", request: request, options: options)
    }

    public func updateConsents(
        _ request: Orgd_V1_ConsentAnswersRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientConsents {
        try await connection.call(service: Self.service, method: "UpdateConsents", request: request, options: options)
    }

    public func revokeConsents(
        _ request: Orgd_V1_ConsentAnswersRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_PatientConsents {
        try await connection.call(service: Self.service, method: "RevokeConsents", request: request, options: options)
    }

    public func listConsentHistory(
        _ request: Orgd_V1_ListConsentHistoryRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListConsentHistoryResponse {
        try await connection.call(service: Self.service, method: "ListConsentHistory", request: request, options: options)
    }

    public func checkAccess(
        _ request: Orgd_V1_CheckAccessRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_CheckAccessResponse {
        try await connection.call(service: Self.service, method: "CheckAccess", request: request, options: options)
    }

    public func batchCheckAccess(
        _ request: Orgd_V1_BatchCheckAccessRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_BatchCheckAccessResponse {
        try await connection.call(service: Self.service, method: "BatchCheckAccess", request: request, options: options)
    }

    public func listAccessiblePatients(
        _ request: Orgd_V1_ListAccessiblePatientsRequest, options: CallOptions = CallOptions()
    ) async throws -> Orgd_V1_ListAccessiblePatientsResponse {
        try await connection.call(service: Self.service, method: "ListAccessiblePatients", request: request, options: options)
    }
}
