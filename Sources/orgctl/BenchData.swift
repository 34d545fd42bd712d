import Foundation
import OrgdClient
import OrgdCore
import OrgdProto

/// A seeded data set's ids, kept in a file so later runs need not seed again.
struct BenchData: Codable {
    struct Patient: Codable {
        var id: String
        var userID: String
        var organization: Int
    }

    var organizations: [String] = []
    /// Agent user ids, per organisation.
    var agents: [[String]] = []
    var patients: [Patient] = []
    /// Scopes as (system, code).
    var scopes: [[String]] = []
    /// The agency request of each organisation.
    var requests: [String] = []
    /// Consented (patient index, scope index) pairs.
    var consents: [[Int]] = []
    /// A token for a service account that may act for users (for TCP runs).
    var serviceToken: String = ""

    /// Counts for `--seed`, e.g. organizations=10,staff=100,patients=1000,scopes=4,consents=4000.
    struct Counts {
        var organizations = 10
        var staff = 100
        var patients = 1000
        var scopes = 4
        var consents = 4000

        init(_ text: String) throws {
            for part in text.split(separator: ",") {
                let pair = part.split(separator: "=")
                guard pair.count == 2, let value = Int(pair[1]), value >= 0 else { throw BenchError("bad --seed entry \(part)") }
                switch pair[0] {
                case "organizations", "orgs": organizations = value
                case "staff", "agents": staff = value
                case "patients": patients = value
                case "scopes": scopes = value
                case "consents": consents = value
                default: throw BenchError("unknown --seed entry \(pair[0]): use organizations, staff, patients, scopes, consents")
                }
            }
            guard organizations >= 1, staff >= organizations, patients >= 1, scopes >= 1 else {
                throw BenchError("--seed needs organizations ≥ 1, staff ≥ organizations, patients ≥ 1, scopes ≥ 1")
            }
            consents = min(consents, patients * scopes)
        }
    }

    /// Seeds through the API as the local operator, `parallel` calls at a time.
    static func seed(_ counts: Counts, client: OrgdClient, parallel: Int = 64, log: (String) -> Void) async throws -> BenchData {
        let tag = String(UUID().uuidString.prefix(8).lowercased())
        log("seeding \(counts.organizations) organisations, \(counts.staff) agents, \(counts.patients) patients, \(counts.scopes) scopes, \(counts.consents) consents")
        let scopes: [[String]] = try await concurrently(0..<counts.scopes, parallel) { index in
            var request = Orgd_V1_CreateScopeRequest()
            request.codingSystem = "https://bench.orgd/\(tag)"
            request.codingCode = "scope-\(index)"
            request.text = "Bench scope \(index)"
            let scope = try await client.consents.createScope(request)
            return [scope.codingSystem, scope.codingCode]
        }
        let organizations: [String] = try await concurrently(0..<counts.organizations, parallel) { index in
            var request = Orgd_V1_CreateOrganizationRequest()
            request.name = "Bench \(tag) \(index)"
            request.type = .hospitalTeam
            return try await client.organizations.createOrganization(request).id
        }
        let agentUsers: [String] = try await concurrently(0..<counts.staff, parallel) { index in
            let user = try await createUser(client, "agent-\(index)-\(tag)@bench.orgd")
            var member = Orgd_V1_AddStaffMemberRequest()
            member.organizationID = organizations[index % counts.organizations]
            member.userID = user
            member.roles = [.agent]
            _ = try await client.memberships.addStaffMember(member)
            return user
        }
        var agents = Array(repeating: [String](), count: counts.organizations)
        for (index, user) in agentUsers.enumerated() { agents[index % counts.organizations].append(user) }
        log("  organisations and agents done")
        let patients: [Patient] = try await concurrently(0..<counts.patients, parallel) { index in
            let user = try await createUser(client, "patient-\(index)-\(tag)@bench.orgd")
            var patient = Orgd_V1_CreatePatientRequest()
            patient.givenName = "Patient"
            patient.familyName = "Bench \(index)"
            patient.userID = user
            let id = try await client.memberships.createPatient(patient).id
            var member = Orgd_V1_AddPatientMemberRequest()
            member.organizationID = organizations[index % counts.organizations]
            member.patientID = id
            member.isPrimary = true
            _ = try await client.memberships.addPatientMember(member)
            return Patient(id: id, userID: user, organization: index % counts.organizations)
        }
        log("  patients done")
        let scopeReferences: [Orgd_V1_ScopeRef] = scopes.map { scope in
            var reference = Orgd_V1_ScopeRef()
            reference.codingSystem = scope[0]
            reference.codingCode = scope[1]
            return reference
        }
        let requests: [String] = try await concurrently(0..<counts.organizations, parallel) { organization in
            var request = Orgd_V1_CreateConsentRequestRequest()
            request.organizationID = organizations[organization]
            request.kind = .agency
            request.name = "Bench agency request \(organization)"
            request.scopes = scopeReferences
            let id = try await client.consents.createConsentRequest(request).id
            let members = patients.filter { $0.organization == organization }.map(\.id)
            for start in stride(from: 0, to: members.count, by: 1000) {
                var ask = Orgd_V1_AskPatientsRequest()
                ask.consentRequestID = id
                ask.patientIds = Array(members[start..<min(start + 1000, members.count)])
                _ = try await client.consents.askPatients(ask)
            }
            return id
        }
        // The service that answers for patients: consents are answered by the
        // patient or a service acting for them, never the local operator.
        var account = Orgd_V1_CreateServiceAccountRequest()
        account.name = "bench-\(tag)"
        account.systemRole = .admin
        account.mayActAs = true
        var token = Orgd_V1_CreateTokenRequest()
        token.serviceAccountID = try await client.tokens.createServiceAccount(account).id
        token.description_p = "orgctl bench"
        let serviceToken = try await client.tokens.createToken(token).secret
        // Consents: patient by patient, each answering its first scopes.
        var counting = Array(repeating: 0, count: counts.patients)
        for index in 0..<counts.consents { counting[index % counts.patients] += 1 }
        let perPatient = counting
        _ = try await concurrently(0..<counts.patients, parallel) { index -> Int in
            guard perPatient[index] > 0 else { return 0 }
            let patient = patients[index]
            var study = Orgd_V1_StudyScopeConsents()
            study.studyID = requests[patient.organization]
            study.scopeConsents = scopes.prefix(perPatient[index]).map { scope in
                var answer = Orgd_V1_ScopeAnswer()
                answer.codingSystem = scope[0]
                answer.codingCode = scope[1]
                answer.consented = true
                return answer
            }
            var body = Orgd_V1_ConsentAnswersRequest()
            body.patientID = patient.id
            body.studyScopeConsents = [study]
            _ = try await client.consents.answerConsents(
                body, options: CallOptions(metadata: [("authorization", "Bearer \(serviceToken)"), ("orgd-act-as", patient.userID)]))
            return 0
        }
        log("  consents done")
        var data = BenchData()
        data.organizations = organizations
        data.agents = agents
        data.patients = patients
        data.scopes = scopes
        data.requests = requests
        data.consents = (0..<counts.patients).flatMap { index in (0..<perPatient[index]).map { [index, $0] } }
        data.serviceToken = serviceToken
        return data
    }

    static func createUser(_ client: OrgdClient, _ email: String) async throws -> String {
        var user = Orgd_V1_CreateUserRequest()
        user.email = email
        user.givenName = "Bench"
        user.familyName = "User"
        return try await client.memberships.createUser(user).id
    }

    /// Maps `body` over `range` with at most `parallel` calls at once, in order.
    static func concurrently<T: Sendable>(_ range: Range<Int>, _ parallel: Int, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: range.count)
            var next = range.lowerBound
            while next < range.upperBound && next - range.lowerBound < parallel {
                let index = next
                group.addTask { (index, try await body(index)) }
                next += 1
            }
            while let (index, value) = try await group.next() {
                results[index - range.lowerBound] = value
                if next < range.upperBound {
                    let index = next
                    group.addTask { (index, try await body(index)) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
