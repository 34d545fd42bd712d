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
    /// An e-mail address the way mail systems take it (RFC 5321, with RFC
    /// 6531 for internationalised addresses), returned NFC-normalised (as
    /// typed otherwise, for display; `EmailKey` gives the identity):
    /// `local@domain` with one `@`; the local part a dot-atom (RFC 5322 atext,
    /// plus non-ASCII characters) of at most 64 octets, dots only between
    /// atoms; the domain at least two dot-separated labels of letters, digits
    /// and inner hyphens (letters in any script: U-labels), each 1–63 octets,
    /// at most 253 octets in all, the top-level label not all digits; at most
    /// 254 octets for the address. No quoted local parts and no address
    /// literals (`a@[127.0.0.1]`): mail for a health-data platform goes to
    /// named domains. No whitespace, controls or invisible format characters
    /// anywhere (they would make two addresses look alike). Each refusal says
    /// which rule the address breaks. Octets are UTF-8 of the NFC form; a
    /// U-label is held to 63 UTF-8 octets, not to its A-label's length.
    static func email(_ value: String, field: String = "email") throws -> String {
        if value.isEmpty { throw RPCError.invalidArgument(field: field, "required") }
        let address = value.precomposedStringWithCanonicalMapping
        func refuse(_ why: String) -> RPCError {
            // Controls, format characters and separators are shown escaped, so
            // the message stays one line that reads as what was sent.
            let shown = address.unicodeScalars.prefix(254).map { scalar in
                switch scalar.properties.generalCategory {
                case .control, .format, .lineSeparator, .paragraphSeparator, .spaceSeparator: "\\u{\(hex(scalar))}"
                default: String(scalar)
                }
            }.joined()
            return RPCError.invalidArgument(field: field, "not a valid e-mail address, \(why): \(shown)")
        }
        if let first = address.unicodeScalars.first, let last = address.unicodeScalars.last,
           isWhitespace(first) || isWhitespace(last) {
            throw RPCError.invalidArgument(field: field, "must not begin or end with whitespace")
        }
        for scalar in address.unicodeScalars {
            if isWhitespace(scalar) { throw refuse("must not contain whitespace") }
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .unassigned, .privateUse, .surrogate:
                throw refuse("must not contain control, format or unassigned characters such as U+\(hex(scalar))")
            default: break
            }
        }
        if address.utf8.count > 254 { throw refuse("at most 254 octets, got \(address.utf8.count)") }
        if address.hasPrefix("\"") { throw refuse("quoted local parts are not accepted") }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        if parts.count == 1 { throw refuse("needs an @ between the local part and the domain") }
        if parts.count > 2 { throw refuse("has more than one @") }
        try checkLocalPart(parts[0], refuse)
        try checkDomain(parts[1], refuse)
        return address
    }

    /// RFC 5322's dot-atom, with RFC 6531's non-ASCII characters.
    private static func checkLocalPart(_ local: Substring, _ refuse: (String) -> RPCError) throws {
        if local.isEmpty { throw refuse("local part is empty") }
        if local.utf8.count > 64 { throw refuse("local part is at most 64 octets, got \(local.utf8.count)") }
        if local.hasPrefix(".") { throw refuse("local part begins with a dot") }
        if local.hasSuffix(".") { throw refuse("local part ends with a dot") }
        if local.contains("..") { throw refuse("local part has two dots in a row") }
        for scalar in local.unicodeScalars where scalar.isASCII && scalar != "." && !isAtext(scalar) {
            throw refuse("local part must not contain '\(scalar)' (quoted local parts are not accepted)")
        }
    }

    /// Letters, digits and inner hyphens (LDH), letters in any script (IDN).
    private static func checkDomain(_ domain: Substring, _ refuse: (String) -> RPCError) throws {
        if domain.isEmpty { throw refuse("domain is empty") }
        if domain.hasPrefix("[") { throw refuse("address literals ([…]) are not accepted; use a domain name") }
        if domain.utf8.count > 253 { throw refuse("domain is at most 253 octets, got \(domain.utf8.count)") }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count < 2 { throw refuse("domain needs at least two labels, as in example.org") }
        for label in labels {
            if label.isEmpty { throw refuse("domain has an empty label (a dot at its start or end, or two in a row)") }
            if label.utf8.count > 63 { throw refuse("domain label is at most 63 octets, got \(label.utf8.count)") }
            if label.hasPrefix("-") || label.hasSuffix("-") { throw refuse("domain label begins or ends with a hyphen") }
            if let scalar = label.unicodeScalars.first(where: { !isDomainCharacter($0) }) {
                throw refuse("domain must not contain '\(scalar)'")
            }
        }
        if labels[labels.count - 1].unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) {
            throw refuse("top-level domain label is all digits")
        }
    }

    /// RFC 5322 atext: ASCII letters, digits and ``!#$%&'*+-/=?^_`{|}~``;
    /// every non-ASCII character that passed the address-wide checks (RFC 6531).
    private static func isAtext(_ scalar: Unicode.Scalar) -> Bool {
        guard scalar.isASCII else { return true }
        return ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
            || "!#$%&'*+-/=?^_`{|}~".unicodeScalars.contains(scalar)
    }

    private static func isDomainCharacter(_ scalar: Unicode.Scalar) -> Bool {
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
