import Foundation
import Logging
import NIOConcurrencyHelpers
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdStore
import OrgdTestSupport

/// A dispatcher over a real SQLite file in a temporary directory — or, with
/// ORGD_TEST_BACKEND=postgres, a fresh database on the test cluster — with a
/// clock the test moves by hand. No sockets: this tier tests the rules, and
/// with them every store operation, on either backend.
final class Harness: Sendable {
    enum Caller: Sendable {
        /// The Unix socket without a token: the local operator.
        case local
        /// The local operator sending `orgd-act-as` (which it may not use).
        case localActing(for: String)
        /// TCP with no token.
        case anonymous
        /// TCP with this bearer token, optionally acting for a user.
        case token(String, actAs: String? = nil)
    }

    let directory: URL
    let store: Store
    let dispatcher: Dispatcher
    private let now: NIOLockedValueBox<Date>

    /// Every SQL statement the store ran, when `recordSQL` was set.
    let statements = NIOLockedValueBox<[String]>([])

    /// Drops the harness's own PostgreSQL database, when it made one.
    private let dropDatabase: (@Sendable () async -> Void)?

    /// `recordSQL` keeps SQLite's statement trace, so it always runs on SQLite.
    init(recordSQL: Bool = false) async throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-services-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let now = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
        self.now = now
        let statements = self.statements
        let record: @Sendable (String) -> Void = { sql in statements.withLockedValue { $0.append(sql) } }
        let clock: @Sendable () -> Date = { now.withLockedValue { $0 } }
        if TestDatabase.backend == .postgres && !recordSQL {
            let database = try await TestDatabase.freshPostgres()
            dropDatabase = database.drop
            store = try await Store(postgres: try PostgresLocation(url: database.url), poolSize: 4, clock: clock)
        } else {
            dropDatabase = nil
            store = try Store(path: directory.appendingPathComponent("orgd.sqlite").path, clock: clock, sqlTrace: recordSQL ? record : nil)
        }
        dispatcher = Dispatcher(store: store, logger: Logger(label: "test"))
    }

    deinit {
        try? store.close()
        if let dropDatabase { Task { await dropDatabase() } }
        try? FileManager.default.removeItem(at: directory)
    }

    var clock: Date { now.withLockedValue { $0 } }

    func advance(by seconds: TimeInterval) {
        now.withLockedValue { $0.addTimeInterval(seconds) }
    }

    /// The typed client, its calls going straight to the dispatcher as
    /// `caller` would make them (the same metadata a real connection sends).
    func client(as caller: Caller = .local) -> OrgdClient {
        switch caller {
        case .local:
            OrgdClient(transport: InProcessTransport(dispatcher: dispatcher, connection: Self.connection(.unix)))
        case .localActing(let userID):
            OrgdClient(transport: InProcessTransport(dispatcher: dispatcher, connection: Self.connection(.unix)), actAs: userID)
        case .anonymous:
            OrgdClient(transport: InProcessTransport(dispatcher: dispatcher, connection: Self.connection(.tcp)))
        case .token(let secret, let actAs):
            OrgdClient(transport: InProcessTransport(dispatcher: dispatcher, connection: Self.connection(.tcp)), token: secret, actAs: actAs)
        }
    }

    /// The status a call by `caller` ends with: `.ok`, or its error's code.
    func code<Answer>(as caller: Caller = .local, _ body: (OrgdClient) async throws -> Answer) async -> StatusCode {
        await rpcError { _ = try await body(client(as: caller)) }?.code ?? .ok
    }

    /// Sends `payload` as is to `service/method`, by name: for the tests of
    /// what no typed call can send (bytes that do not decode, methods that
    /// do not exist). Returns the outcome whatever its status.
    func raw(
        _ service: String, _ method: String, payload: [UInt8], as caller: Caller = .local, metadata: [String: String] = [:]
    ) async throws -> CallOutcome {
        var entries = metadata
        let transport: Transport
        switch caller {
        case .local:
            transport = .unix
        case .localActing(let userID):
            transport = .unix
            entries["orgd-act-as"] = userID
        case .anonymous:
            transport = .tcp
        case .token(let secret, let actAs):
            transport = .tcp
            entries["authorization"] = "Bearer \(secret)"
            if let actAs { entries["orgd-act-as"] = actAs }
        }
        return await InProcessTransport.dispatch(
            dispatcher, service: service, method: method, metadata: entries.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
            payload: payload, connection: Self.connection(transport))
    }

    private static func connection(_ transport: Transport) -> ConnectionInfo {
        ConnectionInfo(transport: transport, peer: "test", connectionID: 1)
    }

    /// A bearer token for a new service account with `role`.
    func serviceToken(role: SystemRole, mayActAs: Bool = false, mailer: Bool = false, name: String = UUID().uuidString) async throws -> (account: ServiceAccountRecord, secret: String) {
        try await store.write { tx in
            let account = try tx.createServiceAccount(name: name, systemRole: role, mayActAs: mayActAs, mailer: mailer)
            return (account, try tx.createToken(owner: .serviceAccount(id: account.id), description: "test", expireTime: nil).secret)
        }
    }

    /// A new user with `role`, and a token for them.
    func userToken(role: SystemRole, status: UserStatus = .active) async throws -> (user: UserRecord, secret: String) {
        try await store.write { tx in
            let user = try tx.createUser(NewUser(
                email: "\(UUID().uuidString)@example.org", title: "Dr", givenName: "Test", familyName: "User",
                systemRole: role, status: status
            ))
            return (user, try tx.createToken(owner: .user(id: user.id), description: "test", expireTime: nil).secret)
        }
    }
}

/// Metadata for `CallOptions`, from a test's dictionary.
func options(_ metadata: [String: String]) -> CallOptions {
    CallOptions(metadata: metadata.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
}

/// Shorthands for OrganizationService calls.
extension Harness {
    func createOrganization(
        _ name: String, type: Orgd_V1_OrganizationType = .gpPractice, identifier: (String, String)? = nil,
        as caller: Caller = .local, metadata: [String: String] = [:]
    ) async throws -> Orgd_V1_Organization {
        var request = Orgd_V1_CreateOrganizationRequest()
        request.name = name
        request.type = type
        if let (system, value) = identifier {
            request.identifier.system = system
            request.identifier.value = value
        }
        return try await client(as: caller).organizations.createOrganization(request, options: options(metadata))
    }

    func getOrganization(_ id: String, as caller: Caller = .local) async throws -> Orgd_V1_GetOrganizationResponse {
        var request = Orgd_V1_GetOrganizationRequest()
        request.id = id
        return try await client(as: caller).organizations.getOrganization(request)
    }

    func listOrganizations(_ configure: (inout Orgd_V1_ListOrganizationsRequest) -> Void = { _ in }) async throws -> Orgd_V1_ListOrganizationsResponse {
        var request = Orgd_V1_ListOrganizationsRequest()
        configure(&request)
        return try await client().organizations.listOrganizations(request)
    }

    /// Every organisation name, following page tokens.
    func allOrganizationNames(pageSize: Int32, _ configure: (inout Orgd_V1_ListOrganizationsRequest) -> Void = { _ in }) async throws -> [String] {
        var names: [String] = []
        var token = ""
        repeat {
            let page = try await listOrganizations {
                configure(&$0)
                $0.pageSize = pageSize
                $0.pageToken = token
            }
            names += page.organizations.map(\.name)
            token = page.nextPageToken
        } while !token.isEmpty
        return names
    }
}

/// The error a call threw, or nil when it succeeded.
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

/// Shorthands for MembershipService calls.
extension Harness {
    func createUser(
        _ email: String = "\(UUID().uuidString.prefix(8))@example.org", role: Orgd_V1_SystemRole = .none,
        status: Orgd_V1_UserStatus = .active, as caller: Caller = .local
    ) async throws -> Orgd_V1_User {
        var request = Orgd_V1_CreateUserRequest()
        request.email = email
        request.givenName = "Given"
        request.familyName = "Family"
        request.systemRole = role
        request.status = status
        return try await client(as: caller).memberships.createUser(request)
    }

    func createPatient(userID: String = "", familyName: String = "Patient") async throws -> Orgd_V1_Patient {
        var request = Orgd_V1_CreatePatientRequest()
        request.givenName = "Pat"
        request.familyName = familyName
        request.userID = userID
        return try await client().memberships.createPatient(request)
    }

    func addStaff(
        _ organizationID: String, _ userID: String, roles: [Orgd_V1_StaffRole] = [.agent], primary: Bool = false,
        as caller: Caller = .local, metadata: [String: String] = [:]
    ) async throws -> Orgd_V1_StaffMembership {
        var request = Orgd_V1_AddStaffMemberRequest()
        request.organizationID = organizationID
        request.userID = userID
        request.roles = roles
        request.isPrimary = primary
        return try await client(as: caller).memberships.addStaffMember(request, options: options(metadata))
    }

    func addPatient(_ organizationID: String, _ patientID: String, primary: Bool = false) async throws -> Orgd_V1_PatientMembership {
        var request = Orgd_V1_AddPatientMemberRequest()
        request.organizationID = organizationID
        request.patientID = patientID
        request.isPrimary = primary
        return try await client().memberships.addPatientMember(request)
    }

    func listStaff(_ organizationID: String, pageSize: Int32 = 0, token: String = "", as caller: Caller = .local) async throws -> Orgd_V1_ListStaffMembersResponse {
        var request = Orgd_V1_ListStaffMembersRequest()
        request.organizationID = organizationID
        request.pageSize = pageSize
        request.pageToken = token
        return try await client(as: caller).memberships.listStaffMembers(request)
    }

    /// A token for an existing user.
    func token(for userID: String) async throws -> String {
        try await store.write { tx in try tx.createToken(owner: .user(id: userID), description: "test", expireTime: nil).secret }
    }
}
