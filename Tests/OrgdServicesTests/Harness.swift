import Foundation
import Logging
import NIOConcurrencyHelpers
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdStore
import SwiftProtobuf

/// A dispatcher over a real SQLite file in a temporary directory, with a
/// clock the test moves by hand. No sockets: this tier tests the rules.
final class Harness: Sendable {
    enum Caller: Sendable {
        /// The Unix socket without a token: the local operator.
        case local
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

    init(recordSQL: Bool = false) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-services-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let now = NIOLockedValueBox(Date(timeIntervalSince1970: 1_800_000_000))
        self.now = now
        let statements = self.statements
        let record: @Sendable (String) -> Void = { sql in statements.withLockedValue { $0.append(sql) } }
        let clock: @Sendable () -> Date = { now.withLockedValue { $0 } }
        store = try Store(path: directory.appendingPathComponent("orgd.sqlite").path, clock: clock, sqlTrace: recordSQL ? record : nil)
        dispatcher = Dispatcher(store: store, logger: Logger(label: "test"))
    }

    deinit {
        try? store.close()
        try? FileManager.default.removeItem(at: directory)
    }

    var clock: Date { now.withLockedValue { $0 } }

    func advance(by seconds: TimeInterval) {
        now.withLockedValue { $0.addTimeInterval(seconds) }
    }

    /// Calls `service/method`; a non-OK status is thrown as `RPCError`.
    func call<Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, _ request: some SwiftProtobuf.Message,
        as caller: Caller = .local, metadata: [String: String] = [:]
    ) async throws -> Response {
        let outcome = try await raw(service, method, payload: request.serializedBytes(), as: caller, metadata: metadata)
        guard outcome.code == .ok else { throw RPCError(status: outcome.status) }
        return try Response(serializedBytes: outcome.payload)
    }

    func raw(
        _ service: String, _ method: String, payload: [UInt8], as caller: Caller = .local, metadata: [String: String] = [:]
    ) async throws -> CallOutcome {
        var request = Ttrpc_Request()
        request.service = service
        request.method = method
        request.payload = Data(payload)
        var entries = metadata
        let transport: Transport
        switch caller {
        case .local:
            transport = .unix
        case .anonymous:
            transport = .tcp
        case .token(let secret, let actAs):
            transport = .tcp
            entries["authorization"] = "Bearer \(secret)"
            if let actAs { entries["orgd-act-as"] = actAs }
        }
        request.metadata = entries.sorted { $0.key < $1.key }.map {
            var entry = Ttrpc_KeyValue()
            entry.key = $0.key
            entry.value = $0.value
            return entry
        }
        return await dispatcher.dispatch(request, connection: ConnectionInfo(transport: transport, peer: "test", connectionID: 1))
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

/// Shorthands for OrganizationService calls.
extension Harness {
    static let organizations = "orgd.v1.OrganizationService"

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
        return try await call(Self.organizations, "CreateOrganization", request, as: caller, metadata: metadata)
    }

    func getOrganization(_ id: String, as caller: Caller = .local) async throws -> Orgd_V1_GetOrganizationResponse {
        var request = Orgd_V1_GetOrganizationRequest()
        request.id = id
        return try await call(Self.organizations, "GetOrganization", request, as: caller)
    }

    func listOrganizations(_ configure: (inout Orgd_V1_ListOrganizationsRequest) -> Void = { _ in }) async throws -> Orgd_V1_ListOrganizationsResponse {
        var request = Orgd_V1_ListOrganizationsRequest()
        configure(&request)
        return try await call(Self.organizations, "ListOrganizations", request)
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
    static let memberships = "orgd.v1.MembershipService"

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
        return try await call(Self.memberships, "CreateUser", request, as: caller)
    }

    func createPatient(userID: String = "", familyName: String = "Patient") async throws -> Orgd_V1_Patient {
        var request = Orgd_V1_CreatePatientRequest()
        request.givenName = "Pat"
        request.familyName = familyName
        request.userID = userID
        return try await call(Self.memberships, "CreatePatient", request)
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
        return try await call(Self.memberships, "AddStaffMember", request, as: caller, metadata: metadata)
    }

    func addPatient(_ organizationID: String, _ patientID: String, primary: Bool = false) async throws -> Orgd_V1_PatientMembership {
        var request = Orgd_V1_AddPatientMemberRequest()
        request.organizationID = organizationID
        request.patientID = patientID
        request.isPrimary = primary
        return try await call(Self.memberships, "AddPatientMember", request)
    }

    func listStaff(_ organizationID: String, pageSize: Int32 = 0, token: String = "", as caller: Caller = .local) async throws -> Orgd_V1_ListStaffMembersResponse {
        var request = Orgd_V1_ListStaffMembersRequest()
        request.organizationID = organizationID
        request.pageSize = pageSize
        request.pageToken = token
        return try await call(Self.memberships, "ListStaffMembers", request, as: caller)
    }

    /// A token for an existing user.
    func token(for userID: String) async throws -> String {
        try await store.write { tx in try tx.createToken(owner: .user(id: userID), description: "test", expireTime: nil).secret }
    }
}
