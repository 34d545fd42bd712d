import Foundation
import OrgdCore
import OrgdStore

/// Turns a connection and its metadata into a `Principal`.
///
/// On the Unix socket a call without a token is the local operator
/// (superadmin), like docker.sock. On TCP every call needs a valid bearer
/// token. A token is checked against the store on every call, so revoking it,
/// or disabling its user, takes effect on the very next call.
public struct Authenticator: Sendable {
    let store: Store

    public init(store: Store) {
        self.store = store
    }

    public func authenticate(_ metadata: Metadata, transport: Transport) async throws -> Principal {
        // The local operator without act-as needs no database read.
        if metadata["authorization"] == nil && metadata["orgd-act-as"] == nil && transport == .unix {
            return Principal(identity: .localOperator)
        }
        return try await store.read { tx in try Self.authenticate(metadata, transport: transport, tx) }
    }

    /// The same decision inside a transaction the caller already holds.
    public static func authenticate(_ metadata: Metadata, transport: Transport, _ tx: StoreTransaction) throws -> Principal {
        let actAs = metadata["orgd-act-as"]
        guard let header = metadata["authorization"] else {
            guard transport == .unix else { throw tokenRequired }
            return try principal(.localOperator, actingFor: actAs, tx)
        }
        guard let secret = bearerSecret(header) else { throw notBearer }
        let found = try tx.principal(forSecret: secret)
        switch found {
        case nil:
            throw tokenRefused
        case .user(let user):
            if actAs != nil { throw RPCError.permissionDenied("only service accounts may act for a user (orgd-act-as)") }
            return Principal(identity: .user(user))
        case .serviceAccount(let account):
            if actAs != nil && !account.mayActAs {
                throw RPCError.permissionDenied("service account \(account.name) may not act for users (orgd-act-as)")
            }
            let acting = try principal(.serviceAccount(account), actingFor: actAs, tx)
            // Acting for someone never adds rights: a service acts for an
            // admin or superadmin only if it holds that role itself.
            if let user = acting.actingFor, user.systemRole > account.systemRole {
                throw RPCError.permissionDenied(
                    "orgd-act-as: service account \(account.name) holds system role \(account.systemRole.rawValue) "
                        + "and may not act for user \(user.id), who holds \(user.systemRole.rawValue)")
            }
            return acting
        }
    }

    /// The same decision from the access index, for a call without
    /// `orgd-act-as` (acting for someone is decided by the store).
    public static func authenticate(_ metadata: Metadata, transport: Transport, _ index: AccessIndexView) throws -> Principal {
        precondition(metadata["orgd-act-as"] == nil, "orgd-act-as is decided by the store")
        guard let header = metadata["authorization"] else {
            guard transport == .unix else { throw tokenRequired }
            return Principal(identity: .localOperator)
        }
        guard let secret = bearerSecret(header) else { throw notBearer }
        switch index.principal(forSecret: secret) {
        case nil: throw tokenRefused
        case .user(let user): return Principal(identity: .user(user))
        case .serviceAccount(let account): return Principal(identity: .serviceAccount(account))
        }
    }

    private static let tokenRequired = RPCError(.unauthenticated, "a bearer token is required: send metadata authorization: Bearer <token>")
    private static let notBearer = RPCError(.unauthenticated, "authorization metadata must be \"Bearer <token>\"")
    private static let tokenRefused = RPCError(.unauthenticated, "the token is unknown, revoked, expired, or its user is disabled")

    private static func principal(_ identity: Principal.Identity, actingFor userID: String?, _ tx: StoreTransaction) throws -> Principal {
        guard let userID else { return Principal(identity: identity) }
        let user = try? tx.user(id: userID)
        guard let user, user.status != .disabled else {
            throw RPCError.permissionDenied("orgd-act-as: no active user \(userID)")
        }
        return Principal(identity: identity, actingFor: user)
    }

    static func bearerSecret(_ header: String) -> String? {
        // "Bearer" in any case, one or more spaces, the secret; surrounding
        // spaces and tabs ignored. Read on the UTF-8 bytes: no Foundation,
        // no array of parts, one new string (the secret).
        let bytes = header.utf8
        func isBlank(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var start = bytes.startIndex
        while start != bytes.endIndex, bytes[start] == UInt8(ascii: " ") { start = bytes.index(after: start) }
        let scheme = "bearer".utf8
        var cursor = start
        for expected in scheme {
            guard cursor != bytes.endIndex, bytes[cursor] | 0x20 == expected else { return nil }
            cursor = bytes.index(after: cursor)
        }
        guard cursor != bytes.endIndex, bytes[cursor] == UInt8(ascii: " ") else { return nil }
        while cursor != bytes.endIndex, bytes[cursor] == UInt8(ascii: " ") { cursor = bytes.index(after: cursor) }
        while cursor != bytes.endIndex, isBlank(bytes[cursor]) { cursor = bytes.index(after: cursor) }
        var end = bytes.endIndex
        while end != cursor, isBlank(bytes[bytes.index(before: end)]) { end = bytes.index(before: end) }
        guard cursor != end else { return nil }
        return String(header[cursor..<end])
    }
}
