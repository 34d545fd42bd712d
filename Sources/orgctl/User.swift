import ArgumentParser
import OrgdClient
import OrgdProto

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, read, change and list users (admin; a user may read their own record).",
        subcommands: [Create.self, Get.self, Update.self, List.self]
    )

    static func show(_ user: Orgd_V1_User, json: Bool) throws {
        if json { return try Output.json(user) }
        Output.fields([
            ("id", user.id), ("email", user.email), ("name", "\(user.title) \(user.givenName) \(user.familyName)".trimmingCharacters(in: .whitespaces)),
            ("role", Names.name(user.systemRole, in: Names.systemRoles)), ("status", Names.name(user.status, in: Names.userStatuses)),
            ("version", "\(user.version)"),
        ])
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var connection: ConnectionOptions
        @Option var email: String
        @Option var title: String = ""
        @Option var givenName: String
        @Option var familyName: String
        @Option(help: "none, admin or superadmin.") var role: String = "none"
        @Option(help: "invited, active or disabled.") var status: String = "active"

        func run() async throws {
            var request = Orgd_V1_CreateUserRequest()
            request.email = email
            request.title = title
            request.givenName = givenName
            request.familyName = familyName
            request.systemRole = try Names.parse(role, in: Names.systemRoles, option: "--role")
            request.status = try Names.parse(status, in: Names.userStatuses, option: "--status")
            try await connection.run { client in
                try User.show(try await client.memberships.createUser(request, options: connection.callOptions), json: connection.json)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String

        func run() async throws {
            var request = Orgd_V1_GetUserRequest()
            request.id = id
            try await connection.run { client in
                try User.show(try await client.memberships.getUser(request, options: connection.callOptions), json: connection.json)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change named fields; needs the version you read.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var id: String
        @Option var version: Int64
        @Option var email: String?
        @Option var title: String?
        @Option var givenName: String?
        @Option var familyName: String?
        @Option(help: "none, admin or superadmin.") var role: String?
        @Option(help: "invited, active or disabled (disabling stops the user's tokens at once).") var status: String?

        func run() async throws {
            var request = Orgd_V1_UpdateUserRequest()
            request.id = id
            request.version = version
            if let email { request.email = email }
            if let title { request.title = title }
            if let givenName { request.givenName = givenName }
            if let familyName { request.familyName = familyName }
            if let role { request.systemRole = try Names.parse(role, in: Names.systemRoles, option: "--role") }
            if let status { request.status = try Names.parse(status, in: Names.userStatuses, option: "--status") }
            try await connection.run { client in
                try User.show(try await client.memberships.updateUser(request, options: connection.callOptions), json: connection.json)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users in creation order.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only e-mails starting with this.") var emailPrefix: String = ""
        @Option(help: "Only this status.") var status: String?
        @Option var pageSize: Int32 = 0
        @Option var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListUsersRequest()
            request.emailPrefix = emailPrefix
            if let status { request.status = try Names.parse(status, in: Names.userStatuses, option: "--status") }
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.memberships.listUsers(request, options: connection.callOptions)
                if connection.json { return try Output.json(response) }
                Output.table(["ID", "EMAIL", "NAME", "ROLE", "STATUS"], response.users.map {
                    [$0.id, $0.email, "\($0.givenName) \($0.familyName)", Names.name($0.systemRole, in: Names.systemRoles), Names.name($0.status, in: Names.userStatuses)]
                })
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }
}
