import ArgumentParser
import OrgdClient
import OrgdProto

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The audit log of administrative changes (superadmin).", subcommands: [List.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List audit entries, oldest first.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only this method, e.g. orgd.v1.OrganizationService/UpdateOrganization.") var method: String = ""
        @Option(help: "At most this many per page (0: the server's default).") var pageSize: Int32 = 100
        @Option(help: "The page after the one that printed this token (next_page_token).") var pageToken: String = ""

        func run() async throws {
            var request = Orgd_V1_ListAuditLogRequest()
            request.method = method
            request.pageSize = pageSize
            request.pageToken = pageToken
            try await connection.run { client in
                let response = try await client.audit.listAuditLog(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(["#", "TIME", "ACTOR", "FOR", "METHOD", "REQUEST"], response.entries.map {
                    ["\($0.sequence)", Output.time($0.time), Names.actor($0.actor, $0.actorKind), $0.actingFor.isEmpty ? "-" : $0.actingFor, $0.method, $0.requestJson]
                })
                if !response.nextPageToken.isEmpty { print("next page: --page-token \(response.nextPageToken)") }
            }
        }
    }
}
