import Foundation
import OrgdCore
import OrgdProto
import OrgdStore

/// `orgd.v1.TokenService`: service accounts and bearer tokens. Superadmin
/// only, which in practice means the local operator on the Unix socket.
struct TokenService {
    let store: Store

    func register(in table: inout MethodTable) {
        table.add(Method.CreateServiceAccount.self, createServiceAccount)
        table.add(Method.ListServiceAccounts.self, listServiceAccounts)
        table.add(Method.CreateToken.self, createToken)
        table.add(Method.ListTokens.self, listTokens)
        table.add(Method.RevokeToken.self) { (request: Orgd_V1_RevokeTokenRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.write { tx in try tx.revokeToken(id: id) }.proto
        }
    }

    func createServiceAccount(
        _ request: Orgd_V1_CreateServiceAccountRequest, _ context: CallContext
    ) async throws -> Orgd_V1_ServiceAccount {
        let name = try Validation.text(request.name, field: "name")
        let role = request.systemRole == .unspecified ? .none : try SystemRole(validating: request.systemRole, field: "system_role")
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.createServiceAccount(name: name, systemRole: role, mayActAs: request.mayActAs, mailer: request.mailer).proto.serializedBytes()
        }
        return try Orgd_V1_ServiceAccount(serializedBytes: bytes)
    }

    func listServiceAccounts(
        _ request: Orgd_V1_ListServiceAccountsRequest, _ context: CallContext
    ) async throws -> Orgd_V1_ListServiceAccountsResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let after = try context.pageTokens.decode(request.pageToken, scope: "service-accounts")
        let page = try await store.read { tx in try tx.listServiceAccounts(after: after, limit: limit) }
        var response = Orgd_V1_ListServiceAccountsResponse()
        response.serviceAccounts = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: "service-accounts")
        return response
    }

    func createToken(_ request: Orgd_V1_CreateTokenRequest, _ context: CallContext) async throws -> Orgd_V1_CreateTokenResponse {
        let owner: TokenOwner = switch request.principal {
        case .userID(let id): .user(id: try Validation.id(id, field: "user_id"))
        case .serviceAccountID(let id): .serviceAccount(id: try Validation.id(id, field: "service_account_id"))
        case nil: throw RPCError.invalidArgument(field: "principal", "required: set user_id or service_account_id")
        }
        let description = try Validation.text(request.description_p, field: "description", maximum: 500, required: false)
        guard request.expiresInSeconds >= 0, request.expiresInSeconds <= 10 * 365 * 86_400 else {
            throw RPCError.invalidArgument(field: "expires_in_seconds", "must be 0 (never) to ten years")
        }
        let lifetime = request.expiresInSeconds
        // Not idempotent on purpose: a repeat would have to hand out the same
        // secret again, and secrets are shown once.
        let issued = try await store.write { tx in
            try tx.createToken(
                owner: owner, description: description,
                expireTime: lifetime > 0 ? tx.now.addingTimeInterval(TimeInterval(lifetime)) : nil
            )
        }
        var response = Orgd_V1_CreateTokenResponse()
        response.token = issued.record.proto
        response.secret = issued.secret
        return response
    }

    func listTokens(_ request: Orgd_V1_ListTokensRequest, _ context: CallContext) async throws -> Orgd_V1_ListTokensResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let scope = "tokens|\(request.includeRevoked)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let page = try await store.read { tx in
            try tx.listTokens(includeRevoked: request.includeRevoked, after: after, limit: limit)
        }
        var response = Orgd_V1_ListTokensResponse()
        response.tokens = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }
}
