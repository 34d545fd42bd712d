import ArgumentParser
import Foundation
import OrgdClient
import OrgdProto
import SwiftProtobuf

struct Consent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scopes, consent requests, patients' answers, history, and the access check.",
        subcommands: [
            ScopeCreate.self, ScopeList.self, RequestCreate.self, RequestGet.self, RequestEnd.self, RequestList.self, Ask.self,
            View.self, Answer.self, Revoke.self, History.self, Check.self, Accessible.self,
        ]
    )

    /// "SYSTEM|CODE" or a scope id.
    static func scopeRef(_ text: String) -> Orgd_V1_ScopeRef {
        var reference = Orgd_V1_ScopeRef()
        if let bar = text.lastIndex(of: "|") {
            reference.codingSystem = String(text[..<bar])
            reference.codingCode = String(text[text.index(after: bar)...])
        } else {
            reference.id = text
        }
        return reference
    }

    static func date(_ text: String, option: String) throws -> Google_Protobuf_Timestamp {
        guard let date = ISO8601DateFormatter().date(from: text) else {
            throw ValidationError("\(option) must be an ISO 8601 time such as 2026-01-31T00:00:00Z")
        }
        return Google_Protobuf_Timestamp(date: date)
    }

    static func show(_ request: Orgd_V1_ConsentRequest, format: OutputFormat) throws {
        if format != .table { return try Output.emit(request, format) }
        Output.fields([
            ("id", request.id), ("organization", request.organizationID), ("kind", request.kind == .agency ? "agency" : "study"),
            ("name", request.name), ("scopes", request.scopes.map { "\($0.codingSystem)|\($0.codingCode)" }.joined(separator: ", ")),
            ("start", Output.time(request.startTime)), ("end", Output.time(request.endTime)), ("version", "\(request.version)"),
        ])
    }

    struct ScopeCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "scope-create", abstract: "Add a scope to the catalogue (admin).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Code system URI, e.g. https://w3id.org/openmhealth.") var system: String
        @Option(help: "Code in that system, e.g. omh:blood-pressure:4.0.") var code: String
        @Option(help: "Display text.") var text: String = ""

        func run() async throws {
            var request = Orgd_V1_CreateScopeRequest()
            request.codingSystem = system
            request.codingCode = code
            request.text = text
            try await connection.run { client in
                let scope = try await client.consents.createScope(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(scope, connection.output) }
                Output.fields([("id", scope.id), ("scope", "\(scope.codingSystem)|\(scope.codingCode)"), ("text", scope.text)])
            }
        }
    }

    struct ScopeList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "scope-list", abstract: "List the scope catalogue.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Orgd_V1_ListScopesRequest()
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.consents.listScopes(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["ID", "SYSTEM", "CODE", "TEXT"], response.scopes.map { [$0.id, $0.codingSystem, $0.codingCode, $0.text] })
            }
        }
    }

    struct RequestCreate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "request-create", abstract: "Create a consent request (admin or the organisation's manager).")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "study or agency.", completion: .list(["agency", "study"])) var kind: String = "study"
        @Option(help: "The request's name, e.g. the study's.") var name: String
        @Option(help: "A scope as SYSTEM|CODE or its id; repeat for more.") var scope: [String]
        @Option(help: "ISO 8601 start time.") var start: String?
        @Option(help: "ISO 8601 end time.") var end: String?

        func run() async throws {
            var request = Orgd_V1_CreateConsentRequestRequest()
            request.organizationID = organization
            guard kind == "study" || kind == "agency" else { throw ValidationError("--kind must be study or agency") }
            request.kind = kind == "agency" ? .agency : .study
            request.name = name
            request.scopes = scope.map(Consent.scopeRef)
            if let start { request.startTime = try Consent.date(start, option: "--start") }
            if let end { request.endTime = try Consent.date(end, option: "--end") }
            try await connection.run { client in
                try Consent.show(try await client.consents.createConsentRequest(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct RequestGet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "request-get", abstract: "Show a consent request.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Consent request id.") var id: String

        func run() async throws {
            var request = Orgd_V1_GetConsentRequestRequest()
            request.id = id
            try await connection.run { client in
                try Consent.show(try await client.consents.getConsentRequest(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct RequestEnd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "request-end", abstract: "End a consent request now: its consents stop granting access.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Consent request id.") var id: String

        func run() async throws {
            var request = Orgd_V1_EndConsentRequestRequest()
            request.id = id
            try await connection.run { client in
                try Consent.show(try await client.consents.endConsentRequest(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct RequestList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "request-list", abstract: "List an organisation's consent requests.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String

        func run() async throws {
            var request = Orgd_V1_ListConsentRequestsRequest()
            request.organizationID = organization
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.consents.listConsentRequests(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["ID", "KIND", "NAME", "SCOPES", "END"], response.consentRequests.map {
                    [$0.id, $0.kind == .agency ? "agency" : "study", $0.name, "\($0.scopes.count)", Output.time($0.endTime)]
                })
            }
        }
    }

    struct Ask: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask patients to consent: the request becomes pending for them.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("request"), help: "Consent request id.") var requestID: String
        @Option(help: "A patient id; repeat for more.") var patient: [String]

        func run() async throws {
            var request = Orgd_V1_AskPatientsRequest()
            request.consentRequestID = requestID
            request.patientIds = patient
            try await connection.run { client in
                let response = try await client.consents.askPatients(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                print("asked \(response.asked) new patient(s)")
            }
        }
    }

    struct View: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A patient's consents (seed 002's view).")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Patient record id.") var patient: String

        func run() async throws {
            var request = Orgd_V1_GetPatientConsentsRequest()
            request.patientID = patient
            try await connection.run { client in
                let view = try await client.consents.getPatientConsents(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(view, connection.output) }
                Consent.printView(view)
            }
        }
    }

    static func printView(_ view: Orgd_V1_PatientConsents) {
        print("consented scopes: " + (view.consolidatedConsentedScopes.isEmpty ? "none" : view.consolidatedConsentedScopes.map(\.text).joined(separator: ", ")))
        let rows = view.studiesPendingConsent.flatMap { study in study.pendingScopeConsents.map { [study.id, study.name, "\($0.code.codingSystem)|\($0.code.codingCode)", "pending"] } }
            + view.studies.flatMap { study in
                study.scopeConsents.map { [study.id, study.name + (study.ended ? " (ended)" : ""), "\($0.code.codingSystem)|\($0.code.codingCode)", "\($0.consented.boolValue)"] }
            }
        Output.table(["REQUEST", "NAME", "SCOPE", "CONSENTED"], rows)
    }

    struct Answer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Answer (or with --update, change) consents, as the patient.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Patient record id.") var patient: String
        @Option(name: .customLong("request"), help: "Consent request id.") var requestID: String
        @Option(help: "SYSTEM|CODE=true or SYSTEM|CODE=false; repeat for more.") var scope: [String]
        @Flag(help: "Change existing answers instead of answering pending ones.") var update = false

        func run() async throws {
            var study = Orgd_V1_StudyScopeConsents()
            study.studyID = requestID
            study.scopeConsents = try scope.map { text in
                guard let equals = text.lastIndex(of: "="), let reference = Optional(Consent.scopeRef(String(text[..<equals]))),
                      let value = Bool(String(text[text.index(after: equals)...]))
                else { throw ValidationError("--scope must be SYSTEM|CODE=true or SYSTEM|CODE=false, not \(text)") }
                var answer = Orgd_V1_ScopeAnswer()
                answer.codingSystem = reference.codingSystem
                answer.codingCode = reference.codingCode
                answer.consented = value
                return answer
            }
            var request = Orgd_V1_ConsentAnswersRequest()
            request.patientID = patient
            request.studyScopeConsents = [study]
            try await connection.run { client in
                let view = update
                    ? try await client.consents.updateConsents(request, options: connection.callOptions)
                    : try await client.consents.answerConsents(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(view, connection.output) }
                Consent.printView(view)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke consents, as the patient: the scopes are pending again.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Patient record id.") var patient: String
        @Option(name: .customLong("request"), help: "Consent request id.") var requestID: String
        @Option(help: "SYSTEM|CODE; repeat for more.") var scope: [String]

        func run() async throws {
            var study = Orgd_V1_StudyScopeConsents()
            study.studyID = requestID
            study.scopeConsents = scope.map {
                let reference = Consent.scopeRef($0)
                var answer = Orgd_V1_ScopeAnswer()
                answer.codingSystem = reference.codingSystem
                answer.codingCode = reference.codingCode
                return answer
            }
            var request = Orgd_V1_ConsentAnswersRequest()
            request.patientID = patient
            request.studyScopeConsents = [study]
            try await connection.run { client in
                let view = try await client.consents.revokeConsents(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(view, connection.output) }
                Consent.printView(view)
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every consent change for a patient, oldest first.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Patient record id.") var patient: String

        func run() async throws {
            var request = Orgd_V1_ListConsentHistoryRequest()
            request.patientID = patient
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.consents.listConsentHistory(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                func text(_ value: Bool?) -> String { value.map { "\($0)" } ?? "-" }
                Output.table(["TIME", "ACTION", "REQUEST", "SCOPE", "BEFORE", "AFTER", "BY"], response.entries.map {
                    [Output.time($0.time), $0.action, $0.consentRequestID, $0.hasScope ? $0.scope.codingCode : "-",
                     text($0.hasBefore ? $0.before : nil), text($0.hasAfter ? $0.after : nil), Names.actor($0.actor, $0.actorKind, actingFor: $0.actingFor)]
                })
            }
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "May this agent read this patient's data of this scope? Exits 0 when allowed, 3 when denied.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The agent's user id.") var agent: String
        @Option(help: "Patient record id.") var patient: String
        @Option(help: "SYSTEM|CODE or a scope id.") var scope: String

        func run() async throws {
            var request = Orgd_V1_CheckAccessRequest()
            request.agentUserID = agent
            request.patientID = patient
            request.scope = Consent.scopeRef(scope)
            try await connection.run { client in
                let response = try await client.consents.checkAccess(request, options: connection.callOptions)
                if connection.output != .table { try Output.emit(response, connection.output) } else { print((response.allowed ? "ALLOWED: " : "DENIED: ") + response.message) }
                if !response.allowed { throw ExitCode(3) }
            }
        }
    }

    struct Accessible: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The patients whose data of this scope the agent may read.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The agent's user id.") var agent: String
        @Option(help: "SYSTEM|CODE or a scope id.") var scope: String

        func run() async throws {
            var request = Orgd_V1_ListAccessiblePatientsRequest()
            request.agentUserID = agent
            request.scope = Consent.scopeRef(scope)
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.consents.listAccessiblePatients(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                for id in response.patientIds { print(id) }
            }
        }
    }
}
