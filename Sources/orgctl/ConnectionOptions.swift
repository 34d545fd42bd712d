import ArgumentParser
import Foundation
import OrgdClient
import OrgdCore

/// Where to connect and how to print; shared by every subcommand.
struct ConnectionOptions: ParsableArguments {
    @OptionGroup var endpoint: EndpointOptions

    @Option(help: "Bearer token [ORGD_TOKEN].")
    var token: String?

    var output: OutputFormat { endpoint.output }
    var callOptions: CallOptions { endpoint.callOptions }

    func run(_ body: (OrgdClient) async throws -> Void) async throws {
        try await endpoint.run(token: token, body)
    }
}

/// Everything about the connection but the bearer token, for the few
/// commands whose own `--token` means something else (an invitation's).
struct EndpointOptions: ParsableArguments {
    @Option(help: "Unix socket of orgd [ORGD_SOCKET].")
    var socket: String?

    @Option(help: "TCP address HOST:PORT of orgd [ORGD_ADDRESS]; needs a token. Several, comma-separated (a,b), fail over in order.")
    var address: String?

    @Option(help: "gRPC address HOST:PORT of orgd (its --grpc-listen) [ORGD_GRPC]; needs a token. Several, comma-separated, fail over in order.")
    var grpc: String?

    @Option(help: "Act for this user id (service-account tokens only) [ORGD_ACT_AS].")
    var actAs: String?

    @Flag(help: "Speak TLS to --address or --grpc, trusting the system's CAs (implied by the other --tls options).")
    var tls = false

    @Option(help: "PEM file of the CA that signed orgd's certificate [ORGD_TLS_CA]; implies --tls.")
    var tlsCa: String?

    @Option(help: "PEM client certificate, for orgd with --tls-client-ca [ORGD_CLIENT_CERT]; implies --tls.")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert [ORGD_CLIENT_KEY].")
    var tlsKey: String?

    @Option(help: "The name orgd's certificate must carry, when not the --address or --grpc host.")
    var tlsServerName: String?

    @Option(help: "Give up after this many seconds.")
    var timeout: Double = 30

    @Option(name: [.customShort("o"), .customLong("output")], help: "How to print the answer: table (for people), json (every field, defaults too), yaml, or id (the ids alone, one a line).")
    var outputFormat: OutputFormat?

    @Flag(help: "Print JSON instead of a table (-o json).")
    var json = false

    var output: OutputFormat { outputFormat ?? (json ? .json : .table) }

    func validate() throws {
        if let address, Self.parse(addresses: address) == nil {
            throw ValidationError("--address must be HOST:PORT (or several, comma-separated), not \(address)")
        }
        if let grpc, Self.parse(addresses: grpc) == nil {
            throw ValidationError("--grpc must be HOST:PORT (or several, comma-separated), not \(grpc)")
        }
        if address != nil && grpc != nil { throw ValidationError("give --address (ttrpc) or --grpc, not both") }
        if json, let outputFormat, outputFormat != .json { throw ValidationError("--json is -o json: give one of --json and -o \(outputFormat)") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        if tlsSettings != nil && !isTCP { throw ValidationError("TLS is for TCP: give --address or --grpc") }
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
    }

    /// TLS settings from the flags and environment; nil for plain TCP.
    var tlsSettings: OrgdTLS? {
        let ca = setting(tlsCa, "ORGD_TLS_CA"), cert = setting(tlsCert, "ORGD_CLIENT_CERT"), key = setting(tlsKey, "ORGD_CLIENT_KEY")
        guard tls || ca != nil || cert != nil || tlsServerName != nil else { return nil }
        return OrgdTLS(trustRootsPath: ca, certificateChainPath: cert, privateKeyPath: key, serverHostname: tlsServerName)
    }

    /// Whether the connection goes over TCP (ttrpc or gRPC): it needs a
    /// token, and may speak TLS.
    var isTCP: Bool {
        if case .unix = endpoint { return false }
        return true
    }

    /// The first of `endpoints` (the bench drives one daemon).
    var endpoint: OrgdEndpoint { endpoints[0] }

    /// The flags' endpoints first (--grpc, --address, --socket), then the
    /// environment's in the same order; a comma-separated --address or
    /// --grpc (ORGD_ADDRESS, ORGD_GRPC) gives several, tried in order.
    var endpoints: [OrgdEndpoint] {
        let environment = ProcessInfo.processInfo.environment
        if let grpc, let addresses = Self.parse(addresses: grpc) { return addresses.map { .grpc(host: $0.0, port: $0.1) } }
        if address == nil, socket == nil, let grpc = environment["ORGD_GRPC"], !grpc.isEmpty, let addresses = Self.parse(addresses: grpc) {
            return addresses.map { .grpc(host: $0.0, port: $0.1) }
        }
        if let address = address ?? environment["ORGD_ADDRESS"], !address.isEmpty, let addresses = Self.parse(addresses: address) {
            return addresses.map { .tcp(host: $0.0, port: $0.1) }
        }
        if let socket = socket ?? environment["ORGD_SOCKET"], !socket.isEmpty { return [.unix(path: socket)] }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return [.unix(path: runtime + "/orgd.sock")] }
        return [.unix(path: "orgd.sock")]
    }

    var callOptions: CallOptions { CallOptions(timeout: .milliseconds(Int64(timeout * 1000))) }

    /// Connects, runs `body`, and turns failures into one line and exit 1.
    func run(token: String?, _ body: (OrgdClient) async throws -> Void) async throws {
        do {
            let client = try await OrgdClient.connect(
                to: endpoints,
                token: setting(token, "ORGD_TOKEN"),
                actAs: setting(actAs, "ORGD_ACT_AS"),
                tls: tlsSettings
            )
            defer { Task { await client.close() } }
            try await body(client)
        } catch let error as RPCError {
            throw Failure.report(error)
        }
    }

    /// `HOST:PORT[,HOST:PORT…]`; nil when any part is not an address.
    static func parse(addresses: String) -> [(String, Int)]? {
        let parsed = addresses.split(separator: ",", omittingEmptySubsequences: false).map {
            parse(address: $0.trimmingCharacters(in: .whitespaces))
        }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else { return nil }
        return parsed.compactMap { $0 }
    }

    static func parse(address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (1...65535).contains(port)
        else { return nil }
        let host = address[..<colon].trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return host.isEmpty ? nil : (host, port)
    }
}

/// A flag's value, else its environment variable's when that is set and not empty.
func setting(_ flag: String?, _ variable: String) -> String? {
    flag ?? ProcessInfo.processInfo.environment[variable].flatMap { $0.isEmpty ? nil : $0 }
}

/// How orgctl ends on a failed call: one line on standard error,
/// `orgctl: CODE: message`, and an exit status that names the code
/// (README, "Exit status"): 10 + the gRPC status code, so a script can tell
/// NOT_FOUND (15) from PERMISSION_DENIED (17) or UNAVAILABLE (24) without
/// reading the text. 1 is left for failures that are not a call's (a file
/// that cannot be read), 3 for `consent check`'s "denied", 64 for usage.
enum Failure {
    static func exitStatus(_ code: StatusCode) -> Int32 { 10 + code.rawValue }

    static func report(_ error: RPCError) -> ExitCode {
        FileHandle.standardError.write(Data("orgctl: \(error.code): \(error.message)\n".utf8))
        return ExitCode(exitStatus(error.code))
    }
}
