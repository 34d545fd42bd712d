import Foundation

/// What the access index holds: exactly the rows the access check and token
/// authentication decide on, keyed by their ids' 128 bits. It is a function
/// of the store at one revision (`revision`), never a guess: built from one
/// snapshot, then moved forward by the change feed, entity by entity, each
/// re-read from a later snapshot.
struct AccessIndexState: Sendable {
    struct Request: Sendable, Equatable {
        var organization: EntityID
        var startMicros: Int64?
        var endMicros: Int64?
    }

    struct ConsentKey: Hashable, Sendable {
        var patient: EntityID
        var scope: EntityID
    }

    /// A scope's coding, compared byte for byte as the database compares
    /// it (Swift's String equality would join canonically equivalent text).
    struct ScopeCode: Hashable, Sendable {
        var system: [UInt8]
        var code: [UInt8]

        init(system: String, code: String) {
            self.system = Array(system.utf8)
            self.code = Array(code.utf8)
        }
    }

    struct Token: Sendable {
        var id: EntityID
        var user: EntityID?
        var serviceAccount: EntityID?
        var expireMicros: Int64?
    }

    /// The revision every entry reflects.
    var revision: Int64 = 0
    /// When the index last caught up with the database, and (over
    /// PostgreSQL, where other daemons write) how long ago that may be
    /// before it stops answering.
    var followed = ContinuousClock.now
    var stalenessBound: Duration?
    /// Users by id: whether each is disabled.
    var userDisabled: [EntityID: Bool] = [:]
    var patients: Set<EntityID> = []
    /// Organisations by id: whether each is active.
    var organizationActive: [EntityID: Bool] = [:]
    /// The organisations where each user holds the agent role.
    var agentOf: [EntityID: [EntityID]] = [:]
    var requests: [EntityID: Request] = [:]
    /// The requests each patient consented to for each scope (consented = 1 only).
    var consents: [ConsentKey: [EntityID]] = [:]
    var scopes: [EntityID: ScopeRecord] = [:]
    var scopeByCode: [ScopeCode: EntityID] = [:]
    /// Live (unrevoked) tokens by their secret's SHA-256.
    var tokens: [SecretHash: Token] = [:]
    var tokenHash: [EntityID: SecretHash] = [:]
    /// The full records of users who own a live token (authentication
    /// answers with the record).
    var tokenUsers: [EntityID: UserRecord] = [:]
    var serviceAccounts: [EntityID: ServiceAccountRecord] = [:]

    /// How many consent answers (patient, scope, request) are held.
    var consentCount = 0

    // MARK: Changes

    /// One entity as a snapshot shows it: present (with what the index
    /// keeps of it) or gone.
    enum Update: Sendable {
        case user(EntityID, disabled: Bool?, record: UserRecord?)
        case patient(EntityID, exists: Bool)
        case organization(EntityID, active: Bool?)
        case staffMember(organization: EntityID, user: EntityID, isAgent: Bool)
        case request(EntityID, Request?)
        case consent(patient: EntityID, request: EntityID, scope: EntityID, consented: Bool)
        case scope(EntityID, ScopeRecord?)
        case token(EntityID, hash: SecretHash?, Token?, owner: UserRecord?)
        case serviceAccount(EntityID, ServiceAccountRecord?)
    }

    mutating func apply(_ update: Update) {
        switch update {
        case .user(let id, let disabled, let record):
            userDisabled[id] = disabled
            // Only token owners' records are kept (a token brings its owner's).
            if tokenUsers[id] != nil { tokenUsers[id] = record }
        case .patient(let id, let exists):
            if exists { patients.insert(id) } else { patients.remove(id) }
        case .organization(let id, let active):
            organizationActive[id] = active
        case .staffMember(let organization, let user, let isAgent):
            var organizations = agentOf[user] ?? []
            organizations.removeAll { $0 == organization }
            if isAgent { organizations.append(organization) }
            agentOf[user] = organizations.isEmpty ? nil : organizations
        case .request(let id, let request):
            requests[id] = request
        case .consent(let patient, let request, let scope, let consented):
            let key = ConsentKey(patient: patient, scope: scope)
            var held = consents[key] ?? []
            let before = held.count
            held.removeAll { $0 == request }
            if consented {
                // Kept sorted: the store's query answers with the smallest id.
                held.insert(request, at: held.firstIndex { $0 > request } ?? held.endIndex)
            }
            consentCount += held.count - before
            consents[key] = held.isEmpty ? nil : held
        case .scope(let id, let record):
            if let old = scopes[id], scopeByCode[ScopeCode(system: old.codingSystem, code: old.codingCode)] == id {
                scopeByCode[ScopeCode(system: old.codingSystem, code: old.codingCode)] = nil
            }
            scopes[id] = record
            if let record { scopeByCode[ScopeCode(system: record.codingSystem, code: record.codingCode)] = id }
        case .token(let id, let hash, let token, let owner):
            if let old = tokenHash.removeValue(forKey: id) { tokens[old] = nil }
            if let hash, let token {
                tokens[hash] = token
                tokenHash[id] = hash
                if let user = token.user { tokenUsers[user] = owner }
            }
        case .serviceAccount(let id, let record):
            serviceAccounts[id] = record
        }
    }

    // MARK: Questions

    /// The same decision as `StoreTransaction.checkAccess`, from memory:
    /// allowed when the patient consented, for this scope, to a live request
    /// of an active organisation where the agent (an existing user, not
    /// disabled) holds the agent role; otherwise the same reason and words.
    func checkAccess(agentID: String, patientID: String, scope: EntityID, nowMicros: Int64) -> AccessDecision {
        guard let agent = EntityID(agentID), let disabled = userDisabled[agent] else {
            return AccessDecision(reason: .unknownAgent, message: "no user \(agentID)")
        }
        let patient = EntityID(patientID)
        if !disabled, let patient, let requestIDs = consents[ConsentKey(patient: patient, scope: scope)], let organizations = agentOf[agent] {
            for requestID in requestIDs {
                guard let request = requests[requestID], organizations.contains(request.organization),
                    organizationActive[request.organization] == true,
                    request.startMicros.map({ $0 <= nowMicros }) ?? true, request.endMicros.map({ $0 > nowMicros }) ?? true
                else { continue }
                let organizationID = request.organization.description
                let consentRequestID = requestID.description
                return AccessDecision(
                    reason: .allowed, organizationID: organizationID, consentRequestID: consentRequestID,
                    message: "allowed: agent of organization \(organizationID), consent to request \(consentRequestID)")
            }
        }
        if disabled {
            return AccessDecision(reason: .agentDisabled, message: "user \(agentID) is disabled")
        }
        guard let patient, patients.contains(patient) else {
            return AccessDecision(reason: .unknownPatient, message: "no patient \(patientID)")
        }
        let isAgent = agentOf[agent]?.contains { organizationActive[$0] == true } ?? false
        if !isAgent {
            return AccessDecision(
                reason: .notAnAgent,
                message: "user \(agentID) holds the agent role in no active organization (a membership manager is not an agent)")
        }
        return AccessDecision(
            reason: .noConsent,
            message: "no live consent from patient \(patientID) for this scope to a request of an active organization where user \(agentID) is an agent")
    }

    func scope(id: String) -> ScopeRecord? {
        EntityID(id).flatMap { scopes[$0] }
    }

    func scope(codingSystem: String, codingCode: String) -> ScopeRecord? {
        scopeByCode[ScopeCode(system: codingSystem, code: codingCode)].flatMap { scopes[$0] }
    }

    /// Who a bearer token speaks for, as `StoreTransaction.principal(forSecret:)` decides.
    func principal(forSecretHash key: SecretHash, nowMicros: Int64) -> TokenPrincipal? {
        guard let token = tokens[key] else { return nil }
        if let expire = token.expireMicros, expire <= nowMicros { return nil }
        if let user = token.user {
            guard let record = tokenUsers[user], record.status != .disabled else { return nil }
            return .user(record)
        }
        return token.serviceAccount.flatMap { serviceAccounts[$0] }.map { .serviceAccount($0) }
    }
}
