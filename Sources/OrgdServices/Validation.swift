import Foundation
import OrgdCore

/// Input checks shared by the services. Each failure names the field.
enum Validation {
    /// A trimmed, non-empty, printable text of at most `maximum` characters
    /// (Unicode scalars, as SQLite's `length()` counts them).
    static func text(_ value: String, field: String, maximum: Int = 200, required: Bool = true) throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            if required { throw RPCError.invalidArgument(field: field, "required") }
            return ""
        }
        if trimmed.unicodeScalars.count > maximum {
            throw RPCError.invalidArgument(field: field, "at most \(maximum) characters, got \(trimmed.unicodeScalars.count)")
        }
        if trimmed.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) {
            throw RPCError.invalidArgument(field: field, "must not contain control characters")
        }
        return trimmed
    }

    /// A public id: a UUID (8-4-4-4-12 hex digits), returned in lower case.
    /// Checked by hand: Foundation's UUID parsing goes through sscanf, which
    /// showed up in the access check's profile.
    static func id(_ value: String, field: String = "id") throws -> String {
        if value.isEmpty { throw RPCError.invalidArgument(field: field, "required") }
        var lowered = [UInt8]()
        lowered.reserveCapacity(36)
        var valid = value.utf8.count == 36
        if valid {
            for (index, byte) in value.utf8.enumerated() {
                switch byte {
                case UInt8(ascii: "-") where index == 8 || index == 13 || index == 18 || index == 23:
                    lowered.append(byte)
                case UInt8(ascii: "0")...UInt8(ascii: "9") where index != 8 && index != 13 && index != 18 && index != 23,
                     UInt8(ascii: "a")...UInt8(ascii: "f") where index != 8 && index != 13 && index != 18 && index != 23:
                    lowered.append(byte)
                case UInt8(ascii: "A")...UInt8(ascii: "F") where index != 8 && index != 13 && index != 18 && index != 23:
                    lowered.append(byte + 32)
                default:
                    valid = false
                }
                if !valid { break }
            }
        }
        guard valid else { throw RPCError.invalidArgument(field: field, "not a valid id (a UUID): \(value.prefix(64))") }
        return String(decoding: lowered, as: UTF8.self)
    }

    /// A version the caller read: required and positive.
    static func version(_ value: Int64, field: String = "version") throws -> Int64 {
        guard value > 0 else { throw RPCError.invalidArgument(field: field, "required: send the version you read") }
        return value
    }
}

extension Validation {
    /// A plausible e-mail address: one `@`, a local part of 1–64 characters, a
    /// domain of dot-separated labels, no spaces; at most 254 characters.
    static func email(_ value: String, field: String = "email") throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { throw RPCError.invalidArgument(field: field, "required") }
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        let labels = parts.count == 2 ? parts[1].split(separator: ".", omittingEmptySubsequences: false) : []
        let valid = trimmed.utf8.count <= 254
            && parts.count == 2
            && (1...64).contains(parts[0].utf8.count)
            && labels.count >= 2
            && labels.allSatisfy { !$0.isEmpty && $0.utf8.count <= 63 && !$0.hasPrefix("-") && !$0.hasSuffix("-") }
            && !trimmed.unicodeScalars.contains { CharacterSet.whitespacesAndNewlines.contains($0) || CharacterSet.controlCharacters.contains($0) }
        guard valid else { throw RPCError.invalidArgument(field: field, "not a valid e-mail address: \(trimmed.prefix(254))") }
        return trimmed
    }
}
