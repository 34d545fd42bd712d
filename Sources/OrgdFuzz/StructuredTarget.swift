// The structured fuzz target (ORGD_FUZZ_TARGET=structured, scripts/fuzz):
// every input is one call of one RPC by one kind of caller against a store
// seeded with a small world, built as a well-typed request of that method's
// type. Frames and envelopes are the other target's job; this one goes
// deep into the services, their validation and the store.
//
// Input layout:
//   byte 0   the method: an index into `StructuredTarget.methods` (every RPC)
//   byte 1   the caller (low 3 bits), the dispatch entry point (bit 3:
//            the completion-based one with the read fast path, or the async
//            one), an idempotency key (bit 4), the build mode (bits 5-6)
//   rest     the request. Mode 0: protobuf bytes (decoded partial). Mode 1:
//            structured, through `FuzzDecoder`. Mode 2: a length byte, that
//            many protobuf bytes, then structured changes on top of them.
import Dispatch
import Foundation
import Logging
import OrgdCore
import OrgdProto
import OrgdServices
import OrgdStore
import OrgdWire
import SwiftProtobuf

enum StructuredTarget {
    /// Every RPC the dispatcher serves and its request type, from the
    /// generated surface (so a new RPC cannot go unfuzzed), in a fixed order.
    static let methods: [(name: String, type: any SwiftProtobuf.Message.Type)] = {
        var logger = Logger(label: "orgd.fuzz")
        logger.logLevel = .critical
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-fuzz-methods-\(getpid())")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try! Store(path: directory.appendingPathComponent("orgd.sqlite").path, durability: .normal, logger: logger)
        defer { try? store.close() }
        return Dispatcher(store: store, logger: logger).methods.map { ($0.fullName, $0.inputType) }
    }()

    /// Inputs per world: then a fresh store is seeded, so that what earlier
    /// inputs did to the world (a disabled manager, a deactivated
    /// organisation) does not narrow what later ones can reach.
    static let inputsPerWorld = 20_000

    /// ORGD_FUZZ_INTERNAL_IS_CRASH=1: an INTERNAL or UNKNOWN answer stops
    /// the run like a crash (by hand: some are expected, e.g. a full disk).
    static let internalIsCrash = ProcessInfo.processInfo.environment["ORGD_FUZZ_INTERNAL_IS_CRASH"] != nil

    /// ORGD_FUZZ_VERBOSE=1: each input's call, caller, size, answer and
    /// time on stderr (for replaying a finding by hand).
    static let verbose = ProcessInfo.processInfo.environment["ORGD_FUZZ_VERBOSE"] != nil

    nonisolated(unsafe) static var world: World?
    nonisolated(unsafe) static var inputs = 0

    static func run(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 2 else { return }
        if world == nil || inputs >= inputsPerWorld {
            world?.close()
            world = World()
            inputs = 0
        }
        inputs += 1
        world!.run(Array(bytes))
    }
}

/// Who calls.
enum FuzzCaller: CaseIterable {
    /// The Unix socket without a token: the local operator (superadmin).
    case local
    /// A user with the admin system role, over TCP.
    case admin
    /// The membership manager of the seeded organisation.
    case manager
    /// An agent of the seeded organisation (and manager of the second).
    case agent
    /// A patient who logs in.
    case patient
    /// A service account acting for the patient (orgd-act-as).
    case serviceForPatient
    /// A service account with no role, for itself.
    case service
    /// TCP with no token.
    case anonymous
}

/// One seeded store and its dispatcher.
final class World {
    let directory: URL
    let store: Store
    let dispatcher: Dispatcher
    /// Every seeded id, and other strings a caller could know (tokens of
    /// invitations, page tokens): the fuzzer picks strings from these.
    private(set) var ids: [String] = []
    private var tokens: [FuzzCaller: String] = [:]
    private var patientUserID = ""
    private var tokenIDs: [String] = []

    init() {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-fuzz-structured-\(getpid())-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "orgd.fuzz")
        logger.logLevel = .critical
        store = try! Store(path: directory.appendingPathComponent("orgd.sqlite").path, durability: .normal, logger: logger)
        dispatcher = Dispatcher(store: store, logger: logger)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) let world = self
        Task {
            await world.seed()
            done.signal()
        }
        done.wait()
    }

    func close() {
        try? store.close()
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: one input

    func run(_ bytes: [UInt8]) {
        let (name, type) = StructuredTarget.methods[Int(bytes[0]) % StructuredTarget.methods.count]
        let flags = bytes[1]
        let caller = FuzzCaller.allCases[Int(flags & 0x07)]
        let viaCompletion = flags & 0x08 == 0
        let idempotent = flags & 0x10 != 0
        let mode = Int(flags >> 5) & 0x03
        let started = ContinuousClock.now
        let payload = build(type, mode: mode, FuzzBytes(Array(bytes.dropFirst(2))))
        // The wire refuses frames past 4 MiB before any service sees them.
        guard payload.count <= FrameDecoder.defaultMaximumFrameLength - 64 * 1024 else { return }

        var request = Ttrpc_Request()
        let slash = name.firstIndex(of: "/")!
        request.service = String(name[..<slash])
        request.method = String(name[name.index(after: slash)...])
        request.payload = Data(payload)
        var metadata: [(String, String)] = []
        let transport: Transport
        switch caller {
        case .local: transport = .unix
        case .anonymous: transport = .tcp
        case .serviceForPatient:
            transport = .tcp
            metadata.append(("authorization", "Bearer \(tokens[caller] ?? "missing")"))
            metadata.append(("orgd-act-as", patientUserID))
        default:
            transport = .tcp
            metadata.append(("authorization", "Bearer \(tokens[caller] ?? "missing")"))
        }
        if idempotent { metadata.append(("idempotency-key", "fuzz-\(bytes.count % 4)")) }
        request.metadata = metadata.map { key, value in
            var entry = Ttrpc_KeyValue()
            entry.key = key
            entry.value = value
            return entry
        }
        let connection = ConnectionInfo(transport: transport, peer: "fuzz", connectionID: 1)
        let outcome = OutcomeBox()
        let done = DispatchSemaphore(value: 0)
        let dispatcher = self.dispatcher
        if viaCompletion {
            dispatcher.dispatch(request, connection: connection) { result in
                outcome.value = result
                done.signal()
            }
        } else {
            Task {
                outcome.value = await dispatcher.dispatch(request, connection: connection)
                done.signal()
            }
        }
        done.wait()
        let status = outcome.value!.status
        if StructuredTarget.verbose {
            let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18 + Double((ContinuousClock.now - started).components.seconds)
            FileHandle.standardError.write(Data("orgd-fuzz: \(name) as \(caller) via \(viaCompletion ? "completion" : "async"), mode \(mode), \(payload.count) payload bytes: \(status.code) \(status.message.prefix(200)) in \(String(format: "%.3f", seconds)) s\n".utf8))
        }
        // Whatever the input, the answer is a well-formed status, and an
        // unexpected error (INTERNAL, UNKNOWN) is a finding too.
        precondition((0...16).contains(status.code), "\(name): status code \(status.code)")
        if StructuredTarget.internalIsCrash {
            precondition(status.code != StatusCode.internal.rawValue && status.code != StatusCode.unknown.rawValue,
                         "\(name) as \(caller): \(status.code) \(status.message)")
        }
    }

    private func build<M: SwiftProtobuf.Message>(_: M.Type, mode: Int, _ input: FuzzBytes) -> [UInt8] {
        var input = input
        var message = M()
        switch mode {
        case 0:
            // Plain protobuf bytes; partial, so unset required fields pass.
            message = (try? M(serializedBytes: input.rest(), partial: true)) ?? M()
        case 2:
            let length = Int(input.byte())
            message = (try? M(serializedBytes: input.take(length), partial: true)) ?? M()
            fallthrough
        default:
            var decoder = FuzzDecoder(input, ids: ids)
            try? message.decodeMessage(decoder: &decoder)
        }
        return (try? message.serializedBytes(partial: true)) ?? []
    }

    // MARK: the seeded world

    /// An organisation with a membership manager, an agent, two patients (one
    /// who logs in), a second organisation, an admin user, two service
    /// accounts, two scopes, a study the patients were asked about and
    /// answered in part, an agency, and invitations (one claimed by the
    /// mailer, its token known). Failures are reported and skipped: the
    /// world is smaller then, never absent.
    private func seed() async {
        let openMHealth = "https://w3id.org/openmhealth"
        let orgA: Orgd_V1_Organization? = await rpc("orgd.v1.OrganizationService/CreateOrganization", Orgd_V1_CreateOrganizationRequest.with {
            $0.name = "Fuzz Practice"
            $0.type = Orgd_V1_OrganizationType(rawValue: 1) ?? .init()
        })
        let orgB: Orgd_V1_Organization? = await rpc("orgd.v1.OrganizationService/CreateOrganization", Orgd_V1_CreateOrganizationRequest.with {
            $0.name = "Fuzz Research"
            $0.type = Orgd_V1_OrganizationType(rawValue: 2) ?? .init()
        })
        func user(_ name: String, _ role: Orgd_V1_SystemRole = .none) async -> Orgd_V1_User? {
            await rpc("orgd.v1.MembershipService/CreateUser", Orgd_V1_CreateUserRequest.with {
                $0.email = "\(name)@fuzz.example.org"
                $0.givenName = name.capitalized
                $0.familyName = "Fuzz"
                $0.systemRole = role
                $0.status = .active
            })
        }
        let admin = await user("admin", .admin)
        let manager = await user("manager")
        let agent = await user("agent")
        let patientUser = await user("patient")
        let other = await user("other")
        func staff(_ org: Orgd_V1_Organization?, _ user: Orgd_V1_User?, _ roles: [Orgd_V1_StaffRole]) async {
            guard let org, let user else { return }
            let _: Orgd_V1_StaffMembership? = await rpc("orgd.v1.MembershipService/AddStaffMember", Orgd_V1_AddStaffMemberRequest.with {
                $0.organizationID = org.id
                $0.userID = user.id
                $0.roles = roles
            })
        }
        await staff(orgA, manager, [.membershipManager])
        await staff(orgA, agent, [.agent])
        await staff(orgB, agent, [.agent, .membershipManager])
        func patient(_ user: Orgd_V1_User?, _ family: String, in orgs: [Orgd_V1_Organization?]) async -> Orgd_V1_Patient? {
            let patient: Orgd_V1_Patient? = await rpc("orgd.v1.MembershipService/CreatePatient", Orgd_V1_CreatePatientRequest.with {
                $0.givenName = "Pat"
                $0.familyName = family
                $0.userID = user?.id ?? ""
            })
            for org in orgs {
                guard let org, let patient else { continue }
                let _: Orgd_V1_PatientMembership? = await rpc("orgd.v1.MembershipService/AddPatientMember", Orgd_V1_AddPatientMemberRequest.with {
                    $0.organizationID = org.id
                    $0.patientID = patient.id
                })
            }
            return patient
        }
        let patientA = await patient(patientUser, "Logsin", in: [orgA, orgB])
        let patientB = await patient(nil, "Offline", in: [orgA])
        func account(_ name: String, mayActAs: Bool) async -> Orgd_V1_ServiceAccount? {
            await rpc("orgd.v1.TokenService/CreateServiceAccount", Orgd_V1_CreateServiceAccountRequest.with {
                $0.name = name
                $0.systemRole = .none
                $0.mayActAs = mayActAs
            })
        }
        let actingService = await account("fuzz-portal", mayActAs: true)
        let dataService = await account("fuzz-data", mayActAs: false)
        func token(_ caller: FuzzCaller, user: Orgd_V1_User? = nil, account: Orgd_V1_ServiceAccount? = nil) async {
            let response: Orgd_V1_CreateTokenResponse? = await rpc("orgd.v1.TokenService/CreateToken", Orgd_V1_CreateTokenRequest.with {
                if let user { $0.userID = user.id }
                if let account { $0.serviceAccountID = account.id }
                $0.description_p = "fuzz \(caller)"
            })
            if let response {
                tokens[caller] = response.secret
                tokenIDs.append(response.token.id)
            }
        }
        await token(.admin, user: admin)
        await token(.manager, user: manager)
        await token(.agent, user: agent)
        await token(.patient, user: patientUser)
        await token(.serviceForPatient, account: actingService)
        await token(.service, account: dataService)
        patientUserID = patientUser?.id ?? ""
        func scope(_ code: String) async -> Orgd_V1_Scope? {
            await rpc("orgd.v1.ConsentService/CreateScope", Orgd_V1_CreateScopeRequest.with {
                $0.codingSystem = openMHealth
                $0.codingCode = code
                $0.text = "Fuzz \(code)"
            })
        }
        let scopes = [await scope("omh:fuzz-a:1.0"), await scope("omh:fuzz-b:1.0")].compactMap { $0 }
        let references = scopes.map { scope in Orgd_V1_ScopeRef.with {
            $0.codingSystem = scope.codingSystem
            $0.codingCode = scope.codingCode
        } }
        func consentRequest(_ kind: Orgd_V1_ConsentRequestKind, _ name: String) async -> Orgd_V1_ConsentRequest? {
            await rpc("orgd.v1.ConsentService/CreateConsentRequest", Orgd_V1_CreateConsentRequestRequest.with {
                $0.organizationID = orgA?.id ?? ""
                $0.kind = kind
                $0.name = name
                $0.scopes = references
            })
        }
        let study = await consentRequest(.study, "Fuzz Study")
        let agency = await consentRequest(.agency, "Fuzz Agency")
        if let study {
            let _: Orgd_V1_AskPatientsResponse? = await rpc("orgd.v1.ConsentService/AskPatients", Orgd_V1_AskPatientsRequest.with {
                $0.consentRequestID = study.id
                $0.patientIds = [patientA?.id, patientB?.id].compactMap { $0 }
            })
            if let patientA, let first = scopes.first {
                let _: Orgd_V1_PatientConsents? = await rpc("orgd.v1.ConsentService/AnswerConsents", token: tokens[.patient], Orgd_V1_ConsentAnswersRequest.with {
                    $0.patientID = patientA.id
                    $0.studyScopeConsents = [Orgd_V1_StudyScopeConsents.with {
                        $0.studyID = study.id
                        $0.scopeConsents = [Orgd_V1_ScopeAnswer.with {
                            $0.codingSystem = first.codingSystem
                            $0.codingCode = first.codingCode
                            $0.consented = true
                        }]
                    }]
                })
            }
        }
        func invite(_ name: String, _ role: String) async -> Orgd_V1_InviteMemberResponse? {
            await rpc("orgd.v1.InvitationService/InviteMember", Orgd_V1_InviteMemberRequest.with {
                $0.organizationID = orgA?.id ?? ""
                $0.title = "Dr"
                $0.givenName = name.capitalized
                $0.familyName = "Invitee"
                $0.email = "\(name)@fuzz.example.org"
                $0.role = role
            })
        }
        let invitations = [await invite("invitee-a", "agent"), await invite("invitee-b", "membership_manager")].compactMap { $0 }
        let claimed: Orgd_V1_ClaimOutboxResponse? = await rpc("orgd.v1.InvitationService/ClaimOutbox", Orgd_V1_ClaimOutboxRequest.with {
            $0.mailerID = "fuzz-mailer"
            $0.maxMessages = 1
        })
        let orgPage: Orgd_V1_ListOrganizationsResponse? = await rpc("orgd.v1.OrganizationService/ListOrganizations", Orgd_V1_ListOrganizationsRequest.with { $0.pageSize = 1 })
        let userPage: Orgd_V1_ListUsersResponse? = await rpc("orgd.v1.MembershipService/ListUsers", Orgd_V1_ListUsersRequest.with { $0.pageSize = 1 })

        // A fixed order, so that seed inputs can name them by index
        // (fuzz/corpus-structured/README.md): "" where seeding failed.
        ids = [orgA?.id, orgB?.id, admin?.id, manager?.id, agent?.id, patientUser?.id, other?.id,
               patientA?.id, patientB?.id, actingService?.id, dataService?.id, study?.id, agency?.id,
               scopes.first?.id, scopes.first?.codingCode, scopes.last?.id, scopes.last?.codingCode,
               invitations.first?.invitation.id, invitations.last?.invitation.id,
               claimed?.messages.first?.id, claimed?.messages.first?.token,
               orgPage?.nextPageToken, userPage?.nextPageToken, "fuzz-mailer"].map { $0 ?? "" }
        ids += tokenIDs
        if StructuredTarget.verbose {
            FileHandle.standardError.write(Data("orgd-fuzz: seeded \(ids.count) ids, \(tokens.count) tokens\n".utf8))
        }
    }

    /// One call as the local operator, or over TCP with `token`; the
    /// response, or nil (reported).
    private func rpc<R: SwiftProtobuf.Message>(_ name: String, token: String? = nil, _ message: some SwiftProtobuf.Message) async -> R? {
        var request = Ttrpc_Request()
        let slash = name.firstIndex(of: "/")!
        request.service = String(name[..<slash])
        request.method = String(name[name.index(after: slash)...])
        request.payload = (try? message.serializedData()) ?? Data()
        if let token {
            var entry = Ttrpc_KeyValue()
            entry.key = "authorization"
            entry.value = "Bearer \(token)"
            request.metadata = [entry]
        }
        let connection = ConnectionInfo(transport: token == nil ? .unix : .tcp, peer: "fuzz-seed", connectionID: 0)
        let outcome = await dispatcher.dispatch(request, connection: connection)
        guard outcome.code == .ok, let response = try? R(serializedBytes: outcome.payload) else {
            FileHandle.standardError.write(Data("orgd-fuzz: seeding \(name) failed: \(outcome.status.code) \(outcome.status.message)\n".utf8))
            return nil
        }
        return response
    }
}

/// Carries one outcome from the dispatcher's thread to the fuzzer's (the
/// semaphore orders the two).
private final class OutcomeBox: @unchecked Sendable {
    var value: CallOutcome?
}
