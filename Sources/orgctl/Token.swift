import ArgumentParser
import OrgdClient
import OrgdProto

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke bearer tokens (superadmin; normally over the Unix socket).",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    static func owner(_ token: Orgd_V1_ApiToken) -> String {
        switch token.principal {
        case .userID(let id): "user:\(id)"
        case .serviceAccountID(let id): "service:\(id)"
        case nil: "-"
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a token. The secret is printed once and cannot be shown again.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "The user the token speaks for.") var user: String?
        @Option(help: "The service account the token speaks for.") var serviceAccount: String?
        @Option(help: "What the token is for.") var description: String = ""
        @Option(help: "Lifetime in seconds (default: no expiry).") var expiresIn: Int64 = 0

        func validate() throws {
            guard (user == nil) != (serviceAccount == nil) else {
                throw ValidationError("give exactly one of --user and --service-account")
            }
        }

        func run() async throws {
            var request = Orgd_V1_CreateTokenRequest()
            if let user { request.userID = user }
            if let serviceAccount { request.serviceAccountID = serviceAccount }
            request.description_p = description
            request.expiresInSeconds = expiresIn
            try await connection.run { client in
                let response = try await client.tokens.createToken(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.fields([
                    ("id", response.token.id), ("owner", Token.owner(response.token)),
                    ("expires", Output.time(response.token.expireTime)), ("secret", response.secret),
                ])
                print("Store the secret now: orgd keeps only its hash.")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens (never their secrets).")
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Include revoked tokens.") var includeRevoked = false

        func run() async throws {
            var request = Orgd_V1_ListTokensRequest()
            request.includeRevoked = includeRevoked
            request.pageSize = 1000
            try await connection.run { client in
                let response = try await client.tokens.listTokens(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(response, connection.output) }
                Output.table(
                    ["ID", "PREFIX", "OWNER", "DESCRIPTION", "EXPIRES", "REVOKED"],
                    response.tokens.map {
                        [$0.id, $0.prefix, Token.owner($0), $0.description_p, Output.time($0.expireTime), Output.time($0.revokeTime)]
                    }
                )
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token; it stops working at once.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "Token id.") var id: String

        func run() async throws {
            var request = Orgd_V1_RevokeTokenRequest()
            request.id = id
            try await connection.run { client in
                let token = try await client.tokens.revokeToken(request, options: connection.callOptions)
                if connection.output != .table { return try Output.emit(token, connection.output) }
                print("revoked \(token.id) at \(Output.time(token.revokeTime))")
            }
        }
    }
}
