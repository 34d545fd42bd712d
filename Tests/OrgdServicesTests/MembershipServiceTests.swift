import Foundation
import OrgdCore
import OrgdProto
import Testing

@Suite("MembershipService rules")
struct MembershipServiceTests {
    // MARK: Users

    @Test("users: defaults, e-mail unique in any case, a superadmin is made only by a superadmin")
    func createUsers() async throws {
        let harness = try await Harness()
        let user = try await harness.createUser("Ada@Example.org")
        #expect(user.systemRole == .none && user.status == .active && user.version == 1)
        let duplicate = await rpcError { _ = try await harness.createUser("ada@EXAMPLE.org") }
        #expect(duplicate?.code == .alreadyExists && duplicate?.fieldViolations.first?.field == "email")
        let admin = try await harness.userToken(role: .admin)
        let escalate = await rpcError { _ = try await harness.createUser(role: .superadmin, as: .token(admin.secret)) }
        #expect(escalate?.code == .permissionDenied)
        #expect(try await harness.createUser(role: .admin, as: .token(admin.secret)).systemRole == .admin)
        #expect(try await harness.createUser(role: .superadmin).systemRole == .superadmin)
    }

    @Test("invalid e-mail addresses are refused naming the field", arguments: [
        "", "plain", "a@b", "@example.org", "a@@example.org", "a b@example.org", "a@-bad.org", "a@example..org",
        String(repeating: "x", count: 65) + "@example.org",
    ])
    func invalidEmail(email: String) async throws {
        let harness = try await Harness()
        let error = await rpcError { _ = try await harness.createUser(email) }
        #expect(error?.code == .invalidArgument && error?.fieldViolations.first?.field == "email")
    }

    @Test("a user reads their own record and no one else's; admins read any")
    func readOwnRecord() async throws {
        let harness = try await Harness()
        let me = try await harness.userToken(role: .none)
        let other = try await harness.createUser()
        var request = Orgd_V1_GetUserRequest()
        request.id = me.user.id
        let own = try await harness.client(as: .token(me.secret)).memberships.getUser(request)
        #expect(own.id == me.user.id)
        request.id = other.id
        let error = await rpcError { _ = try await harness.client(as: .token(me.secret)).memberships.getUser(request) }
        #expect(error?.code == .permissionDenied)
        let admin = try await harness.userToken(role: .admin)
        _ = try await harness.client(as: .token(admin.secret)).memberships.getUser(request)
    }

    @Test("disabling a user stops their tokens on the very next call")
    func disableUser() async throws {
        let harness = try await Harness()
        let admin = try await harness.userToken(role: .admin)
        #expect(await harness.code(as: .token(admin.secret)) { try await $0.organizations.listOrganizations() } == .ok)
        var update = Orgd_V1_UpdateUserRequest()
        update.id = admin.user.id
        update.version = 1
        update.status = .disabled
        let disabled = try await harness.client().memberships.updateUser(update)
        #expect(disabled.status == .disabled && disabled.version == 2)
        #expect(await harness.code(as: .token(admin.secret)) { try await $0.organizations.listOrganizations() } == .unauthenticated)
    }

    @Test("an admin cannot change a superadmin; a stale version is ABORTED")
    func updateUserRules() async throws {
        let harness = try await Harness()
        let admin = try await harness.userToken(role: .admin)
        let boss = try await harness.createUser(role: .superadmin)
        var update = Orgd_V1_UpdateUserRequest()
        update.id = boss.id
        update.version = 1
        update.systemRole = .none
        let denied = await rpcError { _ = try await harness.client(as: .token(admin.secret)).memberships.updateUser(update) }
        #expect(denied?.code == .permissionDenied)
        let plain = try await harness.createUser()
        update.id = plain.id
        update.systemRole = .admin
        _ = try await harness.client(as: .token(admin.secret)).memberships.updateUser(update)
        let stale = await rpcError { _ = try await harness.client().memberships.updateUser(update) }
        #expect(stale?.code == .aborted)
    }

    @Test("users list by case-insensitive e-mail prefix and status, paged")
    func listUsers() async throws {
        let harness = try await Harness()
        for index in 0..<5 { _ = try await harness.createUser("team\(index)@clinic.org") }
        _ = try await harness.createUser("TEAM9@clinic.org", status: .invited)
        _ = try await harness.createUser("other@clinic.org")
        var request = Orgd_V1_ListUsersRequest()
        request.emailPrefix = "Team"
        request.pageSize = 4
        let first = try await harness.client().memberships.listUsers(request)
        request.pageToken = first.nextPageToken
        let second = try await harness.client().memberships.listUsers(request)
        #expect((first.users + second.users).map(\.email) == ["team0@clinic.org", "team1@clinic.org", "team2@clinic.org", "team3@clinic.org", "team4@clinic.org", "TEAM9@clinic.org"])
        #expect(second.nextPageToken.isEmpty)
        var invited = Orgd_V1_ListUsersRequest()
        invited.status = .invited
        let onlyInvited = try await harness.client().memberships.listUsers(invited)
        #expect(onlyInvited.users.map(\.email) == ["TEAM9@clinic.org"])
    }

    // MARK: Patients

    @Test("a patient record links to at most one user, and that user reads it")
    func patientLink() async throws {
        let harness = try await Harness()
        let person = try await harness.userToken(role: .none)
        let patient = try await harness.createPatient(userID: person.user.id)
        #expect(patient.userID == person.user.id)
        let again = await rpcError { _ = try await harness.createPatient(userID: person.user.id) }
        #expect(again?.code == .alreadyExists && again?.fieldViolations.first?.field == "user_id")
        let unknown = await rpcError { _ = try await harness.createPatient(userID: UUID().uuidString) }
        #expect(unknown?.code == .notFound && unknown?.fieldViolations.first?.field == "user_id")
        var get = Orgd_V1_GetPatientRequest()
        get.id = patient.id
        let own = try await harness.client(as: .token(person.secret)).memberships.getPatient(get)
        #expect(own == patient)
        let stranger = try await harness.userToken(role: .none)
        #expect(await rpcError { _ = try await harness.client(as: .token(stranger.secret)).memberships.getPatient(get) }?.code == .permissionDenied)
        var unlink = Orgd_V1_UpdatePatientRequest()
        unlink.id = patient.id
        unlink.version = 1
        unlink.removeUserID = true
        let refused = await rpcError { _ = try await harness.client().memberships.updatePatient(unlink) }
        #expect(refused?.code == .failedPrecondition && refused?.fieldViolations.first?.field == "remove_user_id")
    }

    @Test("a patient's login is set once, to a user with no system role, and never moved or removed — not even by a superadmin")
    func patientLoginIsSetOnce() async throws {
        let harness = try await Harness()
        let admin = try await harness.userToken(role: .admin)
        let person = try await harness.userToken(role: .none)
        let stranger = try await harness.userToken(role: .none)
        func update(_ patient: Orgd_V1_Patient, as caller: Harness.Caller = .local, _ change: (inout Orgd_V1_UpdatePatientRequest) -> Void) async throws -> Orgd_V1_Patient {
            var request = Orgd_V1_UpdatePatientRequest()
            request.id = patient.id
            request.version = patient.version
            change(&request)
            return try await harness.client(as: caller).memberships.updatePatient(request)
        }
        // An admin links a patient record to their own account: refused, at creation and later.
        let unlinked = try await harness.createPatient()
        let toAdmin = await rpcError { _ = try await update(unlinked, as: .token(admin.secret)) { $0.userID = admin.user.id } }
        #expect(toAdmin?.code == .failedPrecondition && toAdmin?.fieldViolations.first?.field == "user_id")
        let createdForAdmin = await rpcError { _ = try await harness.createPatient(userID: admin.user.id) }
        #expect(createdForAdmin?.code == .failedPrecondition && createdForAdmin?.fieldViolations.first?.field == "user_id")
        // Set once on a record without a login: allowed.
        let linked = try await update(unlinked) { $0.userID = person.user.id }
        #expect(linked.userID == person.user.id)
        // Naming the same login again is fine.
        let same = try await update(linked) { $0.userID = person.user.id }
        #expect(same.userID == person.user.id)
        // Moving it, or removing it, is refused, whoever asks.
        for caller in [Harness.Caller.local, .token(admin.secret)] {
            let moved = await rpcError { _ = try await update(same, as: caller) { $0.userID = stranger.user.id } }
            #expect(moved?.code == .failedPrecondition && moved?.message.contains("cannot be moved") == true)
            let removed = await rpcError { _ = try await update(same, as: caller) { $0.removeUserID = true } }
            #expect(removed?.code == .failedPrecondition)
        }
        let moveToAdmin = await rpcError { _ = try await update(same, as: .token(admin.secret)) { $0.userID = admin.user.id } }
        #expect(moveToAdmin?.code == .failedPrecondition)
        var get = Orgd_V1_GetPatientRequest()
        get.id = linked.id
        let stored = try await harness.client().memberships.getPatient(get)
        #expect(stored.userID == person.user.id)
        // And a patient's login is never given a system role afterwards.
        var promote = Orgd_V1_UpdateUserRequest()
        promote.id = person.user.id
        promote.version = person.user.version
        promote.systemRole = .admin
        let promoted = await rpcError { _ = try await harness.client().memberships.updateUser(promote) }
        #expect(promoted?.code == .failedPrecondition && promoted?.fieldViolations.first?.field == "system_role")
    }

    // MARK: Staff memberships

    @Test("staff: roles required, adding twice is ALREADY_EXISTS, the same idempotency key returns the first result")
    func addStaff() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Ward 1")
        let user = try await harness.createUser()
        let noRoles = await rpcError { _ = try await harness.addStaff(organization.id, user.id, roles: []) }
        #expect(noRoles?.code == .invalidArgument && noRoles?.fieldViolations.first?.field == "roles")
        let key = ["idempotency-key": "add-1"]
        let first = try await harness.addStaff(organization.id, user.id, roles: [.agent, .membershipManager], metadata: key)
        #expect(first.roles == [.membershipManager, .agent] && first.user.id == user.id)
        #expect(try await harness.addStaff(organization.id, user.id, roles: [.agent, .membershipManager], metadata: key) == first)
        #expect(await rpcError { _ = try await harness.addStaff(organization.id, user.id) }?.code == .alreadyExists)
        #expect(await rpcError { _ = try await harness.addStaff(organization.id, UUID().uuidString) }?.code == .notFound)
        #expect(await rpcError { _ = try await harness.addStaff(UUID().uuidString, user.id) }?.code == .notFound)
    }

    @Test("a deactivated organisation refuses new members; a disabled user cannot be added")
    func deactivatedRefuses() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Closed")
        var deactivate = Orgd_V1_DeactivateOrganizationRequest()
        deactivate.id = organization.id
        _ = try await harness.client().organizations.deactivateOrganization(deactivate)
        let user = try await harness.createUser()
        #expect(await rpcError { _ = try await harness.addStaff(organization.id, user.id) }?.code == .failedPrecondition)
        let patient = try await harness.createPatient()
        #expect(await rpcError { _ = try await harness.addPatient(organization.id, patient.id) }?.code == .failedPrecondition)
        let open = try await harness.createOrganization("Open")
        let disabled = try await harness.createUser(status: .disabled)
        #expect(await rpcError { _ = try await harness.addStaff(open.id, disabled.id) }?.code == .failedPrecondition)
    }

    @Test("at most one primary staff membership: a new primary clears the old one in the same change")
    func onePrimaryStaff() async throws {
        let harness = try await Harness()
        let a = try await harness.createOrganization("A")
        let b = try await harness.createOrganization("B")
        let c = try await harness.createOrganization("C")
        let user = try await harness.createUser()
        _ = try await harness.addStaff(a.id, user.id, primary: true)
        _ = try await harness.addStaff(b.id, user.id, primary: true)
        _ = try await harness.addStaff(c.id, user.id)
        func primaries() async throws -> [String] {
            var primary: [String] = []
            for organization in [a, b, c] where try await harness.listStaff(organization.id).members.first?.isPrimary == true {
                primary.append(organization.name)
            }
            return primary
        }
        #expect(try await primaries() == ["B"])
        var update = Orgd_V1_UpdateStaffMemberRequest()
        update.organizationID = c.id
        update.userID = user.id
        update.isPrimary = true
        _ = try await harness.client().memberships.updateStaffMember(update)
        #expect(try await primaries() == ["C"])
        update.isPrimary = false
        _ = try await harness.client().memberships.updateStaffMember(update)
        #expect(try await primaries() == [])
    }

    @Test("update replaces roles; remove makes the membership NOT_FOUND")
    func updateAndRemoveStaff() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Ward")
        let user = try await harness.createUser()
        _ = try await harness.addStaff(organization.id, user.id, roles: [.membershipManager])
        var update = Orgd_V1_UpdateStaffMemberRequest()
        update.organizationID = organization.id
        update.userID = user.id
        update.roles = [.agent]
        let updated = try await harness.client().memberships.updateStaffMember(update)
        #expect(updated.roles == [.agent])
        var remove = Orgd_V1_RemoveStaffMemberRequest()
        remove.organizationID = organization.id
        remove.userID = user.id
        _ = try await harness.client().memberships.removeStaffMember(remove)
        #expect(await rpcError { _ = try await harness.client().memberships.removeStaffMember(remove) }?.code == .notFound)
        #expect(try await harness.listStaff(organization.id).totalCount == 0)
    }

    @Test("member lists are paged in joining order with exact counts; GetOrganization carries both")
    func listsAndCounts() async throws {
        let harness = try await Harness()
        let organization = try await harness.createOrganization("Busy Ward")
        var users: [String] = []
        for _ in 0..<5 { users.append(try await harness.createUser().id) }
        for user in users { _ = try await harness.addStaff(organization.id, user) }
        for _ in 0..<3 { _ = try await harness.addPatient(organization.id, try await harness.createPatient().id) }
        let first = try await harness.listStaff(organization.id, pageSize: 2)
        let second = try await harness.listStaff(organization.id, pageSize: 2, token: first.nextPageToken)
        let third = try await harness.listStaff(organization.id, pageSize: 2, token: second.nextPageToken)
        #expect((first.members + second.members + third.members).map(\.userID) == users)
        #expect(first.totalCount == 5 && third.nextPageToken.isEmpty)

        var get = Orgd_V1_GetOrganizationRequest()
        get.id = organization.id
        get.staffPageSize = 3
        let page = try await harness.client().organizations.getOrganization(get)
        #expect(page.staffCount == 5 && page.staff.count == 3 && !page.nextStaffPageToken.isEmpty)
        #expect(page.patientCount == 3 && page.patients.count == 3 && page.nextPatientPageToken.isEmpty)
        get.staffPageToken = page.nextStaffPageToken
        let rest = try await harness.client().organizations.getOrganization(get)
        #expect(rest.staff.map(\.userID) == Array(users.suffix(2)))
        get.staffPageToken = first.nextPageToken.isEmpty ? "x" : "garbage!"
        #expect(await rpcError { _ = try await harness.client().organizations.getOrganization(get) }?.fieldViolations.first?.field == "staff_page_token")
    }

    @Test("a membership manager lists their own organisation's members only; an agent lists none")
    func managerListsOwnMembers() async throws {
        let harness = try await Harness()
        let mine = try await harness.createOrganization("Mine")
        let theirs = try await harness.createOrganization("Theirs")
        let manager = try await harness.userToken(role: .none)
        let agent = try await harness.userToken(role: .none)
        _ = try await harness.addStaff(mine.id, manager.user.id, roles: [.membershipManager])
        _ = try await harness.addStaff(mine.id, agent.user.id, roles: [.agent])
        #expect(try await harness.listStaff(mine.id, as: .token(manager.secret)).totalCount == 2)
        #expect(await rpcError { _ = try await harness.listStaff(theirs.id, as: .token(manager.secret)) }?.code == .permissionDenied)
        #expect(await rpcError { _ = try await harness.listStaff(mine.id, as: .token(agent.secret)) }?.code == .permissionDenied)
        // A manager changes nothing directly (seed 001: direct changes are admin only).
        let newcomer = try await harness.createUser()
        #expect(await rpcError { _ = try await harness.addStaff(mine.id, newcomer.id, as: .token(manager.secret)) }?.code == .permissionDenied)
    }

    @Test("listing staff never reads the patient table, and listing patients never reads staff or users")
    func segregation() async throws {
        let harness = try await Harness(recordSQL: true)
        let organization = try await harness.createOrganization("Segregated")
        _ = try await harness.addStaff(organization.id, try await harness.createUser().id)
        _ = try await harness.addPatient(organization.id, try await harness.createPatient().id)

        harness.statements.withLockedValue { $0.removeAll() }
        _ = try await harness.listStaff(organization.id)
        let staffSQL = harness.statements.withLockedValue { $0 }.joined(separator: "\n")
        #expect(staffSQL.contains("organization_staff_member"))
        #expect(!staffSQL.contains("patient"))

        harness.statements.withLockedValue { $0.removeAll() }
        var request = Orgd_V1_ListPatientMembersRequest()
        request.organizationID = organization.id
        _ = try await harness.client().memberships.listPatientMembers(request)
        let patientSQL = harness.statements.withLockedValue { $0 }.joined(separator: "\n")
        #expect(patientSQL.contains("organization_patient_member"))
        #expect(!patientSQL.contains("staff"))
        #expect(patientSQL.range(of: #"\b(FROM|JOIN) user\b"#, options: .regularExpression) == nil)
    }

    // MARK: The caller's own view

    @Test("profile: the user and their patient record; a service acting for them sees the same; the operator has none")
    func profile() async throws {
        let harness = try await Harness()
        let person = try await harness.userToken(role: .none)
        let patient = try await harness.createPatient(userID: person.user.id)
        let mine = try await harness.client(as: .token(person.secret)).memberships.getProfile()
        #expect(mine.id == person.user.id && mine.email == person.user.email && mine.firstName == person.user.givenName && mine.lastName == person.user.familyName && mine.patient == patient)
        let bff = try await harness.serviceToken(role: .none, mayActAs: true)
        let acted = try await harness.client(as: .token(bff.secret, actAs: person.user.id)).memberships.getProfile()
        #expect(acted == mine)
        let staffOnly = try await harness.userToken(role: .none)
        let noPatient = try await harness.client(as: .token(staffOnly.secret)).memberships.getProfile()
        #expect(!noPatient.hasPatient)
        #expect(await rpcError { _ = try await harness.client().memberships.getProfile() }?.code == .failedPrecondition)
    }

    @Test("my organisations: as staff with roles, as a patient, and the landing organisation")
    func myOrganizations() async throws {
        let harness = try await Harness()
        let person = try await harness.userToken(role: .none)
        let patient = try await harness.createPatient(userID: person.user.id)
        let work = try await harness.createOrganization("Work", type: .hospitalTeam)
        let side = try await harness.createOrganization("Side job")
        let gp = try await harness.createOrganization("My GP")
        _ = try await harness.addStaff(side.id, person.user.id, roles: [.membershipManager])
        _ = try await harness.addStaff(work.id, person.user.id, roles: [.agent], primary: true)
        _ = try await harness.addPatient(gp.id, patient.id, primary: true)
        let mine = try await harness.client(as: .token(person.secret)).memberships.listMyOrganizations()
        #expect(mine.asStaff.map(\.name) == ["Work", "Side job"])
        #expect(mine.asStaff.map(\.roles) == [[.agent], [.membershipManager]])
        #expect(mine.asPatient.map(\.name) == ["My GP"])
        #expect(mine.primaryOrganizationID == work.id)

        // With no primary staff membership, a patient lands in their primary organisation.
        var update = Orgd_V1_UpdateStaffMemberRequest()
        update.organizationID = work.id
        update.userID = person.user.id
        update.isPrimary = false
        _ = try await harness.client().memberships.updateStaffMember(update)
        let after = try await harness.client(as: .token(person.secret)).memberships.listMyOrganizations()
        #expect(after.primaryOrganizationID == gp.id)
    }

    @Test("at most one primary patient membership")
    func onePrimaryPatient() async throws {
        let harness = try await Harness()
        let a = try await harness.createOrganization("A")
        let b = try await harness.createOrganization("B")
        let patient = try await harness.createPatient()
        _ = try await harness.addPatient(a.id, patient.id, primary: true)
        _ = try await harness.addPatient(b.id, patient.id, primary: true)
        var list = Orgd_V1_ListPatientMembersRequest()
        list.organizationID = a.id
        let inA = try await harness.client().memberships.listPatientMembers(list)
        list.organizationID = b.id
        let inB = try await harness.client().memberships.listPatientMembers(list)
        #expect(inA.members.map(\.isPrimary) == [false] && inB.members.map(\.isPrimary) == [true])
    }
}
