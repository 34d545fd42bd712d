import Crypto
import Foundation
import OrgdCore

/// Opaque page tokens: the position to continue after, bound to the list and
/// the filters it was issued for, so a token is never silently applied to a
/// different query, and authenticated with a key kept in the database
/// (`Store.pageTokenKey`), so a caller cannot make one up for a position of
/// their choosing and every daemon over the same database takes the tokens
/// another one issued.
enum PageToken {
    static let defaultPageSize = 50
    static let maximumPageSize = 1000

    /// The page size to use: 0 means the default, more than the maximum is
    /// capped, negative is refused.
    static func pageSize(_ requested: Int32, field: String = "page_size") throws -> Int {
        if requested < 0 { throw RPCError.invalidArgument(field: field, "must not be negative") }
        if requested == 0 { return defaultPageSize }
        return min(Int(requested), maximumPageSize)
    }

    /// A token is 8 bytes of position (big-endian) and an HMAC-SHA256 over
    /// the position and `scope` (the list and its filters), base64url.
    private static let positionBytes = 8
    private static let tokenBytes = positionBytes + SHA256.byteCount
    /// Base64url without padding of `tokenBytes` bytes.
    private static let tokenCharacters = (tokenBytes * 4 + 2) / 3

    static func encode(after position: Int64?, scope: String, key: [UInt8]) -> String {
        guard let position else { return "" }
        let positionData = withUnsafeBytes(of: position.bigEndian) { Array($0) }
        let raw = positionData + Array(mac(position: positionData, scope: scope, key: key))
        // Base64url without padding, in one pass over base64's bytes (three
        // Foundation replacements were a tenth of a GetOrganization's CPU).
        let base64 = Data(raw).base64EncodedData()
        var url = [UInt8]()
        url.reserveCapacity(base64.count)
        for byte in base64 {
            switch byte {
            case UInt8(ascii: "+"): url.append(UInt8(ascii: "-"))
            case UInt8(ascii: "/"): url.append(UInt8(ascii: "_"))
            case UInt8(ascii: "="): continue
            default: url.append(byte)
            }
        }
        return String(decoding: url, as: UTF8.self)
    }

    /// The position in `token`, nil for an empty token (the first page). A
    /// token not issued over this database for this very list and filters —
    /// garbled, truncated, forged, or for other filters — is
    /// INVALID_ARGUMENT naming the field, asking to list again.
    static func decode(_ token: String, scope: String, field: String = "page_token", key: [UInt8]) throws -> Int64? {
        guard !token.isEmpty else { return nil }
        let refused = RPCError.invalidArgument(
            field: field,
            "not a page token this server issued for this list and these filters; list again from the first page")
        guard token.utf8.count == tokenCharacters,
              token.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0)
                  || (0x41...0x5a).contains($0) || (0x61...0x7a).contains($0) })
        else { throw refused }
        var base64 = Data(token.utf8.map { $0 == UInt8(ascii: "-") ? UInt8(ascii: "+") : $0 == UInt8(ascii: "_") ? UInt8(ascii: "/") : $0 })
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        guard let data = Data(base64Encoded: base64), data.count == tokenBytes else { throw refused }
        let bytes = [UInt8](data)
        let positionData = Array(bytes[..<positionBytes])
        let code = Array(bytes[positionBytes...])
        guard HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: macInput(position: positionData, scope: scope), using: SymmetricKey(data: key))
        else { throw refused }
        let position = positionData.reduce(Int64(0)) { ($0 << 8) | Int64($1) }
        guard position >= 0 else { throw refused }
        return position
    }

    private static func macInput(position: [UInt8], scope: String) -> [UInt8] {
        Array("orgd page token v1\u{0}".utf8) + position + Array(scope.utf8)
    }

    private static func mac(position: [UInt8], scope: String, key: [UInt8]) -> HMAC<SHA256>.MAC {
        HMAC<SHA256>.authenticationCode(for: macInput(position: position, scope: scope), using: SymmetricKey(data: key))
    }
}

/// Page tokens signed with one store's key: `context.pageTokens`.
struct PageTokens {
    let key: [UInt8]

    func encode(after position: Int64?, scope: String) -> String {
        PageToken.encode(after: position, scope: scope, key: key)
    }

    func decode(_ token: String, scope: String, field: String = "page_token") throws -> Int64? {
        try PageToken.decode(token, scope: scope, field: field, key: key)
    }
}
