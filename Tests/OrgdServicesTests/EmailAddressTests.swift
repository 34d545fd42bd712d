import Foundation
import OrgdCore
@testable import OrgdServices
@testable import OrgdStore
import Testing

/// E-mail syntax the way mail systems take it (RFC 5321, RFC 6531 for
/// internationalised addresses) and e-mail identity (NFC, any case): issue 13
/// item 6. One row per address: accepted (and stored as what), or refused
/// saying why.
@Suite("e-mail addresses")
struct EmailAddressTests {
    enum Outcome: Sendable, CustomStringConvertible {
        /// Accepted; stored as the given form (NFC of what was sent).
        case stored(String)
        /// Refused INVALID_ARGUMENT on `email`, the message containing this.
        case refused(String)
        var description: String {
            switch self {
            case .stored(let form): "stored as \(form.debugDescription)"
            case .refused(let why): "refused: \(why)"
            }
        }
    }

    static let composed = "jos\u{00E9}@example.com"
    static let decomposed = "jose\u{0301}@example.com"
    static let local64 = String(repeating: "a", count: 64)
    static let label63 = String(repeating: "b", count: 63)
    /// 63+1+63+1+63+1+56+4 = 252 octets: the longest domain an address can
    /// have, since "a@" and the domain must fit in 254 octets.
    static let domain252 = [label63, label63, label63, String(repeating: "c", count: 56) + ".org"].joined(separator: ".")

    static let table: [(String, Outcome)] = [
        // Good addresses, as mail systems take them.
        ("ann.lee@example.org", .stored("ann.lee@example.org")),
        ("Ann.Lee@Example.ORG", .stored("Ann.Lee@Example.ORG")),
        ("a.b+tag@example.org", .stored("a.b+tag@example.org")),
        ("o'neil@example.co.uk", .stored("o'neil@example.co.uk")),
        ("!#$%&'*+-/=?^_`{|}~@example.org", .stored("!#$%&'*+-/=?^_`{|}~@example.org")),
        ("x@a-b.example", .stored("x@a-b.example")),
        ("a@b1.c2", .stored("a@b1.c2")),
        ("x@xn--bcher-kva.de", .stored("x@xn--bcher-kva.de")),
        ("user@bücher.de", .stored("user@bücher.de")),
        (composed, .stored(composed)),
        (decomposed, .stored(composed)),
        ("用户@例子.广告", .stored("用户@例子.广告")),
        ("пример@пример.рф", .stored("пример@пример.рф")),
        ("δοκιμή@παράδειγμα.δοκιμή", .stored("δοκιμή@παράδειγμα.δοκιμή")),
        (local64 + "@example.org", .stored(local64 + "@example.org")),
        ("a@" + domain252, .stored("a@" + domain252)),
        ("a@" + label63 + ".org", .stored("a@" + label63 + ".org")),
        // Local part.
        ("jock..jones@x.com", .refused("local part has two dots in a row")),
        (".a@x.com", .refused("local part begins with a dot")),
        ("a.@x.com", .refused("local part ends with a dot")),
        ("@x.com", .refused("local part is empty")),
        (String(repeating: "a", count: 65) + "@example.org", .refused("local part is at most 64 octets, got 65")),
        // 22 two-octet letters + 21 = 65 octets in 43 characters.
        (String(repeating: "é", count: 22) + String(repeating: "a", count: 21) + "@example.org", .refused("local part is at most 64 octets, got 65")),
        ("\"ab\"@x.com", .refused("quoted local parts are not accepted")),
        ("\"ab\"@x.com", .refused("quoted local parts are not accepted")),
        ("a(b)@x.com", .refused("local part must not contain '('")),
        ("a,b@x.com", .refused("local part must not contain ','")),
        ("a b@x.com", .refused("must not contain whitespace")),
        ("a\u{00A0}b@x.com", .refused("must not contain whitespace")),
        (" a@x.com", .refused("must not begin or end with whitespace")),
        ("a@x.com\n", .refused("must not begin or end with whitespace")),
        ("a\u{0007}@x.com", .refused("control, format or unassigned characters such as U+0007")),
        ("a\u{200B}b@x.com", .refused("such as U+200B")),
        ("a@b.c\u{202E}gro", .refused("such as U+202E")),
        // The @.
        ("plain.example.org", .refused("needs an @")),
        ("a@b@x.com", .refused("has more than one @")),
        ("a@", .refused("domain is empty")),
        // Domain.
        ("a@[1.2.3.4]", .refused("address literals ([…]) are not accepted")),
        ("a@[IPv6:::1]", .refused("address literals ([…]) are not accepted")),
        ("a@localhost", .refused("domain needs at least two labels")),
        ("a@x", .refused("domain needs at least two labels")),
        ("a@-x.com", .refused("domain label begins or ends with a hyphen")),
        ("a@x-.com", .refused("domain label begins or ends with a hyphen")),
        ("a@x..com", .refused("domain has an empty label")),
        ("a@x.com.", .refused("domain has an empty label")),
        ("a@.x.com", .refused("domain has an empty label")),
        ("a@x_y.com", .refused("domain must not contain '_'")),
        ("a@x.123", .refused("top-level domain label is all digits")),
        ("a@1.2.3.4", .refused("top-level domain label is all digits")),
        ("a@" + String(repeating: "b", count: 64) + ".org", .refused("domain label is at most 63 octets, got 64")),
        ("a@bb" + domain252, .refused("at most 254 octets, got 256")),
        // The whole: 64 + 1 + 190 = 255 octets.
        (local64 + "@" + String(repeating: "d", count: 62) + "." + String(repeating: "e", count: 62) + "." + String(repeating: "f", count: 60) + ".org",
         .refused("at most 254 octets, got 255")),
        ("", .refused("required")),
    ]

    @Test("each address in the table is stored NFC or refused saying why", arguments: table)
    func address(_ input: String, _ outcome: Outcome) throws {
        switch outcome {
        case .stored(let form):
            let stored = try Validation.email(input)
            // Byte for byte: Swift's == would call NFD and NFC equal.
            #expect(Array(stored.utf8) == Array(form.utf8), "\(input.debugDescription) stored as \(stored.debugDescription)")
        case .refused(let why):
            do {
                let stored = try Validation.email(input)
                Issue.record("\(input.debugDescription) was accepted as \(stored.debugDescription); expected \(why)")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                #expect(error.fieldViolations.first?.field == "email")
                #expect(error.message.hasPrefix("email: "))
                #expect(error.message.contains(why), "\(input.debugDescription): \(error.message)")
            }
        }
    }

    @Test("the key is NFC and full Unicode lowercasing: composed, decomposed and upper-cased forms are one identity")
    func keys() {
        let key = EmailKey.of(Self.composed)
        for form in [Self.decomposed, "JOS\u{00C9}@EXAMPLE.COM", "JOSE\u{0301}@Example.Com", "Jos\u{00E9}@example.COM"] {
            #expect(Array(EmailKey.of(form).utf8) == Array(key.utf8), "\(form.debugDescription)")
        }
        #expect(Array(key.utf8) == Array("jos\u{00E9}@example.com".utf8))
        // Local parts are compared case-insensitively too, in any script.
        #expect(EmailKey.of("ΔΟΚΙΜΉ@ΠΑΡΆΔΕΙΓΜΑ.ΔΟΚΙΜΉ") == EmailKey.of("δοκιμή@παράδειγμα.δοκιμή"))
        // Different letters stay different: é is not e.
        #expect(Array(EmailKey.of("jose@example.com").utf8) != Array(key.utf8))
        // Lowercasing İ leaves i + U+0307; the key is that, composed (no precomposed form exists).
        #expect(Array(EmailKey.of("\u{0130}@x.com").utf8) == Array("i\u{0307}@x.com".utf8))
    }
}
