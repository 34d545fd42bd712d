import OrgdCore
import OrgdStore

/// The opaque consistency token a write's answer carries (metadata
/// `orgd-consistency-token`): the change-feed revision the write committed
/// under, signed with the database's key (as page tokens are), so a token
/// is good on every daemon over the same database and refused by any other.
/// A call that sends one back is answered from a state at least that fresh.
public enum ConsistencyToken {
    public static let metadataKey = ConsistencyTokens.metadataKey
    private static let scope = "orgd.consistency"

    static func encode(_ revision: Int64, key: [UInt8]) -> String {
        PageToken.encode(after: revision, scope: scope, key: key)
    }

    /// The revision in `token`; INVALID_ARGUMENT for one this database's
    /// daemons did not issue.
    static func decode(_ token: String, key: [UInt8]) throws -> Int64 {
        let refused = RPCError.invalidArgument(
            field: metadataKey, "not a consistency token a daemon over this database issued; send the one a write answered with")
        do {
            guard let revision = try PageToken.decode(token, scope: scope, field: metadataKey, key: key) else { throw refused }
            return revision
        } catch {
            throw refused
        }
    }

    /// Throws unless `latest` (the newest revision the call's transaction
    /// sees) has reached the revision in the call's token, if it sent one.
    /// Reads go to the database, which always has every acknowledged write:
    /// a token ahead of it comes from a copy restored to an older state.
    static func check(_ metadata: Metadata, key: [UInt8], latest: () throws -> Int64) throws {
        guard let token = metadata[metadataKey] else { return }
        let revision = try decode(token, key: key)
        let reached = try latest()
        guard reached >= revision else {
            throw RPCError(
                .unavailable,
                "\(metadataKey): the database is at revision \(reached), older than the token's \(revision) (restored from a backup?); retry later or without the token")
        }
    }
}
