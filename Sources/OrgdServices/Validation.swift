import Foundation
import OrgdCore
import SwiftProtobuf

/// Input checks shared by the services. Each failure names the field.
enum Validation {
    /// A non-empty, printable text of at most `maximum` characters (Unicode
    /// scalars, as SQLite's `length()` counts them), stored exactly as sent:
    /// nothing is trimmed or rewritten, so text that would need changing is
    /// refused instead (see SECURITY.md, "Input rules").
    static func text(_ value: String, field: String, maximum: Int = 200, required: Bool = true) throws -> String {
        if value.isEmpty {
            if required { throw RPCError.invalidArgument(field: field, "required") }
            return ""
        }
        if let first = value.unicodeScalars.first, let last = value.unicodeScalars.last,
           isWhitespace(first) || isWhitespace(last) {
            throw RPCError.invalidArgument(field: field, "must not begin or end with whitespace")
        }
        try characters(value, field: field, maximum: maximum)
        return value
    }

    /// A prefix to search by: like `text`, but optional and may end (or
    /// begin) with a space, since "van " is a meaningful prefix. Never trimmed.
    static func prefix(_ value: String, field: String, maximum: Int = 200) throws -> String {
        try characters(value, field: field, maximum: maximum)
        return value
    }

    /// The characters every text field may hold: no C0/C1 controls (Cc), no
    /// line or paragraph separators, and no bidirectional embedding, override
    /// or isolate controls (U+202A–U+202E, U+2066–U+2069: they make text read
    /// differently from what it is). Other format characters (Cf) are
    /// allowed: ZWNJ and ZWJ (U+200C, U+200D) are part of Persian and Indic
    /// names, and marks such as U+200E/U+200F only steer neutral characters.
    private static func characters(_ value: String, field: String, maximum: Int) throws {
        let count = value.unicodeScalars.count
        if count > maximum {
            throw RPCError.invalidArgument(field: field, "at most \(maximum) characters, got \(count)")
        }
        for scalar in value.unicodeScalars {
            switch scalar.properties.generalCategory {
            case .control:
                throw RPCError.invalidArgument(field: field, "must not contain control characters (U+\(hex(scalar)))")
            case .lineSeparator, .paragraphSeparator:
                throw RPCError.invalidArgument(field: field, "must not contain line or paragraph separators (U+\(hex(scalar)))")
            default:
                if isBidiControl(scalar) {
                    throw RPCError.invalidArgument(
                        field: field, "must not contain bidirectional embedding, override or isolate controls (U+\(hex(scalar)))")
                }
            }
        }
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.isWhitespace
    }

    static func isBidiControl(_ scalar: Unicode.Scalar) -> Bool {
        (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value)
    }

    static func hex(_ scalar: Unicode.Scalar) -> String {
        let digits = String(scalar.value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
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

    /// The earliest and latest instants a `google.protobuf.Timestamp` may
    /// name (its documented range): 0001-01-01T00:00:00Z and
    /// 9999-12-31T23:59:59.999999999Z, in seconds since the Unix epoch.
    static let earliestTimestampSeconds: Int64 = -62_135_596_800
    static let latestTimestampSeconds: Int64 = 253_402_300_799

    /// The one conversion of a request's `google.protobuf.Timestamp` to a
    /// `Date`: seconds within 0001-01-01 to 9999-12-31 and nanos within
    /// 0…999,999,999, else INVALID_ARGUMENT naming the field. Every Date it
    /// returns fits the store's microseconds with room to spare.
    static func timestamp(_ value: Google_Protobuf_Timestamp, field: String) throws -> Date {
        guard (earliestTimestampSeconds...latestTimestampSeconds).contains(value.seconds) else {
            throw RPCError.invalidArgument(
                field: field, "seconds must be within 0001-01-01 and 9999-12-31 (\(earliestTimestampSeconds) to \(latestTimestampSeconds)), got \(value.seconds)")
        }
        guard (0...999_999_999).contains(value.nanos) else {
            throw RPCError.invalidArgument(field: field, "nanos must be 0 to 999999999, got \(value.nanos)")
        }
        return Date(timeIntervalSince1970: Double(value.seconds) + Double(value.nanos) / 1_000_000_000)
    }

    /// A version the caller read: required and positive.
    static func version(_ value: Int64, field: String = "version") throws -> Int64 {
        guard value > 0 else { throw RPCError.invalidArgument(field: field, "required: send the version you read") }
        return value
    }
}

extension Validation {
    /// A plausible e-mail address, stored exactly as sent (never trimmed):
    /// at most 254 bytes; one `@`; a local part of 1–64 bytes in dot-atom
    /// form (letters, digits, non-ASCII characters and ``!#$%&'*+-/=?^_`{|}~``,
    /// dots only between them); a domain of at least two dot-separated labels,
    /// each 1–63 bytes of letters (any script, with their combining marks),
    /// digits and inner hyphens, the last label not all digits. No quoted
    /// local parts and no address literals (`a@[127.0.0.1]`): mail for a
    /// health-data platform goes to named domains.
    static func email(_ value: String, field: String = "email") throws -> String {
        if value.isEmpty { throw RPCError.invalidArgument(field: field, "required") }
        if let first = value.unicodeScalars.first, let last = value.unicodeScalars.last,
           isWhitespace(first) || isWhitespace(last) {
            throw RPCError.invalidArgument(field: field, "must not begin or end with whitespace")
        }
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        let labels = parts.count == 2 ? parts[1].split(separator: ".", omittingEmptySubsequences: false) : []
        let valid = value.utf8.count <= 254
            && parts.count == 2
            && (1...64).contains(parts[0].utf8.count)
            && isDotAtom(parts[0])
            && parts[1].utf8.count <= 253
            && labels.count >= 2
            && labels.allSatisfy(isDomainLabel)
            && !labels[labels.count - 1].unicodeScalars.allSatisfy { ("0"..."9").contains($0) }
        guard valid else {
            // Controls, format characters and separators are shown escaped, so
            // the message stays one line that reads as what was sent.
            let shown = value.unicodeScalars.prefix(254).map { scalar in
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator: "\\u{\(hex(scalar))}"
                default: String(scalar)
                }
            }.joined()
            throw RPCError.invalidArgument(field: field, "not a valid e-mail address: \(shown)")
        }
        return value
    }

    /// RFC 5322's dot-atom, with RFC 6531's non-ASCII characters.
    private static func isDotAtom(_ local: Substring) -> Bool {
        let atoms = local.split(separator: ".", omittingEmptySubsequences: false)
        return atoms.allSatisfy { atom in
            !atom.isEmpty && atom.unicodeScalars.allSatisfy { scalar in
                if scalar.isASCII {
                    return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                        || "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(scalar)
                }
                return isNameCharacter(scalar)
            }
        }
    }

    /// Letters, digits and inner hyphens (LDH), letters in any script (IDN).
    private static func isDomainLabel(_ label: Substring) -> Bool {
        guard !label.isEmpty, label.utf8.count <= 63, !label.hasPrefix("-"), !label.hasSuffix("-") else { return false }
        return label.unicodeScalars.allSatisfy { scalar in
            if scalar.isASCII {
                return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-"
            }
            switch scalar.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
                 .nonspacingMark, .spacingMark, .decimalNumber:
                return true
            default:
                return false
            }
        }
    }

    /// A non-ASCII character a local part may hold: anything printable that
    /// is not whitespace, a separator, a control or a format character.
    private static func isNameCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .spaceSeparator, .lineSeparator, .paragraphSeparator, .unassigned, .privateUse, .surrogate:
            return false
        default:
            return true
        }
    }
}
