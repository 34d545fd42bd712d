import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import SwiftProtobuf
import Testing

/// The JSON shape of a seed sample, restated here: which keys an object has
/// (recursively), and which extra keys orgd documents as additions.
indirect enum SeedShape: Sendable {
    /// Anything: the seed elides it (`{ ... }`, `[ ... ]`) or it is a value.
    case any
    /// An object with exactly these keys, plus at most the `additions`.
    case object([String: SeedShape], additions: Set<String> = [], open: Bool = false)
    case array(SeedShape)

    /// Every difference from the shape, each naming its JSON path.
    func problems(_ value: Any?, at path: String = "$") -> [String] {
        switch self {
        case .any:
            return value == nil ? ["\(path): missing"] : []
        case .array(let element):
            guard let items = value as? [Any] else { return ["\(path): not an array"] }
            if items.isEmpty { return ["\(path): empty (the world should fill it to check its shape)"] }
            return items.enumerated().flatMap { element.problems($1, at: "\(path)[\($0)]") }
        case .object(let keys, let additions, let open):
            guard let object = value as? [String: Any] else { return ["\(path): not an object"] }
            var problems = keys.flatMap { key, shape in
                object[key] == nil && !(object.keys.contains(key)) ? ["\(path).\(key): missing"] : shape.problems(object[key], at: "\(path).\(key)")
            }
            if !open {
                problems += object.keys.filter { keys[$0] == nil && !additions.contains($0) }.sorted().map { "\(path).\($0): not in the seed and not a documented addition" }
            }
            return problems
        }
    }
}

/// Seed 002's samples as shapes (orgd's ids are UUID strings where the seed
/// shows numbers; the shape is about keys).
enum Seed002 {
    static let scope = SeedShape.object(["id": .any, "codingSystem": .any, "codingCode": .any, "text": .any])
    /// The seed shows `"patient": {"id": 40001, ...}`: id, then anything.
    static let patient = SeedShape.object(["id": .any], open: true)
    static let profile = SeedShape.object(["id": .any, "email": .any, "firstName": .any, "lastName": .any, "patient": patient])
    static let profileOfStaff = SeedShape.object(["id": .any, "email": .any, "firstName": .any, "lastName": .any])

    /// Documented additions to a study: its kind, period and ended flag.
    /// (SwiftProtobuf prints no default values, so `ended: false` and empty
    /// lists are left out; Python's json_format can print them, and then the
    /// other, empty, list of scope consents appears too.)
    static func study(_ list: String) -> SeedShape {
        let additions: Set<String> = ["kind", "startTime", "endTime", "ended"]
        return .object(
            ["id": .any, "name": .any, "organization": .any, "dataSources": .array(.any), list: .array(.object(["code": scope, "consented": .any]))],
            additions: additions
        )
    }

    static let consents = SeedShape.object([
            "patient": patient,
            "consolidatedConsentedScopes": .array(scope),
            "studiesPendingConsent": .array(study("pendingScopeConsents")),
            "studies": .array(study("scopeConsents")),
        ])
}

@Suite("Seed 002's shapes, data sources, periods and deactivated organisations end to end")
struct SeedShapeTests {
    /// Proto3 JSON with SwiftProtobuf's default options (lowerCamelCase
    /// names; default values not printed — SwiftProtobuf 1.39 has no option
    /// to print them).
    static func json(_ message: some SwiftProtobuf.Message) throws -> [String: Any] {
        let data = try message.jsonUTF8Data()
        return try #require(try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? [String: Any])
    }

    static func source(_ name: String, _ type: Orgd_V1_DataSourceType) -> Orgd_V1_DataSourceInput {
        var input = Orgd_V1_DataSourceInput()
        input.name = name
        input.type = type
        return input
    }

    /// Seed 002's example: consented to blood glucose in Demo Study 1, pending
    /// blood pressure in Demo Study 2; each study collects from one source.
    static func seedWorld(_ world: ConsentWorld) async throws -> (study1: Orgd_V1_ConsentRequest, study2: Orgd_V1_ConsentRequest) {
        var create1 = Orgd_V1_CreateConsentRequestRequest()
        create1.organizationID = world.organization.id
        create1.kind = .study
        create1.name = "Demo Study 1"
        create1.scopes = [ConsentWorld.reference(world.bloodGlucose)]
        create1.dataSources = [source("Glucose Diary", .app)]
        let study1 = try await world.managerClient.consents.createConsentRequest(create1)
        var create2 = create1
        create2.name = "Demo Study 2"
        create2.scopes = [ConsentWorld.reference(world.bloodPressure)]
        create2.dataSources = [source("Omron cuff", .device)]
        let study2 = try await world.managerClient.consents.createConsentRequest(create2)
        try await world.ask(study1)
        try await world.ask(study2)
        _ = try await world.answer(study1, [(world.bloodGlucose, true)])
        return (study1, study2)
    }

    static func view(_ world: ConsentWorld, by client: OrgdClient? = nil) async throws -> Orgd_V1_PatientConsents {
        var get = Orgd_V1_GetPatientConsentsRequest()
        get.patientID = world.patient.id
        return try await (client ?? world.patientClient).consents.getPatientConsents(get)
    }

    @Test("GetProfile's JSON is seed 002's profile key for key: {id, email, firstName, lastName, patient{id, ...}}; no patient key for staff")
    func profileShape() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let profile = try await world.patientClient.memberships.getProfile()
            let json = try Self.json(profile)
            let problems = Seed002.profile.problems(json)
            #expect(problems == [])
            #expect(json["id"] as? String == world.patientUser.id && json["email"] as? String == world.patientUser.email)
            #expect(json["firstName"] as? String == world.patientUser.givenName && json["lastName"] as? String == world.patientUser.familyName)
            #expect((json["patient"] as? [String: Any])?["id"] as? String == world.patient.id)

            let staff = try Self.json(try await world.managerClient.memberships.getProfile())
            let staffProblems = Seed002.profileOfStaff.problems(staff)
            #expect(staffProblems == [])
        }
    }

    @Test("GetPatientConsents and AnswerConsents print seed 002's consents sample key for key, pending as \"consented\": null")
    func consentsShape() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let (study1, study2) = try await Self.seedWorld(world)
            let view = try await Self.view(world)
            let json = try Self.json(view)
            let problems = Seed002.consents.problems(json)
            #expect(problems == [])

            let pending = try #require((json["studiesPendingConsent"] as? [[String: Any]])?.first)
            #expect(pending["id"] as? String == study2.id && pending["name"] as? String == "Demo Study 2")
            let pendingConsent = try #require((pending["pendingScopeConsents"] as? [[String: Any]])?.first)
            #expect(pendingConsent.keys.contains("consented") && pendingConsent["consented"] is NSNull, "pending prints \"consented\": null")
            #expect(pending["ended"] == nil, "false is a default value: not printed")
            let pendingSource = try #require((pending["dataSources"] as? [[String: Any]])?.first)
            #expect(pendingSource["name"] as? String == "Omron cuff" && pendingSource["type"] as? String == "DATA_SOURCE_TYPE_DEVICE")

            let consented = try #require((json["studies"] as? [[String: Any]])?.first)
            #expect(consented["id"] as? String == study1.id)
            let answer = try #require((consented["scopeConsents"] as? [[String: Any]])?.first)
            #expect(answer["consented"] as? Bool == true)
            #expect((answer["code"] as? [String: Any])?["codingCode"] as? String == "omh:blood-glucose:4.0")
            let consolidated = try #require(json["consolidatedConsentedScopes"] as? [[String: Any]])
            #expect(consolidated.map { $0["codingCode"] as? String } == ["omh:blood-glucose:4.0"])

            // The answer methods return the same message, in the same shape.
            let answered = try await world.patientClient.consents.updateConsents(ConsentWorld.answers(world.patient.id, study1.id, [(world.bloodGlucose, true)]))
            let answeredProblems = Seed002.consents.problems(try Self.json(answered))
            #expect(answeredProblems == [])
        }
    }

    @Test("data sources: created with the request, added and removed with its version; bad input refused naming the field; consents untouched")
    func dataSources() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let (study1, _) = try await Self.seedWorld(world)
            #expect(study1.dataSources.map(\.name) == ["Glucose Diary"] && study1.dataSources[0].type == .app && study1.dataSources[0].id.count == 36)

            var add = Orgd_V1_UpdateConsentRequestRequest()
            add.id = study1.id
            add.version = study1.version
            add.addDataSources = [Self.source("Libre sensor", .device), Self.source("Step counter", .app)]
            let added = try await world.managerClient.consents.updateConsentRequest(add)
            #expect(added.version == study1.version + 1)
            #expect(added.dataSources.map(\.name) == ["Glucose Diary", "Libre sensor", "Step counter"])

            var remove = Orgd_V1_UpdateConsentRequestRequest()
            remove.id = study1.id
            remove.version = added.version
            remove.removeDataSourceIds = [added.dataSources[0].id]
            let removed = try await world.managerClient.consents.updateConsentRequest(remove)
            #expect(removed.version == added.version + 1 && removed.dataSources.map(\.name) == ["Libre sensor", "Step counter"])
            var get = Orgd_V1_GetConsentRequestRequest()
            get.id = study1.id
            #expect(try await world.managerClient.consents.getConsentRequest(get).dataSources == removed.dataSources)

            // Consents are about scopes: the patient's answer and the access it grants are unchanged.
            let view = try await Self.view(world)
            #expect(view.studies.first?.scopeConsents.first?.consented == true)
            #expect(view.studies.first?.dataSources.map(\.name) == ["Libre sensor", "Step counter"])

            var base = Orgd_V1_UpdateConsentRequestRequest()
            base.id = study1.id
            base.version = removed.version
            let duplicate = await Self.refused(world, { var u = base; u.addDataSources = [Self.source("libre SENSOR", .app)]; return u }())
            #expect(duplicate?.code == .alreadyExists && duplicate?.fieldViolations.map(\.field) == ["add_data_sources[0].name"])
            let twice = await Self.refused(world, { var u = base; u.addDataSources = [Self.source("Scale", .device), Self.source("SCALE", .device)]; return u }())
            #expect(twice?.code == .alreadyExists && twice?.fieldViolations.map(\.field) == ["add_data_sources[1].name"])
            let blank = await Self.refused(world, { var u = base; u.addDataSources = [Self.source(" Scale", .device)]; return u }())
            #expect(blank?.code == .invalidArgument && blank?.fieldViolations.map(\.field) == ["add_data_sources[0].name"])
            let untyped = await Self.refused(world, { var u = base; u.addDataSources = [Self.source("Scale", .unspecified)]; return u }())
            #expect(untyped?.code == .invalidArgument && untyped?.fieldViolations.map(\.field) == ["add_data_sources[0].type"])
            let tooMany = await Self.refused(world, { var u = base; u.addDataSources = (1...19).map { Self.source("Source \($0)", .app) }; return u }())
            #expect(tooMany?.code == .invalidArgument && tooMany?.fieldViolations.map(\.field) == ["add_data_sources"])
            let unknown = await Self.refused(world, { var u = base; u.removeDataSourceIds = [UUID().uuidString.lowercased()]; return u }())
            #expect(unknown?.code == .notFound && unknown?.fieldViolations.map(\.field) == ["remove_data_source_ids[0]"])
            let otherRequests = await Self.refused(world, { var u = base; u.removeDataSourceIds = [study1.id]; return u }())
            #expect(otherRequests?.code == .notFound)
            // Nothing was half written: the version and data sources are as before.
            let after = try await world.managerClient.consents.getConsentRequest(get)
            #expect(after.version == removed.version && after.dataSources == removed.dataSources)

            var create = Orgd_V1_CreateConsentRequestRequest()
            create.organizationID = world.organization.id
            create.kind = .study
            create.name = "Too many sources"
            create.scopes = [ConsentWorld.reference(world.bloodGlucose)]
            create.dataSources = (0...20).map { Self.source("Source \($0)", .app) }
            #expect(await rpcError { _ = try await world.managerClient.consents.createConsentRequest(create) }?.fieldViolations.map(\.field) == ["data_sources"])
            create.dataSources = [Self.source("Scale", .app), Self.source("scale", .device)]
            #expect(await rpcError { _ = try await world.managerClient.consents.createConsentRequest(create) }?.code == .alreadyExists)
        }
    }

    static func refused(_ world: ConsentWorld, _ update: Orgd_V1_UpdateConsentRequestRequest) async -> RPCError? {
        await rpcError { _ = try await world.managerClient.consents.updateConsentRequest(update) }
    }

    @Test("a study shows its period and ended flag; EndConsentRequest ends it: ended: true, and no longer pending")
    func periodAndEnded() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3600).rounded(.down))
            let end = start.addingTimeInterval(30 * 86_400)
            let running = try await world.request("Running", [world.bloodGlucose], start: start, end: end)
            let pending = try await world.request("Pending", [world.bloodPressure])
            try await world.ask(running)
            try await world.ask(pending)
            _ = try await world.answer(running, [(world.bloodGlucose, true)])

            var view = try await Self.view(world)
            let study = try #require(view.studies.first)
            #expect(study.startTime.date == start && study.endTime.date == end && !study.ended)
            #expect(view.studiesPendingConsent.first.map { !$0.hasStartTime && !$0.hasEndTime && !$0.ended } == true)

            for request in [running, pending] {
                var endIt = Orgd_V1_EndConsentRequestRequest()
                endIt.id = request.id
                _ = try await world.managerClient.consents.endConsentRequest(endIt)
            }
            view = try await Self.view(world)
            #expect(view.studies.map(\.id) == [running.id] && view.studies[0].ended && view.studies[0].endTime.date <= Date())
            #expect(view.studiesPendingConsent.isEmpty, "an ended request cannot be answered")
            let ended = try #require((try Self.json(view)["studies"] as? [[String: Any]])?.first)
            #expect(ended["ended"] as? Bool == true && ended["endTime"] is String && ended["startTime"] is String)
        }
    }

    @Test("a deactivated organisation's pending request leaves studiesPendingConsent (answering is FAILED_PRECONDITION) and comes back on reactivation; consented ones stay, inactive, and can be revoked")
    func deactivatedOrganization() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let (study1, study2) = try await Self.seedWorld(world)
            var deactivate = Orgd_V1_DeactivateOrganizationRequest()
            deactivate.id = world.organization.id
            _ = try await world.local.organizations.deactivateOrganization(deactivate)

            var view = try await Self.view(world)
            #expect(view.studiesPendingConsent.isEmpty)
            #expect(view.studies.map(\.id) == [study1.id] && view.studies[0].organization.active == false)
            let answering = await rpcError { _ = try await world.answer(study2, [(world.bloodPressure, true)]) }
            #expect(answering?.code == .failedPrecondition)
            let revoked = try await world.patientClient.consents.revokeConsents(ConsentWorld.answers(world.patient.id, study1.id, [(world.bloodGlucose, nil)]))
            #expect(revoked.studies.isEmpty && revoked.studiesPendingConsent.isEmpty)

            var reactivate = Orgd_V1_ReactivateOrganizationRequest()
            reactivate.id = world.organization.id
            _ = try await world.local.organizations.reactivateOrganization(reactivate)
            view = try await Self.view(world)
            #expect(Set(view.studiesPendingConsent.map(\.id)) == [study1.id, study2.id])
            #expect(view.studiesPendingConsent.allSatisfy { $0.organization.active })
            _ = try await world.answer(study2, [(world.bloodPressure, true)])
        }
    }
}
