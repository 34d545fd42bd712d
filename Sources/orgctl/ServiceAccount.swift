import ArgumentParser
import OrgdClient
import OrgdProto

struct ServiceAccount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service-account",
        abstract: "Create and list service accounts (superadmin).",
        subcommands: [Create.self, List.self]
    )

    static let roles: [String: Orgd_V1_SystemRole] = ["none": .none, "admin": .admin, "superadmin": .superadmin]

    static func roleName(_ role: Orgd_V1_SystemRole) -> String {
        roles.first { $0.value == role }?.key ?? "none"
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a service account.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "A unique name, e.g. bff or mailer.") var name: String
        @Option(help: "System role: none, admin or superadmin.", completion: Names.completion(Names.systemRoles)) var role: String = "none"
        @Flag(help: "Allow it to act for users with orgd-act-as.") var mayActAs = false
        @Flag(help: "Let it claim and acknowledge the invitation outbox (a mail service).") var mailer = false

        func validate() throws {
            _ = try Names.parse(role, in: Names.systemRoles, option: "--role")
        }

        func run() async throws {
            var request = Orgd_V1_CreateServiceAccountRequest()
            request.name = name
            request.systemRole = try Names.parse(role, in: Names.systemRoles, option: "--role")
            request.mayActAs = mayActAs
            request.mailer = mailer
            try await connection.run { client in
                let account = try await client.tokens.createServiceAccount(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(account, connection.output) }
                Output.fields([
                    ("id", account.id), ("name", account.name), ("role", ServiceAccount.roleName(account.systemRole)),
                    ("may act as", "\(account.mayActAs)"), ("mailer", "\(account.mailer)"),
                ])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List service accounts.")
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Orgd_V1_ListServiceAccountsRequest()
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.tokens.listServiceAccounts(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(
                    ["ID", "NAME", "ROLE", "MAY ACT AS", "MAILER"],
                    response.serviceAccounts.map { [$0.id, $0.name, ServiceAccount.roleName($0.systemRole), "\($0.mayActAs)", "\($0.mailer)"] }
                )
            }
        }
    }
}
