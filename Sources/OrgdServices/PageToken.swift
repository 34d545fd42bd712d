import Foundation
import OrgdCore

/// Opaque page tokens: the position to continue after, bound to the list and
/// the filters it was issued for, so a token is never silently applied to a
/// different query.
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

    static func encode(after position: Int64?, scope: String) -> String {
        guard let position else { return "" }
        let raw = "\(position).\(fingerprint(scope))"
        return Data(raw.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// The position in `token`, nil for an empty token (the first page).
    static func decode(_ token: String, scope: String, field: String = "page_token") throws -> Int64? {
        guard !token.isEmpty else { return nil }
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard token.count <= 64, let data = Data(base64Encoded: base64), let raw = String(data: data, encoding: .utf8) else {
            throw RPCError.invalidArgument(field: field, "not a page token issued by this server")
        }
        let parts = raw.split(separator: ".")
        guard parts.count == 2, let position = Int64(parts[0]), position >= 0 else {
            throw RPCError.invalidArgument(field: field, "not a page token issued by this server")
        }
        guard parts[1] == fingerprint(scope) else {
            throw RPCError.invalidArgument(field: field, "was issued for a different list or different filters")
        }
        return position
    }

    /// FNV-1a, 64 bits: stable across runs and machines (unlike `Hasher`).
    private static func fingerprint(_ scope: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in scope.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 36)
    }
}
