import OrgdCore
import OrgdStore
import SwiftProtobuf

extension CallContext {
    /// The metadata key a client sets to make a create safe to retry.
    static let idempotencyMetadataKey = "idempotency-key"

    /// The idempotency key for this create, if the caller sent one. Keys are
    /// scoped to the principal and the method.
    func idempotencyKey(for request: some SwiftProtobuf.Message) throws -> IdempotencyKey? {
        guard let key = metadata[Self.idempotencyMetadataKey] else { return nil }
        guard !key.isEmpty, key.utf8.count <= 200 else {
            throw RPCError.invalidArgument(field: Self.idempotencyMetadataKey, "must be 1 to 200 bytes")
        }
        return IdempotencyKey(principal: principal.key, method: method, key: key, request: try request.serializedBytes())
    }
}
