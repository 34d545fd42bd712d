import ArgumentParser
import OrgdClient
import OrgdProto

struct User: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, read, change and list users (admin; a user may read their own record).",
        subcommands: [Create.self, Get.self, Update.self, List.self]
    )

    static func show(_ user: Orgd_V1_User, format: OutputFormat) throws {
        if format != .table { return try Output.emit(user, format) }
        Output.fields([
            ("id", user.id), ("email", user.email), ("name", "\(user.title) \(user.givenName) \(user.familyName)".trimmingCharacters(in: .whitespaces)),
            ("role", Names.name(user.systemRole, in: Names.systemRoles)), ("status", Names.name(user.status, in: Names.userStatuses)),
            ("version", "\(user.version)"),
        ])
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "E-mail address.") var email: String
        @Option(help: "Title, e.g. Mr or Dr.") var title: String = ""
        @Option(help: "Given name.") var givenName: String
        @Option(help: "Family name.") var familyName: String
        @Option(help: "none, admin or superadmin.", completion: Names.completion(Names.systemRoles)) var role: String = "none"
        @Option(help: "invited, active or disabled.", completion: Names.completion(Names.userStatuses)) var status: String = "active"

        func run() async throws {
            var request = Orgd_V1_CreateUserRequest()
            request.email = email
            request.title = title
            request.givenName = givenName
            request.familyName = familyName
            request.systemRole = try Names.parse(role, in: Names.systemRoles, option: "--role")
            request.status = try Names.parse(status, in: Names.userStatuses, option: "--status")
            try await connection.run { client in
                try User.show(try await client.memberships.createUser(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a user.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User id.") var id: String

        func run() async throws {
            var request = Orgd_V1_GetUserRequest()
            request.id = id
            try await connection.run { client in
                try User.show(try await client.memberships.getUser(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change named fields; needs the version you read.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "User id.") var id: String
        @Option(help: "The version you read: refused with ABORTED if it has changed since.") var version: Int64
        @Option(help: "E-mail address.") var email: String?
        @Option(help: "Title, e.g. Mr or Dr.") var title: String?
        @Option(help: "Given name.") var givenName: String?
        @Option(help: "Family name.") var familyName: String?
        @Option(help: "none, admin or superadmin.", completion: Names.completion(Names.systemRoles)) var role: String?
        @Option(help: "invited, active or disabled (disabling stops the user's tokens at once).", completion: Names.completion(Names.userStatuses)) var status: String?

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
                try User.show(try await client.memberships.updateUser(request, options: connection.callOptions), format: connection.output)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users in creation order.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only e-mails starting with this.") var emailPrefix: String = ""
        @Option(help: "Only this status.", completion: Names.completion(Names.userStatuses)) var status: String?
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 0
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListUsersRequest()
            request.emailPrefix = emailPrefix
            if let status { request.status = try Names.parse(status, in: Names.userStatuses, option: "--status") }
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.memberships.listUsers(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["ID", "EMAIL", "NAME", "ROLE", "STATUS"], response.users.map {
                    [$0.id, $0.email, "\($0.givenName) \($0.familyName)", Names.name($0.systemRole, in: Names.systemRoles), Names.name($0.status, in: Names.userStatuses)]
                })
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }
}
