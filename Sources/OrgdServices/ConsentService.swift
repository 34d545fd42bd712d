import Foundation
import OrgdCore
import OrgdProto
import OrgdStore
import SwiftProtobuf

/// `orgd.v1.ConsentService`: scopes, consent requests, patients' answers
/// (seed 002), history, and the access check that data services ask before
/// they return data.
struct ConsentService {
    static let maximumBatch = 1000
    let store: Store

    func register(in table: inout MethodTable) {
        table.add(Method.CreateScope.self, createScope)
        table.add(Method.ListScopes.self, listScopes)

        let byOrganization: @Sendable (Orgd_V1_CreateConsentRequestRequest) -> AccessSubject = { .organization($0.organizationID.lowercased()) }
        table.add(Method.CreateConsentRequest.self, subject: byOrganization, createConsentRequest)
        table.add(Method.GetConsentRequest.self, subject: { .consentRequest($0.id.lowercased()) }) {
            (request: Orgd_V1_GetConsentRequestRequest, _) in
            let id = try Validation.id(request.id)
            return try await store.read { tx in
                let consentRequest = try tx.consentRequest(id: id)
                return consentRequest.proto(organization: try tx.organization(id: consentRequest.organizationID), dataSources: try tx.dataSources(requestID: id))
            }
        }
        table.add(Method.UpdateConsentRequest.self, subject: { .consentRequest($0.id.lowercased()) }, updateConsentRequest)
        table.add(Method.EndConsentRequest.self, subject: { .consentRequest($0.id.lowercased()) }) {
            (request: Orgd_V1_EndConsentRequestRequest, context) in
            let id = try Validation.id(request.id)
            let actor = Self.actor(context)
            return try await store.write { tx in
                let current = try tx.consentRequest(id: id)
                if let end = current.endTime, end <= tx.now { return current.proto(dataSources: try tx.dataSources(requestID: id)) }
                let start: Date?? = current.startTime.map { $0 >= tx.now ? .some(nil) : nil } ?? nil
                return try tx.updateConsentRequest(id: id, expectedVersion: 0, name: nil, addScopeIDs: [], startTime: start, endTime: .some(tx.now), actor: actor).proto(dataSources: try tx.dataSources(requestID: id))
            }
        }
        table.add(Method.ListConsentRequests.self, subject: { .organization($0.organizationID.lowercased()) }, listConsentRequests)
        table.add(Method.AskPatients.self, subject: { .consentRequest($0.consentRequestID.lowercased()) }, askPatients)

        table.add(Method.GetPatientConsents.self, subject: { .patient($0.patientID.lowercased()) }) {
            (request: Orgd_V1_GetPatientConsentsRequest, _) in
            let patientID = try Validation.id(request.patientID, field: "patient_id")
            return try await store.read { tx in try Self.patientConsents(patientID, tx) }
        }
        let byPatient: @Sendable (Orgd_V1_ConsentAnswersRequest) -> AccessSubject = { .patient($0.patientID.lowercased()) }
        table.add(Method.AnswerConsents.self, subject: byPatient) { try await change(.answer, $0, $1) }
        table.add(Method.UpdateConsents.self, subject: byPatient) { try await change(.update, $0, $1) }
        table.add(Method.RevokeConsents.self, subject: byPatient) { try await change(.revoke, $0, $1) }
        table.add(Method.ListConsentHistory.self, subject: { .patient($0.patientID.lowercased()) }, listHistory)

        // The hot path: read methods run on a reader thread with no Swift task.
        // Hotter still: answered from the access index, on the event loop
        // that read the call, when the index is serving.
        table.addRead(
            Method.CheckAccess.self, indexed: { request, index in try Self.decide(try Self.validate(request, field: ""), index).proto }
        ) { (request: Orgd_V1_CheckAccessRequest, _, tx) in
            try Self.decide(try Self.validate(request, field: ""), tx).proto
        }
        table.addRead(Method.BatchCheckAccess.self, indexed: { request, index in try Self.batch(request) { try Self.decide($0, index) } }) {
            (request: Orgd_V1_BatchCheckAccessRequest, _, tx) in
            // One read transaction: every answer comes from the same snapshot.
            try Self.batch(request) { try Self.decide($0, tx) }
        }
        table.addRead(Method.ListAccessiblePatients.self, listAccessiblePatients)
    }

    // MARK: Scopes

    func createScope(_ request: Orgd_V1_CreateScopeRequest, _ context: CallContext) async throws -> Orgd_V1_Scope {
        let system = try Validation.text(request.codingSystem, field: "coding_system", maximum: 500)
        let code = try Validation.text(request.codingCode, field: "coding_code")
        let text = try Validation.text(request.text, field: "text", maximum: 500, required: false)
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            try tx.createScope(codingSystem: system, codingCode: code, text: text).proto.serializedBytes()
        }
        return try Orgd_V1_Scope(serializedBytes: bytes)
    }

    func listScopes(_ request: Orgd_V1_ListScopesRequest, _ context: CallContext) async throws -> Orgd_V1_ListScopesResponse {
        let limit = try PageToken.pageSize(request.pageSize)
        let after = try context.pageTokens.decode(request.pageToken, scope: "scopes")
        let page = try await store.read { tx in try tx.listScopes(after: after, limit: limit) }
        var response = Orgd_V1_ListScopesResponse()
        response.scopes = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: "scopes")
        return response
    }

    /// A scope named by id, or by coding system and code, or by both when
    /// they name the same scope; nil when there is none. Every ScopeRef in
    /// every request is resolved here. A reference whose id and code name
    /// different scopes (or only one of them names a scope) is refused
    /// naming `field`: deciding by either half would answer for a scope the
    /// caller may not have meant.
    static func resolve(_ reference: Orgd_V1_ScopeRef, field: String, _ tx: some ScopeLookup) throws -> ScopeRecord? {
        let hasCode = !reference.codingSystem.isEmpty || !reference.codingCode.isEmpty
        if hasCode && (reference.codingSystem.isEmpty || reference.codingCode.isEmpty) {
            let missing = reference.codingSystem.isEmpty ? "coding_system" : "coding_code"
            throw RPCError.invalidArgument(field: "\(field).\(missing)", "required with \(missing == "coding_code" ? "coding_system" : "coding_code")")
        }
        guard !reference.id.isEmpty else {
            guard hasCode else { throw RPCError.invalidArgument(field: field, "required: an id, or a coding_system and coding_code") }
            return try tx.scope(codingSystem: reference.codingSystem, codingCode: reference.codingCode)
        }
        let byID = try tx.scope(id: try Validation.id(reference.id, field: "\(field).id"))
        guard hasCode else { return byID }
        let byCode = try tx.scope(codingSystem: reference.codingSystem, codingCode: reference.codingCode)
        guard byID?.id == byCode?.id else {
            throw RPCError.invalidArgument(
                field: field, "id and coding_system|coding_code name different scopes; send one of them, or both naming the same scope")
        }
        return byID
    }

    /// How a scope reference names its scope, for messages.
    static func name(_ reference: Orgd_V1_ScopeRef) -> String {
        reference.id.isEmpty ? "\(reference.codingSystem)|\(reference.codingCode)".prefix(300).description : reference.id
    }

    static func resolveAll(_ references: [Orgd_V1_ScopeRef], field: String, _ tx: StoreTransaction) throws -> [String] {
        try references.enumerated().map { index, reference in
            guard let scope = try resolve(reference, field: "\(field)[\(index)]", tx) else {
                throw RPCError.notFound(field: "\(field)[\(index)]", "scope", id: Self.name(reference) + " (create it first)")
            }
            return scope.id
        }
    }

    // MARK: Consent requests

    func createConsentRequest(_ request: Orgd_V1_CreateConsentRequestRequest, _ context: CallContext) async throws -> Orgd_V1_ConsentRequest {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let kind = try ConsentRequestKind(validating: request.kind)
        let name = try Validation.text(request.name, field: "name")
        guard !request.scopes.isEmpty else { throw RPCError.invalidArgument(field: "scopes", "at least one scope") }
        let start = request.hasStartTime ? try Validation.timestamp(request.startTime, field: "start_time") : nil
        let end = request.hasEndTime ? try Validation.timestamp(request.endTime, field: "end_time") : nil
        if let start, let end, start >= end { throw RPCError.invalidArgument(field: "end_time", "must be after start_time") }
        let dataSources = try Self.dataSourceInputs(request.dataSources, field: "data_sources")
        let bytes = try await store.write(idempotency: try context.idempotencyKey(for: request)) { tx in
            let scopeIDs = try Self.resolveAll(request.scopes, field: "scopes", tx)
            let created = try tx.createConsentRequest(
                organizationID: organizationID, kind: kind, name: name, scopeIDs: scopeIDs, startTime: start, endTime: end)
            try tx.changeDataSources(requestID: created.id, add: dataSources, removeIDs: [], addField: "data_sources")
            return try created.proto(organization: try tx.organization(id: organizationID), dataSources: try tx.dataSources(requestID: created.id))
                .serializedBytes()
        }
        return try Orgd_V1_ConsentRequest(serializedBytes: bytes)
    }

    func updateConsentRequest(_ request: Orgd_V1_UpdateConsentRequestRequest, _ context: CallContext) async throws -> Orgd_V1_ConsentRequest {
        let id = try Validation.id(request.id)
        let version = try Validation.version(request.version)
        let name = request.hasName ? try Validation.text(request.name, field: "name") : nil
        if request.hasEndTime && request.removeEndTime {
            throw RPCError.invalidArgument(field: "remove_end_time", "cannot both set and remove the end time")
        }
        let start: Date?? = request.hasStartTime ? .some(try Validation.timestamp(request.startTime, field: "start_time")) : nil
        let end: Date?? = request.hasEndTime
            ? .some(try Validation.timestamp(request.endTime, field: "end_time")) : request.removeEndTime ? .some(nil) : nil
        let addDataSources = try Self.dataSourceInputs(request.addDataSources, field: "add_data_sources")
        let removeDataSources = try request.removeDataSourceIds.enumerated().map { index, id in
            (id: try Validation.id(id, field: "remove_data_source_ids[\(index)]"), field: "remove_data_source_ids[\(index)]")
        }
        if name == nil && request.addScopes.isEmpty && start == nil && end == nil && addDataSources.isEmpty && removeDataSources.isEmpty {
            throw RPCError(.invalidArgument, "the update names no field")
        }
        let actor = Self.actor(context)
        return try await store.write { tx in
            let scopeIDs = try Self.resolveAll(request.addScopes, field: "add_scopes", tx)
            let updated = try tx.updateConsentRequest(id: id, expectedVersion: version, name: name, addScopeIDs: scopeIDs, startTime: start, endTime: end, actor: actor)
            // Data sources change with the request's version; consents are untouched.
            try tx.changeDataSources(requestID: id, add: addDataSources, removeIDs: removeDataSources, addField: "add_data_sources")
            return updated.proto(organization: try tx.organization(id: updated.organizationID), dataSources: try tx.dataSources(requestID: id))
        }
    }

    func listConsentRequests(_ request: Orgd_V1_ListConsentRequestsRequest, _ context: CallContext) async throws -> Orgd_V1_ListConsentRequestsResponse {
        let organizationID = try Validation.id(request.organizationID, field: "organization_id")
        let limit = try PageToken.pageSize(request.pageSize)
        let scope = "consent-requests|\(organizationID)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let (page, dataSources) = try await store.read { tx in
            let page = try tx.listConsentRequests(organizationID: organizationID, after: after, limit: limit)
            return (page, try page.items.map { try tx.dataSources(requestID: $0.id) })
        }
        var response = Orgd_V1_ListConsentRequestsResponse()
        response.consentRequests = zip(page.items, dataSources).map { $0.proto(dataSources: $1) }
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    /// Data sources to add: names validated like other names, a type other
    /// than UNSPECIFIED, at most `StoreTransaction.maximumDataSources` in one call.
    static func dataSourceInputs(_ inputs: [Orgd_V1_DataSourceInput], field: String) throws -> [DataSourceInput] {
        guard inputs.count <= StoreTransaction.maximumDataSources else {
            throw RPCError.invalidArgument(field: field, "at most \(StoreTransaction.maximumDataSources) data sources, got \(inputs.count)")
        }
        return try inputs.enumerated().map { index, input in
            let itemField = "\(field)[\(index)]"
            let type: DataSourceRecord.Kind
            switch input.type {
            case .app: type = .app
            case .device: type = .device
            default: throw RPCError.invalidArgument(field: "\(itemField).type", "required: DATA_SOURCE_TYPE_APP or DATA_SOURCE_TYPE_DEVICE")
            }
            return DataSourceInput(name: try Validation.text(input.name, field: "\(itemField).name"), type: type, field: itemField)
        }
    }

    func askPatients(_ request: Orgd_V1_AskPatientsRequest, _ context: CallContext) async throws -> Orgd_V1_AskPatientsResponse {
        let requestID = try Validation.id(request.consentRequestID, field: "consent_request_id")
        guard !request.patientIds.isEmpty else { throw RPCError.invalidArgument(field: "patient_ids", "at least one patient") }
        guard request.patientIds.count <= Self.maximumBatch else {
            throw RPCError.invalidArgument(field: "patient_ids", "at most \(Self.maximumBatch) patients in one call")
        }
        let patientIDs = try request.patientIds.enumerated().map { try Validation.id($1, field: "patient_ids[\($0)]") }
        let actor = Self.actor(context)
        var response = Orgd_V1_AskPatientsResponse()
        response.asked = Int32(clamping: try await store.write { tx in try tx.askPatients(requestID: requestID, patientIDs: patientIDs, actor: actor) })
        return response
    }

    // MARK: The patient's view and answers

    /// Seed 002's view: consolidated consented scopes, studies pending
    /// consent (with their pending scopes), and studies with each answer.
    static func patientConsents(_ patientID: String, _ tx: StoreTransaction) throws -> Orgd_V1_PatientConsents {
        try PatientConsentRows(patientID, tx).view
    }

    /// What a patient's consents view is made of, read in one transaction;
    /// the view itself is built from it outside (off the writer, for a write).
    struct PatientConsentRows: Sendable {
        let patient: PatientRecord
        let studies: [(study: PatientStudy, dataSources: [DataSourceRecord])]
        let now: Date

        init(_ patientID: String, _ tx: StoreTransaction) throws {
            patient = try tx.patient(id: patientID)
            studies = try tx.patientStudies(patientID: patientID).map { ($0, try tx.dataSources(requestID: $0.request.id)) }
            now = tx.now
        }

        var view: Orgd_V1_PatientConsents {
            ConsentService.view(self)
        }
    }

    static func view(_ rows: PatientConsentRows) -> Orgd_V1_PatientConsents {
        var view = Orgd_V1_PatientConsents()
        view.patient = rows.patient.proto
        var consolidated: [ScopeRecord] = []
        for (study, dataSources) in rows.studies {
            var base = Orgd_V1_StudyView()
            base.id = study.request.id
            base.name = study.request.name
            base.kind = study.request.kind.proto
            base.organization = study.organization.summary
            base.dataSources = dataSources.map(\.proto)
            if let start = study.request.startTime { base.startTime = Google_Protobuf_Timestamp(start) }
            if let end = study.request.endTime { base.endTime = Google_Protobuf_Timestamp(end) }
            base.ended = study.request.endTime.map { $0 <= rows.now } ?? false
            var pending: [Orgd_V1_ScopeConsent] = []
            var answered: [Orgd_V1_ScopeConsent] = []
            for scope in study.request.scopes {
                var entry = Orgd_V1_ScopeConsent()
                entry.code = scope.proto
                if let consented = study.answers[scope.id] {
                    entry.consented = Google_Protobuf_Value(boolValue: consented)
                    answered.append(entry)
                    if consented && !consolidated.contains(scope) { consolidated.append(scope) }
                } else {
                    // Seed 002 prints a pending answer as "consented": null.
                    entry.consented = Google_Protobuf_Value(nilLiteral: ())
                    pending.append(entry)
                }
            }
            // A pending request of a deactivated organisation cannot be
            // answered, so it is not offered; it is back on reactivation.
            if !pending.isEmpty && !base.ended && study.organization.active {
                var study = base
                study.pendingScopeConsents = pending
                view.studiesPendingConsent.append(study)
            }
            if !answered.isEmpty {
                var study = base
                study.scopeConsents = answered
                view.studies.append(study)
            }
        }
        view.consolidatedConsentedScopes = consolidated.map(\.proto)
        return view
    }

    func change(_ change: ConsentChange, _ request: Orgd_V1_ConsentAnswersRequest, _ context: CallContext) async throws -> Orgd_V1_PatientConsents {
        let patientID = try Validation.id(request.patientID, field: "patient_id")
        guard !request.studyScopeConsents.isEmpty else {
            throw RPCError.invalidArgument(field: "study_scope_consents", "at least one study")
        }
        let inputs = try request.studyScopeConsents.enumerated().map { index, study in
            let field = "study_scope_consents[\(index)]"
            guard !study.scopeConsents.isEmpty else { throw RPCError.invalidArgument(field: "\(field).scope_consents", "at least one scope") }
            return ConsentAnswerInput(
                requestID: try Validation.id(study.studyID, field: "\(field).study_id"), field: field,
                scopes: try study.scopeConsents.enumerated().map { scopeIndex, answer in
                    let scopeField = "\(field).scope_consents[\(scopeIndex)]"
                    guard !answer.codingSystem.isEmpty else { throw RPCError.invalidArgument(field: "\(scopeField).coding_system", "required") }
                    guard !answer.codingCode.isEmpty else { throw RPCError.invalidArgument(field: "\(scopeField).coding_code", "required") }
                    return .init(codingSystem: answer.codingSystem, codingCode: answer.codingCode,
                                 consented: answer.hasConsented ? answer.consented : nil, field: scopeField)
                }
            )
        }
        let actor = Self.actor(context)
        // The writer reads what the answer needs; the answer is built here.
        let rows = try await store.write { tx in
            try tx.changeConsents(patientID: patientID, inputs, change: change, actor: actor)
            return try PatientConsentRows(patientID, tx)
        }
        return rows.view
    }

    func listHistory(_ request: Orgd_V1_ListConsentHistoryRequest, _ context: CallContext) async throws -> Orgd_V1_ListConsentHistoryResponse {
        let patientID = try Validation.id(request.patientID, field: "patient_id")
        let limit = try PageToken.pageSize(request.pageSize)
        let scope = "consent-history|\(patientID)"
        let after = try context.pageTokens.decode(request.pageToken, scope: scope)
        let page = try await store.read { tx in try tx.listConsentHistory(patientID: patientID, after: after, limit: limit) }
        var response = Orgd_V1_ListConsentHistoryResponse()
        response.entries = page.items.map(\.proto)
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: scope)
        return response
    }

    /// The principal for the history: who acted, and for whom.
    static func actor(_ context: CallContext) -> Actor {
        Actor(principal: context.principal.actor, actingFor: context.principal.actingFor?.id ?? "")
    }

    // MARK: The access check

    struct Check: Sendable {
        var agentID: String
        var patientID: String
        var scope: Orgd_V1_ScopeRef
        var scopeField: String
    }

    static func validate(_ request: Orgd_V1_CheckAccessRequest, field prefix: String) throws -> Check {
        guard request.hasScope else { throw RPCError.invalidArgument(field: "\(prefix)scope", "required") }
        return Check(
            agentID: try Validation.id(request.agentUserID, field: "\(prefix)agent_user_id"),
            patientID: try Validation.id(request.patientID, field: "\(prefix)patient_id"),
            scope: request.scope, scopeField: "\(prefix)scope"
        )
    }

    static func decide(_ check: Check, _ tx: StoreTransaction) throws -> AccessDecision {
        guard let scope = try resolve(check.scope, field: check.scopeField, tx) else {
            return AccessDecision(reason: .unknownScope, message: "no such scope")
        }
        return try tx.checkAccess(agentID: check.agentID, patientID: check.patientID, scopeID: scope.id)
    }

    /// The same decision from the access index (one revision of it).
    static func decide(_ check: Check, _ index: AccessIndexView) throws -> AccessDecision {
        guard let scope = try resolve(check.scope, field: check.scopeField, index) else {
            return AccessDecision(reason: .unknownScope, message: "no such scope")
        }
        return index.checkAccess(agentID: check.agentID, patientID: check.patientID, scopeID: scope.id)
    }

    /// A batch of checks, each validated first, decided by `decide` in order.
    static func batch(
        _ request: Orgd_V1_BatchCheckAccessRequest, _ decide: (Check) throws -> AccessDecision
    ) throws -> Orgd_V1_BatchCheckAccessResponse {
        guard request.checks.count <= Self.maximumBatch else {
            throw RPCError.invalidArgument(field: "checks", "at most \(Self.maximumBatch) checks in one call, got \(request.checks.count)")
        }
        let checks = try request.checks.enumerated().map { try Self.validate($1, field: "checks[\($0)].") }
        var response = Orgd_V1_BatchCheckAccessResponse()
        response.results = try checks.map { try decide($0).proto }
        return response
    }

    func listAccessiblePatients(
        _ request: Orgd_V1_ListAccessiblePatientsRequest, _ context: CallContext, _ tx: StoreTransaction
    ) throws -> Orgd_V1_ListAccessiblePatientsResponse {
        let agentID = try Validation.id(request.agentUserID, field: "agent_user_id")
        guard request.hasScope else { throw RPCError.invalidArgument(field: "scope", "required") }
        let limit = try PageToken.pageSize(request.pageSize)
        guard let scope = try Self.resolve(request.scope, field: "scope", tx) else {
            throw RPCError.notFound(field: "scope", "scope", id: Self.name(request.scope))
        }
        let pageScope = "accessible|\(agentID)|\(scope.id)"
        let after = try context.pageTokens.decode(request.pageToken, scope: pageScope)
        let page = try tx.listAccessiblePatients(agentID: agentID, scopeID: scope.id, after: after, limit: limit)
        var response = Orgd_V1_ListAccessiblePatientsResponse()
        response.patientIds = page.items
        response.nextPageToken = context.pageTokens.encode(after: page.nextAfter, scope: pageScope)
        return response
    }
}
