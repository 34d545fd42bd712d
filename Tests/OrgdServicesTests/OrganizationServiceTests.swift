import Foundation
import OrgdCore
import OrgdProto
import Testing

@Suite("OrganizationService rules")
struct OrganizationServiceTests {
    @Test("create stores the name as sent (a name with edge whitespace is refused, not trimmed), starts at version 1, active, stamped with the clock")
    func create() async throws {
        let harness = try await Harness()
        let untrimmed = await rpcError { _ = try await harness.createOrganization("  Ward 7 Team \n", type: .hospitalTeam) }
        #expect(untrimmed?.code == .invalidArgument && untrimmed?.fieldViolations.first?.field == "name")
        let organization = try await harness.createOrganization("Ward 7 Team", type: .hospitalTeam, identifier: ("https://ods", "A81001"))
        #expect(organization.name == "Ward 7 Team")
        #expect(organization.type == .hospitalTeam)
        #expect(organization.identifier.system == "https://ods" && organization.identifier.value == "A81001")
        #expect(organization.active)
        #expect(organization.version == 1)
        #expect(organization.createTime.date == harness.clock)
        #expect(UUID(uuidString: organization.id) != nil)
        let read = try await harness.getOrganization(organization.id)
        #expect(read.organization == organization)
        #expect(read.staffCount == 0 && read.patientCount == 0)
    }

    static let invalidCreates: [(String, @Sendable (inout Orgd_V1_CreateOrganizationRequest) -> Void)] = [
        ("name", { $0.name = "" }),
        ("name", { $0.name = "   \t " }),
        ("name", { $0.name = String(repeating: "é", count: 201) }),
        ("name", { $0.name = "Ward\u{0007}7" }),
        ("type", { $0.type = .unspecified }),
        ("type", { $0.type = .UNRECOGNIZED(42) }),
        ("identifier.system", { $0.identifier.value = "A81001" }),
        ("identifier.value", { $0.identifier.system = "https://ods" }),
    ]

    @Test("invalid creates are refused with the field named, and nothing is written", arguments: invalidCreates.indices)
    func invalidCreate(index: Int) async throws {
        let harness = try await Harness()
        let (field, mutate) = Self.invalidCreates[index]
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = "Valid"
        request.type = .department
        mutate(&request)
        let error = await rpcError {
            _ = try await harness.client().organizations.createOrganization(request)
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.fieldViolations.first?.field == field)
        #expect(error?.message.hasPrefix(field) == true)
        #expect(try await harness.listOrganizations().organizations.isEmpty)
    }

    @Test("a name of exactly 200 characters is accepted")
    func nameAtLimit() async throws {
        let harness = try await Harness()
        let name = String(repeating: "é", count: 200)
        #expect(try await harness.createOrganization(name).name == name)
    }

    @Test("an identifier is unique per system")
    func identifierUnique() async throws {
        let harness = try await Harness()
        let first = try await harness.createOrganization("First", identifier: ("https://ods", "A1"))
        let error = await rpcError { _ = try await harness.createOrganization("Second", identifier: ("https://ods", "A1")) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message.contains(first.id) == true)
        _ = try await harness.createOrganization("Other system", identifier: ("https://other", "A1"))
        #expect(try await harness.listOrganizations().organizations.count == 2)
    }

    @Test("get: unknown id is NOT_FOUND, a malformed one INVALID_ARGUMENT naming id")
    func getErrors() async throws {
        let harness = try await Harness()
        #expect(await rpcError { _ = try await harness.getOrganization(UUID().uuidString) }?.code == .notFound)
        let malformed = await rpcError { _ = try await harness.getOrganization("42") }
        #expect(malformed?.code == .invalidArgument && malformed?.fieldViolations.first?.field == "id")
    }

    func update(_ harness: Harness, _ configure: (inout Orgd_V1_UpdateOrganizationRequest) -> Void) async throws -> Orgd_V1_Organization {
        var request = Orgd_V1_UpdateOrganizationRequest()
        configure(&request)
        return try await harness.client().organizations.updateOrganization(request)
    }

    @Test("update changes only the named fields and bumps the version")
    func updateNamedFields() async throws {
        let harness = try await Harness()
        let created = try await harness.createOrganization("Old", type: .gpPractice, identifier: ("https://ods", "B2"))
        harness.advance(by: 60)
        let updated = try await update(harness) {
            $0.id = created.id
            $0.version = 1
            $0.name = "New"
        }
        #expect(updated.name == "New")
        #expect(updated.type == .gpPractice)
        #expect(updated.identifier == created.identifier)
        #expect(updated.version == 2)
        #expect(updated.updateTime.date == harness.clock)
        #expect(updated.createTime == created.createTime)
        let retyped = try await update(harness) {
            $0.id = created.id
            $0.version = 2
            $0.type = .privateClinic
            $0.removeIdentifier = true
        }
        #expect(retyped.name == "New" && retyped.type == .privateClinic && !retyped.hasIdentifier && retyped.version == 3)
    }

    @Test("a stale version is ABORTED and changes nothing")
    func staleVersion() async throws {
        let harness = try await Harness()
        let created = try await harness.createOrganization("Original")
        _ = try await update(harness) { $0.id = created.id; $0.version = 1; $0.name = "First writer" }
        let error = await rpcError {
            _ = try await update(harness) { $0.id = created.id; $0.version = 1; $0.name = "Second writer" }
        }
        #expect(error?.code == .aborted)
        let stored = try await harness.getOrganization(created.id).organization
        #expect(stored.name == "First writer" && stored.version == 2)
    }

    @Test("update refuses: no version, no field, set-and-remove identifier, a taken identifier")
    func updateRefusals() async throws {
        let harness = try await Harness()
        let created = try await harness.createOrganization("A", identifier: ("s", "1"))
        _ = try await harness.createOrganization("B", identifier: ("s", "2"))
        let noVersion = await rpcError { _ = try await update(harness) { $0.id = created.id; $0.name = "X" } }
        #expect(noVersion?.code == .invalidArgument && noVersion?.fieldViolations.first?.field == "version")
        let noField = await rpcError { _ = try await update(harness) { $0.id = created.id; $0.version = 1 } }
        #expect(noField?.code == .invalidArgument)
        let both = await rpcError {
            _ = try await update(harness) {
                $0.id = created.id; $0.version = 1; $0.identifier.system = "s"; $0.identifier.value = "3"; $0.removeIdentifier = true
            }
        }
        #expect(both?.code == .invalidArgument)
        let taken = await rpcError {
            _ = try await update(harness) { $0.id = created.id; $0.version = 1; $0.identifier.system = "s"; $0.identifier.value = "2" }
        }
        #expect(taken?.code == .alreadyExists)
        #expect(try await harness.getOrganization(created.id).organization.version == 1)
    }

    @Test("list filters by type, active and a literal, case-insensitive name prefix")
    func listFilters() async throws {
        let harness = try await Harness()
        _ = try await harness.createOrganization("St Mary's GP", type: .gpPractice)
        _ = try await harness.createOrganization("st john's team", type: .hospitalTeam)
        _ = try await harness.createOrganization("100% Clinic", type: .privateClinic)
        let closed = try await harness.createOrganization("1000 Clinic", type: .privateClinic)
        var deactivate = Orgd_V1_DeactivateOrganizationRequest()
        deactivate.id = closed.id
        _ = try await harness.client().organizations.deactivateOrganization(deactivate)

        #expect(try await harness.allOrganizationNames(pageSize: 10) { $0.namePrefix = "ST " } == ["St Mary's GP", "st john's team"])
        #expect(try await harness.allOrganizationNames(pageSize: 10) { $0.namePrefix = "100%" } == ["100% Clinic"])
        #expect(try await harness.allOrganizationNames(pageSize: 10) { $0.type = .privateClinic } == ["100% Clinic", "1000 Clinic"])
        #expect(try await harness.allOrganizationNames(pageSize: 10) { $0.active = false } == ["1000 Clinic"])
        #expect(try await harness.allOrganizationNames(pageSize: 10) { $0.active = true; $0.type = .privateClinic } == ["100% Clinic"])
    }

    @Test("paging never skips or repeats, even with inserts between pages")
    func pagingUnderInserts() async throws {
        let harness = try await Harness()
        for index in 0..<7 { _ = try await harness.createOrganization("Org \(index)") }
        var seen: [String] = []
        var token = ""
        var inserted = 0
        repeat {
            let page = try await harness.listOrganizations { $0.pageSize = 3; $0.pageToken = token }
            #expect(page.organizations.count <= 3)
            seen += page.organizations.map(\.name)
            token = page.nextPageToken
            if inserted < 2 {
                _ = try await harness.createOrganization("Late \(inserted)")
                inserted += 1
            }
        } while !token.isEmpty
        #expect(seen == (0..<7).map { "Org \($0)" } + ["Late 0", "Late 1"])
    }

    @Test("a page token is refused for other filters, when garbled, and page sizes are checked")
    func pageTokenChecks() async throws {
        let harness = try await Harness()
        for index in 0..<3 { _ = try await harness.createOrganization("Org \(index)") }
        let first = try await harness.listOrganizations { $0.pageSize = 1; $0.type = .gpPractice }
        #expect(!first.nextPageToken.isEmpty)
        let otherFilter = await rpcError { _ = try await harness.listOrganizations { $0.pageSize = 1; $0.pageToken = first.nextPageToken } }
        #expect(otherFilter?.code == .invalidArgument && otherFilter?.fieldViolations.first?.field == "page_token")
        let garbled = await rpcError { _ = try await harness.listOrganizations { $0.pageToken = "not-a-token!" } }
        #expect(garbled?.code == .invalidArgument && garbled?.fieldViolations.first?.field == "page_token")
        let negative = await rpcError { _ = try await harness.listOrganizations { $0.pageSize = -1 } }
        #expect(negative?.code == .invalidArgument && negative?.fieldViolations.first?.field == "page_size")
        #expect(try await harness.listOrganizations { $0.pageSize = 100_000 }.organizations.count == 3)
    }

    @Test("deactivate and reactivate flip active, bump the version once, and respect a given version")
    func deactivateReactivate() async throws {
        let harness = try await Harness()
        let created = try await harness.createOrganization("Clinic")
        var deactivate = Orgd_V1_DeactivateOrganizationRequest()
        deactivate.id = created.id
        let off = try await harness.client().organizations.deactivateOrganization(deactivate)
        #expect(!off.active && off.version == 2)
        let again = try await harness.client().organizations.deactivateOrganization(deactivate)
        #expect(!again.active && again.version == 2)
        var reactivate = Orgd_V1_ReactivateOrganizationRequest()
        reactivate.id = created.id
        reactivate.version = 1
        let stale = await rpcError {
            _ = try await harness.client().organizations.reactivateOrganization(reactivate)
        }
        #expect(stale?.code == .aborted)
        reactivate.version = 2
        let on = try await harness.client().organizations.reactivateOrganization(reactivate)
        #expect(on.active && on.version == 3)
    }

    @Test("the same idempotency key returns the first result; another request with it is refused")
    func idempotency() async throws {
        let harness = try await Harness()
        let key = ["idempotency-key": "create-ward-7"]
        let first = try await harness.createOrganization("Ward 7", metadata: key)
        harness.advance(by: 5)
        let repeated = try await harness.createOrganization("Ward 7", metadata: key)
        #expect(repeated == first)
        #expect(try await harness.listOrganizations().organizations.count == 1)
        let reused = await rpcError { _ = try await harness.createOrganization("Ward 8", metadata: key) }
        #expect(reused?.code == .invalidArgument && reused?.fieldViolations.first?.field == "idempotency-key")
        // Keys belong to the caller: another principal's identical key is its own.
        let admin = try await harness.serviceToken(role: .admin)
        let other = try await harness.createOrganization("Ward 7", as: .token(admin.secret), metadata: key)
        #expect(other.id != first.id)
        #expect(try await harness.listOrganizations().organizations.count == 2)
    }
}
