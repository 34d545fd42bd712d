import ArgumentParser
import OrgdClient
import OrgdProto

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask whether orgd is serving (grpc.health.v1); exits 0 only when it is.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "A service name to ask about; empty for the whole server.") var service: String = ""

    func run() async throws {
        try await connection.run { client in
            var request = Grpc_Health_V1_HealthCheckRequest()
            request.service = service
            let response = try await client.health.check(request, options: connection.callOptions)
            if connection.output != .table { try Output.emit(response, connection.output) } else { print("\(response.status)".uppercased()) }
            if response.status != .serving { throw ExitCode(1) }
        }
    }
}
