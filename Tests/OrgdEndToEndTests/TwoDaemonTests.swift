import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdStore
import OrgdTestSupport
import Testing

/// Two orgd over one PostgreSQL database, each with its own connection
/// pool, driven with conflicting writes at the same moment: the invariants
/// hold, and every caller hears the truth — OK only for what committed.
@Suite("two daemons over one PostgreSQL database", .enabled(if: TestDatabase.postgresURL != nil, "needs ORGD_TEST_POSTGRES_URL"), .timeLimit(.minutes(5)))
struct TwoDaemonTests {
    /// Runs `body` with two daemons over one fresh database.
    static func withTwoDaemons(_ body: (TestDaemon, TestDaemon) async throws -> Void) async throws {
        let database = try await TestDatabase.freshPostgres()
        let first = try await TestDaemon.start(postgresURL: database.url)
        let second: TestDaemon
        do {
            second = try await TestDaemon.start(postgresURL: database.url)
        } catch {
            await first.stop()
            await database.drop()
            throw error
        }
        do {
            try await body(first, second)
        } catch {
            await first.stop()
            await second.stop()
            await database.drop()
            throw error
        }
        await first.stop()
        await second.stop()
        await database.drop()
    }

    /// The outcome of a call: OK, or its status code.
    static func outcome<T>(_ body: () async throws -> T) async -> (code: StatusCode, value: T?) {
        do {
            return (.ok, try await body())
        } catch let error as RPCError {
            return (error.code, nil)
        } catch {
            return (.unknown, nil)
        }
    }

    /// What `user` belongs to, read with a token of their own.
    static func organizations(of user: String, _ admin: OrgdClient, _ daemon: TestDaemon) async throws -> Orgd_V1_ListMyOrganizationsResponse {
        let token = try await MembershipEndToEndTests.token(admin, user: user)
        let client = try await OrgdClient.connect(to: daemon.unix, token: token)
        defer { Task { await client.close() } }
        return try await client.memberships.listMyOrganizations()
    }

    @Test("two daemons set different primary organisations for one user at once: exactly one is primary, and it is one whose caller heard OK")
    func primaryRace() async throws {
        try await Self.withTwoDaemons { one, two in
            let setup = try await one.client()
            let a = try await MembershipEndToEndTests.organization(setup, "Race A")
            let b = try await MembershipEndToEndTests.organization(setup, "Race B")
            let user = try await MembershipEndToEndTests.user(setup)
            try await MembershipEndToEndTests.addStaff(setup, a.id, user.id, [.agent])
            try await MembershipEndToEndTests.addStaff(setup, b.id, user.id, [.agent])
            let first = try await one.client()
            let second = try await two.client()
            for _ in 0..<15 {
                func makePrimary(_ client: OrgdClient, _ organization: String) async -> StatusCode {
                    var request = Orgd_V1_UpdateStaffMemberRequest()
                    request.organizationID = organization
                    request.userID = user.id
                    request.isPrimary = true
                    return await Self.outcome { try await client.memberships.updateStaffMember(request) }.code
                }
                async let toA = makePrimary(first, a.id)
                async let toB = makePrimary(second, b.id)
                let (codeA, codeB) = await (toA, toB)
                #expect([codeA, codeB].allSatisfy { $0 == .ok || $0 == .aborted }, "OK, or ABORTED after the retries: \(codeA) \(codeB)")
                let mine = try await Self.organizations(of: user.id, setup, one)
                let primaries = mine.asStaff.filter(\.isPrimary).map(\.organizationID)
                #expect(primaries.count == 1, "exactly one primary, got \(primaries)")
                if let winner = primaries.first {
                    #expect((winner == a.id && codeA == .ok) || (winner == b.id && codeB == .ok), "the primary is one a caller was told OK for")
                }
            }
            for client in [setup, first, second] { await client.close() }
        }
    }

    @Test("two daemons invite the same e-mail at once: one pending invitation and one user; each caller heard OK or a precise refusal")
    func inviteRace() async throws {
        try await Self.withTwoDaemons { one, two in
            let world = try await ConsentWorld.make(one)
            let managerOnTwo = try await two.client(two.tcp, token: try await MembershipEndToEndTests.token(world.local, user: world.manager.id))
            for round in 0..<8 {
                let email = "race\(round)-\(UUID().uuidString.prefix(6))@example.org"
                let request = InvitationEndToEndTests.inviteRequest(world.organization.id, email)
                async let first = Self.outcome { try await world.managerClient.invitations.inviteMember(request) }
                async let second = Self.outcome { try await managerOnTwo.invitations.inviteMember(request) }
                let outcomes = await [first, second]
                #expect(outcomes.contains { $0.code == .ok }, "one of them invited")
                #expect(outcomes.allSatisfy { [.ok, .alreadyExists, .failedPrecondition, .aborted].contains($0.code) }, "\(outcomes.map(\.code))")
                var list = Orgd_V1_ListInvitationsRequest()
                list.organizationID = world.organization.id
                let pending = try await world.managerClient.invitations.listInvitations(list).invitations.filter { $0.email == email && $0.status == .pending }
                #expect(pending.count == 1, "one pending invitation for \(email)")
                var users = Orgd_V1_ListUsersRequest()
                users.emailPrefix = email
                #expect(try await world.local.memberships.listUsers(users).users.count == 1, "one user for \(email)")
            }
            await managerOnTwo.close()
        }
    }

    @Test("two daemons accept the same invitation token at once: exactly one OK, one membership")
    func acceptRace() async throws {
        try await Self.withTwoDaemons { one, two in
            let world = try await ConsentWorld.make(one)
            let mailer = try await one.serviceToken(role: .none, name: "mailer", mailer: true)
            let mailerClient = try await one.client(one.tcp, token: mailer.secret)
            let localTwo = try await two.client()
            for round in 0..<6 {
                let email = "accept\(round)-\(UUID().uuidString.prefix(6))@example.org"
                let invited = try await world.managerClient.invitations.inviteMember(InvitationEndToEndTests.inviteRequest(world.organization.id, email))
                var claim = Orgd_V1_ClaimOutboxRequest()
                claim.mailerID = "m"
                let message = try #require(try await mailerClient.invitations.claimOutbox(claim).messages.first { $0.recipient == email })
                var accept = Orgd_V1_AcceptInvitationRequest()
                accept.token = message.token
                let request = accept
                async let first = Self.outcome { try await world.local.invitations.acceptInvitation(request) }
                async let second = Self.outcome { try await localTwo.invitations.acceptInvitation(request) }
                let outcomes = await [first, second]
                #expect(outcomes.filter { $0.code == .ok }.count == 1, "exactly one accepted: \(outcomes.map(\.code))")
                #expect(outcomes.allSatisfy { [.ok, .failedPrecondition, .notFound, .aborted].contains($0.code) }, "\(outcomes.map(\.code))")
                let mine = try await Self.organizations(of: invited.id, world.local, one)
                #expect(mine.asStaff.filter { $0.organizationID == world.organization.id }.count == 1)
            }
            await mailerClient.close()
            await localTwo.close()
        }
    }

    @Test("two daemons answer the same consent at once: one answer, one history entry, and the callers told so")
    func answerRace() async throws {
        try await Self.withTwoDaemons { one, two in
            let world = try await ConsentWorld.make(one)
            let patientOnTwo = try await two.client(two.tcp, token: try await MembershipEndToEndTests.token(world.local, user: world.patientUser.id))
            for round in 0..<6 {
                let study = try await world.request("Race \(round)", [world.bloodPressure])
                try await world.ask(study)
                let body = ConsentWorld.answers(world.patient.id, study.id, [(world.bloodPressure, true)])
                async let first = Self.outcome { try await world.patientClient.consents.answerConsents(body) }
                async let second = Self.outcome { try await patientOnTwo.consents.answerConsents(body) }
                let outcomes = await [first, second]
                #expect(outcomes.filter { $0.code == .ok }.count == 1, "exactly one answer: \(outcomes.map(\.code))")
                #expect(outcomes.allSatisfy { [.ok, .failedPrecondition, .aborted].contains($0.code) }, "\(outcomes.map(\.code))")
                var history = Orgd_V1_ListConsentHistoryRequest()
                history.patientID = world.patient.id
                history.pageSize = 1000
                let answered = try await world.patientClient.consents.listConsentHistory(history).entries.filter {
                    $0.consentRequestID == study.id && $0.action == "answered"
                }
                #expect(answered.count == 1, "one answer in history")
            }
            await patientOnTwo.close()
        }
    }

    @Test("a page token one daemon issued continues on the other (the key is the database's), and a follower of the feed sees both daemons' writes in one order")
    func sharedPagesAndFeed() async throws {
        try await Self.withTwoDaemons { one, two in
            let first = try await one.client()
            let second = try await two.client()
            for index in 0..<5 {
                _ = try await MembershipEndToEndTests.organization(index % 2 == 0 ? first : second, "Shared \(index)")
            }
            var request = Orgd_V1_ListOrganizationsRequest()
            request.pageSize = 2
            var names: [String] = []
            var onOne = true
            repeat {
                let page = try await (onOne ? first : second).organizations.listOrganizations(request)
                names += page.organizations.map(\.name)
                request.pageToken = page.nextPageToken
                onOne.toggle()
            } while !request.pageToken.isEmpty
            #expect(names == (0..<5).map { "Shared \($0)" })
            let fromOne = try await ChangeFeedTests.allChanges(first)
            let fromTwo = try await ChangeFeedTests.allChanges(second)
            #expect(fromOne.changes == fromTwo.changes && fromOne.latest == fromTwo.latest)
            #expect(fromOne.changes.filter { $0.kind == "organization" }.count == 5)
            // A write's consistency token from one daemon is good on the other.
            _ = try await MembershipEndToEndTests.organization(first, "Token")
            let token = try #require(first.connection.consistencyToken)
            #expect(try await second.organizations.listOrganizations(.init(), options: CallOptions(consistencyToken: token)).organizations.count == 6)
            await first.close()
            await second.close()
        }
    }

    @Test("one of two orgd processes is killed (SIGKILL) under writes: a client given both addresses goes on with the other, only calls in flight fail (UNAVAILABLE), and every write answered OK is there")
    func oneDaemonKilled() async throws {
        let database = try await TestDatabase.freshPostgres()
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var daemons: [DaemonProcess] = []
        for index in 0..<2 {
            let daemon = try DaemonProcess(directory: directory, arguments: ["--database", database.url, "--socket", "\(directory)/orgd\(index).sock"])
            _ = try await daemon.waitUntilListening(count: 1)
            daemons.append(daemon)
        }
        let client = try await OrgdClient.connect(to: [.unix(path: "\(directory)/orgd0.sock"), .unix(path: "\(directory)/orgd1.sock")])
        let killed = ManagedFlag()
        let victim = daemons[0]
        let writers = 4
        let results = try await withThrowingTaskGroup(of: (ok: [String], okAfterKill: Int, failures: [StatusCode]).self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var ok: [String] = []
                    var okAfterKill = 0
                    var failures: [StatusCode] = []
                    // Until each writer has had 10 writes through after the kill.
                    for index in 0..<400 where okAfterKill < 10 {
                        let wasKilled = killed.isSet
                        do {
                            ok.append(try await MembershipEndToEndTests.organization(client, "K\(writer)-\(index)").id)
                            if wasKilled { okAfterKill += 1 }
                        } catch let error as RPCError {
                            failures.append(error.code)
                        }
                    }
                    return (ok, okAfterKill, failures)
                }
            }
            group.addTask {
                // Kill the first daemon while writes are in flight on it.
                try await Task.sleep(for: .milliseconds(300))
                _ = try await victim.stop(signal: SIGKILL)
                killed.set()
                return ([], 0, [])
            }
            var all: [(ok: [String], okAfterKill: Int, failures: [StatusCode])] = []
            for try await result in group { all.append(result) }
            return all
        }
        let acknowledged = results.flatMap(\.ok)
        let failures = results.flatMap(\.failures)
        #expect(daemons[0].process.terminationReason == .uncaughtSignal)
        #expect(results.filter { !$0.ok.isEmpty }.allSatisfy { $0.okAfterKill >= 10 }, "every writer went on after the kill")
        #expect(failures.allSatisfy { $0 == .unavailable }, "\(failures)")
        #expect(failures.count <= writers, "at most the calls in flight at the kill fail: \(failures.count)")
        // Every write answered OK is in the database, read from the survivor.
        let survivor = try await OrgdClient.connect(to: .unix(path: "\(directory)/orgd1.sock"))
        var request = Orgd_V1_ListOrganizationsRequest()
        request.pageSize = 1000
        let stored = Set(try await survivor.organizations.listOrganizations(request).organizations.map(\.id))
        #expect(Set(acknowledged).isSubset(of: stored))
        #expect(stored.count <= acknowledged.count + failures.count, "nothing was written that no caller asked for")
        #expect(try await survivor.health.check().status == .serving)
        await survivor.close()
        await client.close()
        #expect(try await daemons[1].stop() == 0)
        await database.drop()
    }

    @Test("one of two daemons stops: the other keeps serving the same data")
    func oneDaemonGone() async throws {
        try await Self.withTwoDaemons { one, two in
            let local = try await one.client()
            let organization = try await MembershipEndToEndTests.organization(local, "Survivor")
            await local.close()
            await one.server.shutdown()
            let other = try await two.client()
            var get = Orgd_V1_GetOrganizationRequest()
            get.id = organization.id
            #expect(try await other.organizations.getOrganization(get).organization.name == "Survivor")
            _ = try await MembershipEndToEndTests.organization(other, "After")
            await other.close()
        }
    }
}
