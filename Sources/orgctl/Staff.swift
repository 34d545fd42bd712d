import ArgumentParser
import OrgdClient
import OrgdProto

struct Staff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An organisation's staff: add, update, remove (admin), list (admin or its membership managers).",
        subcommands: [Add.self, Update.self, Remove.self, List.self]
    )

    static func show(_ member: Orgd_V1_StaffMembership, format: OutputFormat) throws {
        if format != .table { return try Output.emit(member, format) }
        Output.fields([
            ("organization", member.organizationID), ("user", member.userID), ("email", member.user.email),
            ("roles", Names.roles(member.roles)), ("primary", "\(member.isPrimary)"),
        ])
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user to an organisation's staff.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "User id.") var user: String
        @Option(help: "Comma-separated: agent, membership_manager.", completion: Names.completion(Names.staffRoles)) var roles: String
        @Flag(help: "Make this the user's primary organisation (their landing context).") var primary = false
        @Option(help: "Idempotency key: repeating the command with it adds once.") var idempotencyKey: String?

        func run() async throws {
            var request = Orgd_V1_AddStaffMemberRequest()
            request.organizationID = organization
            request.userID = user
            request.roles = try Names.roles(roles)
            request.isPrimary = primary
            var options = connection.callOptions
            options.idempotencyKey = idempotencyKey
            try await connection.run { client in
                try Staff.show(try await client.memberships.addStaffMember(request, options: options), format: connection.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a staff member's roles or primary flag.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "User id.") var user: String
        @Option(help: "Replace the roles: comma-separated agent, membership_manager.", completion: Names.completion(Names.staffRoles)) var roles: String?
        @Option(help: "true or false.") var primary: Bool?

        func run() async throws {
            var request = Orgd_V1_UpdateStaffMemberRequest()
            request.organizationID = organization
            request.userID = user
            if let roles { request.roles = try Names.roles(roles) }
            if let primary { request.isPrimary = primary }
            try await connection.run { client in
                try Staff.show(try await client.memberships.updateStaffMember(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a user from an organisation's staff.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "User id.") var user: String

        func run() async throws {
            var request = Orgd_V1_RemoveStaffMemberRequest()
            request.organizationID = organization
            request.userID = user
            try await connection.run { client in
                let response = try await client.memberships.removeStaffMember(request, options: connection.callOptions)
                if connection.output == .table { print("removed user \(user) from organization \(organization)") } else if connection.output != .id { try Output.emit(response, connection.output) }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List an organisation's staff.")
        @OptionGroup var connection: ConnectionOptions
        @Option(name: .customLong("org"), help: "Organisation id.") var organization: String
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 0
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListStaffMembersRequest()
            request.organizationID = organization
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.memberships.listStaffMembers(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["USER", "EMAIL", "NAME", "ROLES", "PRIMARY"], response.members.map {
                    [$0.userID, $0.user.email, "\($0.user.givenName) \($0.user.familyName)", Names.roles($0.roles), "\($0.isPrimary)"]
                })
                print("\(response.totalCount) in all" + (response.nextPageToken.isEmpty ? "" : "; next page: --page-token \(response.nextPageToken)"))
            }
        }
    }
}
