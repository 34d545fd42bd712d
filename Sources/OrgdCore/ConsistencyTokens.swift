import Foundation

/// What clients and server share about consistency tokens: the metadata key
/// they travel under, and how a client orders two of them.
///
/// A token is opaque to callers; orgd's own clients read the revision in it
/// only to keep the newer of two. The layout (base64url without padding of
/// the revision, 8 bytes big-endian, then a 32-byte HMAC-SHA256 over it with
/// the database's key) is the server's to change together with this file.
public enum ConsistencyTokens {
    public static let metadataKey = "orgd-consistency-token"

    /// The revision in `token`, nil for a string not of that layout (the
    /// server, which checks the signature, is the judge of a token).
    public static func revision(of token: String) -> Int64? {
        guard token.utf8.count == 54 else { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), data.count == 40 else { return nil }
        return data.prefix(8).reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }
}
