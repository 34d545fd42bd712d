import Foundation
import OrgdCore
import OrgdProto
@testable import OrgdServices
@testable import OrgdStore
import SwiftProtobuf
import Testing

/// SECURITY.md's "Input rules": what is refused, what is stored exactly as
/// sent, and that nothing a request or the store holds can trap a conversion.
@Suite("input rules")
struct InputRulesTests {
    func user(_ harness: Harness, email: String = "\(UUID().uuidString.prefix(8))@example.org", given: String = "Given") async throws -> Orgd_V1_User {
        var request = Orgd_V1_CreateUserRequest()
        request.email = email
        request.givenName = given
        request.familyName = "Family"
        return try await harness.client().memberships.createUser(request)
    }

    func refusal(_ harness: Harness, email: String = "\(UUID().uuidString.prefix(8))@example.org", given: String = "Given") async -> RPCError? {
        await rpcError { _ = try await user(harness, email: email, given: given) }
    }

    // MARK: Text and e-mail: stored exactly as sent, or refused

    @Test("leading or trailing whitespace is refused naming the field, never trimmed")
    func whitespaceRefused() async throws {
        let harness = try await Harness()
        for email in ["a@b.c\n", " a@b.c", "a@b.c ", "a@b.c\u{00A0}"] {
            let error = await refusal(harness, email: email)
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "email", "\(email.debugDescription): \(String(describing: error))")
            #expect(error?.message == "email: must not begin or end with whitespace")
        }
        for given in [" Ann", "Ann ", "Ann\t", "\u{3000}Ann"] {
            let error = await refusal(harness, given: given)
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "given_name", "\(given.debugDescription)")
            #expect(error?.message == "given_name: must not begin or end with whitespace")
        }
        // Organisation names, scope codes and the rest go through the same rule.
        let organization = await rpcError { _ = try await harness.createOrganization("Clinic ") }
        #expect(organization?.fieldViolations.first?.field == "name")
        // An inner space is a name's own business.
        #expect(try await user(harness, given: "Mary Ann").givenName == "Mary Ann")
    }

    @Test("ZWNJ and ZWJ are allowed and stored byte for byte; controls and bidi overrides are refused")
    func formatCharacters() async throws {
        let harness = try await Harness()
        let persian = "زهرا\u{200C}ی"
        let malayalam = "ന്\u{200D}"
        for name in [persian, malayalam] {
            let created = try await user(harness, given: name)
            #expect(Array(created.givenName.utf8) == Array(name.utf8))
            var get = Orgd_V1_GetUserRequest()
            get.id = created.id
            let read = try await harness.client().memberships.getUser(get)
            #expect(Array(read.givenName.utf8) == Array(name.utf8))
        }
        for (name, why) in [
            ("Ann\u{202E}nnA", "bidirectional"), ("Ann\u{2066}x", "bidirectional"), ("Ann\u{202A}x", "bidirectional"),
            ("Ann\u{0007}", "control"), ("An\nn", "control"), ("An\u{0085}n", "control"), ("An\u{2028}n", "separator"),
        ] {
            let error = await refusal(harness, given: name)
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "given_name", "\(name.debugDescription)")
            #expect(error?.message.contains(why) == true, "\(name.debugDescription): \(String(describing: error))")
        }
    }

    @Test("e-mail domains are LDH labels (any script); address literals and brackets are refused")
    func emailDomains() async throws {
        let harness = try await Harness()
        for email in [
            "a@[127.0.0.1", "a@[127.0.0.1]", "a@127.0.0.1", "a@b", "a@-b.c", "a@b-.c", "a@b..c", "a@b_c.d", "a@b.c.",
            "a b@c.d", "\"a\"@b.c", ".a@b.c", "a.@b.c", "a..b@c.d", "a@b@c.d", "a(b)@c.d", "a@b.c\u{202E}",
            "a@b\u{200D}c.d", String(repeating: "a", count: 65) + "@b.c",
        ] {
            let error = await refusal(harness, email: email)
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "email", "\(email.debugDescription) was accepted")
        }
        // The refusal echoes what was sent, with invisible characters escaped.
        #expect(await refusal(harness, email: "a@b.c\u{202E}gro")?.message == "email: not a valid e-mail address, must not contain control, format or unassigned characters such as U+202E: a@b.c\\u{202E}gro")
        for email in ["a.b+tag@example.org", "o'neil@example.co.uk", "пример@пример.рф", "user@bücher.de", "x@xn--bcher-kva.de", "a@b1.c2"] {
            let created = try await user(harness, email: email)
            #expect(created.email == email)
        }
    }

    @Test("prefix filters keep their spaces: \"Mary \" finds Mary Ann, not Maryam")
    func prefixesKeepSpaces() async throws {
        let harness = try await Harness()
        _ = try await harness.createOrganization("Mary Ann Clinic")
        _ = try await harness.createOrganization("Maryam Clinic")
        let found = try await harness.listOrganizations { $0.namePrefix = "Mary " }
        #expect(found.organizations.map(\.name) == ["Mary Ann Clinic"])
    }

    @Test("ids are the one input rewritten: an upper-case UUID names the same row (canonicalisation, not a change)")
    func idsLowerCased() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Clinic")
        let read = try await harness.getOrganization(organization.id.uppercased())
        #expect(read.organization.id == organization.id && organization.id == organization.id.lowercased())
    }

    // MARK: Timestamps and numbers

    func consentRequestWorld(_ harness: Harness) async throws -> (organization: String, scope: Orgd_V1_Scope) {
        let organization = try await harness.createOrganization("Research \(UUID().uuidString.prefix(6))")
        var scope = Orgd_V1_CreateScopeRequest()
        scope.codingSystem = "https://w3id.org/openmhealth"
        scope.codingCode = "omh:blood-pressure:\(UUID().uuidString.prefix(6))"
        let created = try await harness.client().consents.createScope(scope)
        return (organization.id, created)
    }

    static func timestamp(_ seconds: Int64, _ nanos: Int32 = 0) -> Google_Protobuf_Timestamp {
        var value = Google_Protobuf_Timestamp()
        value.seconds = seconds
        value.nanos = nanos
        return value
    }

    @Test("timestamps outside 0001–9999 or with nanos outside 0…999,999,999 are refused naming the field; the edges are accepted")
    func timestampRange() async throws {
        let harness = try await Harness()
        let (organization, scope) = try await consentRequestWorld(harness)
        var reference = Orgd_V1_ScopeRef()
        reference.id = scope.id
        func create(start: Google_Protobuf_Timestamp? = nil, end: Google_Protobuf_Timestamp? = nil) async throws -> Orgd_V1_ConsentRequest {
            var request = Orgd_V1_CreateConsentRequestRequest()
            request.organizationID = organization
            request.kind = .study
            request.name = "Study"
            request.scopes = [reference]
            if let start { request.startTime = start }
            if let end { request.endTime = end }
            return try await harness.client().consents.createConsentRequest(request)
        }
        let bad: [(Google_Protobuf_Timestamp, String)] = [
            (Self.timestamp(10_000_000_000_000), "seconds"), (Self.timestamp(-10_000_000_000_000), "seconds"),
            (Self.timestamp(Int64.max), "seconds"), (Self.timestamp(Int64.min), "seconds"),
            (Self.timestamp(Validation.latestTimestampSeconds + 1), "seconds"), (Self.timestamp(Validation.earliestTimestampSeconds - 1), "seconds"),
            (Self.timestamp(1_900_000_000, -1), "nanos"), (Self.timestamp(1_900_000_000, 1_000_000_000), "nanos"),
            (Self.timestamp(1_900_000_000, Int32.min), "nanos"),
        ]
        for (value, part) in bad {
            let asStart = await rpcError { _ = try await create(start: value) }
            #expect(asStart?.code == .invalidArgument && asStart?.fieldViolations.first?.field == "start_time", "\(value)")
            #expect(asStart?.message.hasPrefix("start_time: \(part)") == true, "\(String(describing: asStart))")
            let asEnd = await rpcError { _ = try await create(end: value) }
            #expect(asEnd?.code == .invalidArgument && asEnd?.fieldViolations.first?.field == "end_time", "\(value)")
        }
        // The extremes of the range are fine, and survive the round trip through the store.
        let widest = try await create(
            start: Self.timestamp(Validation.earliestTimestampSeconds), end: Self.timestamp(Validation.latestTimestampSeconds))
        #expect(widest.startTime.seconds == Validation.earliestTimestampSeconds)
        #expect(widest.endTime.seconds == Validation.latestTimestampSeconds)
        _ = try await create(start: Self.timestamp(1_900_000_000, 999_999_999))
        // UpdateConsentRequest uses the same conversion.
        var update = Orgd_V1_UpdateConsentRequestRequest()
        update.id = widest.id
        update.version = widest.version
        update.endTime = Self.timestamp(1_900_000_000, 1_000_000_000)
        let updateError = await rpcError { _ = try await harness.client().consents.updateConsentRequest(update) }
        #expect(updateError?.code == .invalidArgument && updateError?.fieldViolations.first?.field == "end_time")
    }

    @Test("the store's conversion to microseconds never traps, whatever the date")
    func storedMicrosClamps() {
        #expect(Date(timeIntervalSince1970: 1e13).storedMicros == Int64.max)
        #expect(Date(timeIntervalSince1970: -1e13).storedMicros == Int64.min)
        #expect(Date(timeIntervalSince1970: .infinity).storedMicros == Int64.max)
        #expect(Date(timeIntervalSince1970: -.infinity).storedMicros == Int64.min)
        #expect(Date(timeIntervalSince1970: .nan).storedMicros == 0)
        #expect(Date(timeIntervalSince1970: 1_800_000_000.123456).storedMicros == 1_800_000_000_123_456)
        #expect(Date(storedMicros: Int64.max).storedMicros > 9_223_372_036_854_000_000)
        #expect(Date(storedMicros: Int64.min).storedMicros < -9_223_372_036_854_000_000)
        // Dates read back from any stored value convert to a Timestamp without trapping.
        #expect(Google_Protobuf_Timestamp(date: Date(storedMicros: Int64.max)).seconds > 9_000_000_000_000)
        #expect(Google_Protobuf_Timestamp(date: Date(storedMicros: Int64.min)).seconds < -9_000_000_000_000)
    }

    @Test("integer fields at their extremes are refused naming the field or capped, never trapped on")
    func integerExtremes() async throws {
        let harness = try await Harness()
        // Page sizes: Int32.max is capped, Int32.min refused.
        _ = try await harness.createOrganization("Org")
        #expect(try await harness.listOrganizations { $0.pageSize = Int32.max }.organizations.count == 1)
        let negative = await rpcError { _ = try await harness.listOrganizations { $0.pageSize = Int32.min } }
        #expect(negative?.fieldViolations.first?.field == "page_size")
        // Token lifetime.
        let account = try await harness.serviceToken(role: .none)
        for seconds: Int64 in [Int64.max, Int64.min, -1, 10 * 365 * 86_400 + 1] {
            var token = Orgd_V1_CreateTokenRequest()
            token.serviceAccountID = account.account.id
            token.expiresInSeconds = seconds
            let error = await rpcError { _ = try await harness.client().tokens.createToken(token) }
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "expires_in_seconds", "\(seconds)")
        }
        // Invitation lifetime.
        let organization = try await harness.createOrganization("Inviting")
        for days in [Int32.max, Int32.min, 31, -1] {
            var invite = Orgd_V1_InviteMemberRequest()
            invite.organizationID = organization.id
            invite.email = "\(UUID().uuidString.prefix(8))@example.org"
            invite.givenName = "Ann"
            invite.familyName = "Lee"
            invite.title = "Dr"
            invite.role = "agent"
            invite.expiresInDays = days
            let error = await rpcError { _ = try await harness.client().invitations.inviteMember(invite) }
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "expires_in_days", "\(days)")
        }
    }

    // MARK: Scope references

    @Test("a ScopeRef whose id and code name different scopes is refused naming `scope`, in every method that takes one")
    func contradictoryScopeReference() async throws {
        let harness = try await Harness()
        let (organization, pressure) = try await consentRequestWorld(harness)
        var glucoseRequest = Orgd_V1_CreateScopeRequest()
        glucoseRequest.codingSystem = pressure.codingSystem
        glucoseRequest.codingCode = "omh:blood-glucose:4.0"
        let glucose = try await harness.client().consents.createScope(glucoseRequest)
        var contradiction = Orgd_V1_ScopeRef()
        contradiction.id = pressure.id
        contradiction.codingSystem = glucose.codingSystem
        contradiction.codingCode = glucose.codingCode
        var unknownCode = contradiction
        unknownCode.codingCode = "omh:no-such-scope"
        var agreeing = contradiction
        agreeing.codingCode = pressure.codingCode
        let agent = try await harness.createUser()
        let patient = try await harness.createPatient()

        func check(_ reference: Orgd_V1_ScopeRef) async throws -> Orgd_V1_CheckAccessResponse {
            var request = Orgd_V1_CheckAccessRequest()
            request.agentUserID = agent.id
            request.patientID = patient.id
            request.scope = reference
            return try await harness.client().consents.checkAccess(request)
        }
        for reference in [contradiction, unknownCode] {
            let error = await rpcError { _ = try await check(reference) }
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "scope", "\(String(describing: error))")
        }
        // Agreeing halves, or either half alone, are answered as before.
        #expect(try await check(agreeing).reason == .notAnAgent)
        #expect(try await check(ConsentServiceRef.code(glucose)).reason == .notAnAgent)

        var batch = Orgd_V1_BatchCheckAccessRequest()
        var good = Orgd_V1_CheckAccessRequest()
        good.agentUserID = agent.id
        good.patientID = patient.id
        good.scope = agreeing
        var bad = good
        bad.scope = contradiction
        batch.checks = [good, bad]
        let batchError = await rpcError { _ = try await harness.client().consents.batchCheckAccess(batch) }
        #expect(batchError?.code == .invalidArgument && batchError?.fieldViolations.first?.field == "checks[1].scope")

        var accessible = Orgd_V1_ListAccessiblePatientsRequest()
        accessible.agentUserID = agent.id
        accessible.scope = contradiction
        let listError = await rpcError { _ = try await harness.client().consents.listAccessiblePatients(accessible) }
        #expect(listError?.code == .invalidArgument && listError?.fieldViolations.first?.field == "scope")

        var create = Orgd_V1_CreateConsentRequestRequest()
        create.organizationID = organization
        create.kind = .study
        create.name = "Study"
        create.scopes = [agreeing, contradiction]
        let createError = await rpcError { _ = try await harness.client().consents.createConsentRequest(create) }
        #expect(createError?.code == .invalidArgument && createError?.fieldViolations.first?.field == "scopes[1]")

        create.scopes = [agreeing]
        let created = try await harness.client().consents.createConsentRequest(create)
        var update = Orgd_V1_UpdateConsentRequestRequest()
        update.id = created.id
        update.version = created.version
        update.addScopes = [contradiction]
        let updateError = await rpcError { _ = try await harness.client().consents.updateConsentRequest(update) }
        #expect(updateError?.code == .invalidArgument && updateError?.fieldViolations.first?.field == "add_scopes[0]")

        // Half a code is refused too, rather than ignored in favour of the id.
        var half = Orgd_V1_ScopeRef()
        half.id = pressure.id
        half.codingSystem = pressure.codingSystem
        let halfError = await rpcError { _ = try await check(half) }
        #expect(halfError?.code == .invalidArgument && halfError?.fieldViolations.first?.field == "scope.coding_code")
    }

    // MARK: Page tokens

    /// The token format before page tokens were authenticated: base64url of
    /// "<position>.<FNV-1a of the scope, base 36>".
    static func oldStyleToken(position: Int64, scope: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in scope.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Data("\(position).\(String(hash, radix: 36))".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    @Test("page tokens are authenticated: forged, foreign-key, truncated or altered tokens are refused asking to list again; real ones page")
    func pageTokensAuthenticated() async throws {
        let harness = try await Harness()
        for index in 0..<5 { _ = try await harness.createOrganization("Org \(index)") }
        // A real token still pages through everything, in order.
        #expect(try await harness.allOrganizationNames(pageSize: 2) == (0..<5).map { "Org \($0)" })

        let scope = "organizations|||"
        let first = try await harness.listOrganizations { $0.pageSize = 2 }
        let real = first.nextPageToken
        let key = harness.store.pageTokenKey
        #expect(try PageToken.decode(real, scope: scope, key: key) != nil)

        var altered = Array(real.utf8)
        altered[3] = altered[3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let otherKey = [UInt8](repeating: 7, count: 32)
        let candidates: [(String, String)] = [
            ("forged the old way", Self.oldStyleToken(position: 3, scope: scope)),
            ("forged the old way at position 0", Self.oldStyleToken(position: 0, scope: scope)),
            ("signed with another key", PageToken.encode(after: 3, scope: scope, key: otherKey)),
            ("truncated", String(real.dropLast())),
            ("truncated to half", String(real.prefix(real.count / 2))),
            ("one character changed", String(decoding: altered, as: UTF8.self)),
            ("extended", real + "A"),
            ("for other filters", PageToken.encode(after: 3, scope: "organizations||true|", key: key)),
        ]
        for (what, token) in candidates {
            let error = await rpcError { _ = try await harness.listOrganizations { $0.pageSize = 2; $0.pageToken = token } }
            #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "page_token", "\(what)")
            #expect(error?.message.contains("list again from the first page") == true, "\(what): \(String(describing: error))")
        }
        // The same position and scope under the database's key is accepted.
        #expect(try PageToken.decode(PageToken.encode(after: 3, scope: scope, key: key), scope: scope, key: key) == 3)
        #expect(try PageToken.decode(PageToken.encode(after: 3, scope: scope, key: otherKey), scope: scope, key: otherKey) == 3)
    }
}

/// ScopeRef shorthands.
enum ConsentServiceRef {
    static func code(_ scope: Orgd_V1_Scope) -> Orgd_V1_ScopeRef {
        var reference = Orgd_V1_ScopeRef()
        reference.codingSystem = scope.codingSystem
        reference.codingCode = scope.codingCode
        return reference
    }
}
