import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

@Suite("OrganizationService end to end")
struct OrganizationEndToEndTests {
    /// Runs every OrganizationService method through `client`.
    static func exerciseEveryMethod(_ client: OrgdClient) async throws {
        var create = Orgd_V1_CreateOrganizationRequest()
        create.name = "Riverside GP \(UUID().uuidString.prefix(8))"
        create.type = .gpPractice
        create.identifier.system = "https://fhir.nhs.uk/Id/ods-organization-code"
        create.identifier.value = UUID().uuidString
        let created = try await client.organizations.createOrganization(create)
        #expect(created.name == create.name && created.version == 1 && created.active)

        var get = Orgd_V1_GetOrganizationRequest()
        get.id = created.id
        let read = try await client.organizations.getOrganization(get)
        #expect(read.organization == created)
        #expect(read.staffCount == 0 && read.patientCount == 0 && read.staff.isEmpty && read.patients.isEmpty)

        var update = Orgd_V1_UpdateOrganizationRequest()
        update.id = created.id
        update.version = created.version
        update.name = create.name + " (renamed)"
        let updated = try await client.organizations.updateOrganization(update)
        #expect(updated.name == update.name && updated.version == 2 && updated.type == .gpPractice)

        let stale = await rpcError { _ = try await client.organizations.updateOrganization(update) }
        #expect(stale?.code == .aborted)

        var list = Orgd_V1_ListOrganizationsRequest()
        list.namePrefix = String(create.name.prefix(20))
        let listed = try await client.organizations.listOrganizations(list)
        #expect(listed.organizations.map(\.id) == [created.id])

        var deactivate = Orgd_V1_DeactivateOrganizationRequest()
        deactivate.id = created.id
        let inactive = try await client.organizations.deactivateOrganization(deactivate)
        #expect(!inactive.active && inactive.version == 3)

        var reactivate = Orgd_V1_ReactivateOrganizationRequest()
        reactivate.id = created.id
        reactivate.version = 3
        let active = try await client.organizations.reactivateOrganization(reactivate)
        #expect(active.active && active.version == 4)

        var missing = Orgd_V1_GetOrganizationRequest()
        missing.id = UUID().uuidString
        let notFound = await rpcError { _ = try await client.organizations.getOrganization(missing) }
        #expect(notFound?.code == .notFound)
    }

    @Test("every method over the Unix socket (local operator)")
    func everyMethodOverUnix() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            try await Self.exerciseEveryMethod(client)
            await client.close()
        }
    }

    @Test("every method over TCP with an admin token")
    func everyMethodOverTCP() async throws {
        try await withDaemon { daemon in
            let admin = try await daemon.serviceToken(role: .admin)
            let client = try await daemon.client(daemon.tcp, token: admin.secret)
            try await Self.exerciseEveryMethod(client)
            await client.close()
        }
    }

    @Test("validation errors arrive typed, with the field named")
    func typedErrors() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            var create = Orgd_V1_CreateOrganizationRequest()
            create.type = .department
            let error = await rpcError { _ = try await client.organizations.createOrganization(create) }
            #expect(error?.code == .invalidArgument)
            #expect(error?.fieldViolations == [RPCError.FieldViolation(field: "name", description: "required")])
            await client.close()
        }
    }

    @Test("a create retried with its idempotency key creates once")
    func idempotentRetry() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            var create = Orgd_V1_CreateOrganizationRequest()
            create.name = "Retry Clinic"
            create.type = .privateClinic
            let options = CallOptions(idempotencyKey: "retry-1")
            let first = try await client.organizations.createOrganization(create, options: options)
            let second = try await client.organizations.createOrganization(create, options: options)
            #expect(first == second)
            #expect(try await client.organizations.listOrganizations(.init()).organizations.count == 1)
            await client.close()
        }
    }

    @Test("100 concurrent calls on one connection each get their own answer")
    func hundredConcurrentCalls() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let names = try await withThrowingTaskGroup(of: (String, Orgd_V1_Organization).self) { group in
                for index in 0..<100 {
                    group.addTask {
                        var create = Orgd_V1_CreateOrganizationRequest()
                        create.name = "Concurrent \(index)"
                        create.type = .department
                        return (create.name, try await client.organizations.createOrganization(create))
                    }
                }
                var pairs: [(String, Orgd_V1_Organization)] = []
                for try await pair in group { pairs.append(pair) }
                return pairs
            }
            #expect(names.count == 100)
            for (asked, got) in names { #expect(asked == got.name) }
            #expect(Set(names.map(\.1.id)).count == 100)
            // And 100 concurrent reads of what was written, mixed with failures.
            let unexpected = try await withThrowingTaskGroup(of: String?.self) { group in
                for (index, pair) in names.enumerated() {
                    group.addTask {
                        var get = Orgd_V1_GetOrganizationRequest()
                        get.id = index % 10 == 0 ? UUID().uuidString : pair.1.id
                        do {
                            let name = try await client.organizations.getOrganization(get).organization.name
                            return name == pair.0 && index % 10 != 0 ? nil : "call \(index): got \(name)"
                        } catch let error as RPCError {
                            return index % 10 == 0 && error.code == .notFound ? nil : "call \(index): \(error)"
                        }
                    }
                }
                return try await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            #expect(unexpected.isEmpty, "\(unexpected)")
            await client.close()
        }
    }

    @Test("a call whose deadline has passed is DEADLINE_EXCEEDED; a generous one succeeds")
    func deadlines() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            let ok = try await client.health.check(options: CallOptions(timeout: .seconds(120)))
            #expect(ok.status == .serving)
            var request = Ttrpc_Request()
            request.service = "grpc.health.v1.Health"
            request.method = "Check"
            request.timeoutNano = -1
            let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
            try await socket.sendFrame(streamID: 1, body: try request.serializedBytes())
            let (streamID, response) = try await socket.receiveResponse()
            #expect(streamID == 1 && response.status.code == StatusCode.deadlineExceeded.rawValue)
            await client.close()
        }
    }
}

func rpcError(_ body: () async throws -> Void) async -> RPCError? {
    do {
        try await body()
        return nil
    } catch let error as RPCError {
        return error
    } catch {
        return RPCError(.unknown, "\(error)")
    }
}
