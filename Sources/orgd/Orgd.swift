import ArgumentParser
import Foundation
import Logging
import OrgdCore
import OrgdServer
import OrgdServices
import OrgdStore
import Prometheus
import ServiceLifecycle

@main
struct Orgd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orgd",
        abstract: "The system of record for care organisations, memberships, invitations and consents.",
        discussion: """
            Every option can also be set by the environment variable in brackets; a flag wins.
            With no options, orgd keeps its data in ./orgd.sqlite and listens on the Unix socket
            $XDG_RUNTIME_DIR/orgd.sock (./orgd.sock when XDG_RUNTIME_DIR is unset), mode 0600.
            TCP is off until --listen is given; every TCP call needs a bearer token.
            """,
        version: "orgd \(OrgdBuild.version) (schema: SQLite \(Store.schemaVersions.sqlite), PostgreSQL \(Store.schemaVersions.postgres))"
    )

    @Option(help: "SQLite database file, or a PostgreSQL URL postgresql://USER@HOST:PORT/DB?sslmode=… (or ?host=/socket/dir) shared by several orgd [ORGD_DATABASE] (default: ./orgd.sqlite).")
    var database: String?

    @Option(help: "File holding the PostgreSQL password (first line) [ORGD_DATABASE_PASSWORD_FILE]; or set ORGD_DATABASE_PASSWORD. Keep it out of the URL.")
    var databasePasswordFile: String?

    @Option(help: "PostgreSQL connections this daemon keeps at most [ORGD_DATABASE_POOL_SIZE] (default: 16).")
    var databasePoolSize: Int?

    @Option(help: "Unix socket path [ORGD_SOCKET]; \"none\" disables it.")
    var socket: String?

    @Option(help: "Permissions of the Unix socket, octal [ORGD_SOCKET_MODE] (default: 600).")
    var socketMode: String?

    @Option(help: "TCP address HOST:PORT to listen on [ORGD_LISTEN]; port 0 picks a free port and prints it.")
    var listen: String?

    @Option(help: "gRPC (HTTP/2) address HOST:PORT to listen on beside ttrpc [ORGD_GRPC_LISTEN]; port 0 picks a free port and prints it. Same handlers, tokens, TLS and limits as --listen.")
    var grpcListen: String?

    @Option(help: "PEM certificate chain: TCP and gRPC speak TLS with it [ORGD_TLS_CERT]; needs --tls-key and --listen or --grpc-listen.")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert [ORGD_TLS_KEY].")
    var tlsKey: String?

    @Option(help: "PEM CA certificates: TCP clients must present a certificate they signed (mutual TLS) [ORGD_TLS_CLIENT_CA].")
    var tlsClientCa: String?

    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics [ORGD_METRICS_LISTEN]; off by default.")
    var metricsListen: String?

    @Option(help: "SQLite durability, full or normal [ORGD_SYNCHRONOUS] (default: full).")
    var synchronous: String?

    @Option(help: "on: answer CheckAccess and BatchCheckAccess from the in-memory access index; off: always from the database [ORGD_ACCESS_INDEX] (default: on).")
    var accessIndex: String?

    @Option(help: "Over PostgreSQL: milliseconds between looks at the change feed for other daemons' writes, which bounds how stale the access index can be without a consistency token [ORGD_ACCESS_INDEX_POLL_MS] (default: 10).")
    var accessIndexPollMs: Int?

    @Option(help: "Largest frame accepted, in bytes [ORGD_MAX_FRAME_BYTES] (default: 4194304).")
    var maxFrameBytes: Int?

    @Option(help: "Seconds to let in-flight calls finish at shutdown [ORGD_DRAIN_TIMEOUT] (default: 30).")
    var drainTimeout: Int?

    @Option(help: "trace, debug, info, notice, warning, error or critical [ORGD_LOG_LEVEL] (default: info).")
    var logLevel: String?

    @Option(help: "text: one line per entry for people; json: one JSON object per line (time, level, label, message, source, then the entry's metadata) for log shippers [ORGD_LOG_FORMAT] (default: text).")
    var logFormat: String?

    @Option(help: "A file whose first line is the log level, read at start and again on SIGHUP; beats --log-level [ORGD_LOG_LEVEL_FILE].")
    var logLevelFile: String?

    @Option(help: "Most open TCP connections; past it new ones are closed and logged [ORGD_MAX_CONNECTIONS] (default: 10000).")
    var maxConnections: Int?

    @Option(help: "Most open connections on the Unix socket, a budget of its own [ORGD_MAX_UNIX_CONNECTIONS] (default: 1024).")
    var maxUnixConnections: Int?

    @Option(help: "Most open TCP connections from one address [ORGD_MAX_CONNECTIONS_PER_ADDRESS] (default: 1024).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "Seconds a TCP connection has to make an authenticated call or a health check before it is closed [ORGD_AUTHENTICATION_TIMEOUT] (default: 10).")
    var authenticationTimeout: Int?

    @Option(help: "Bytes all connections together may hold in unfinished frames and untaken answers; past it the largest holders are closed [ORGD_MAX_BUFFERED_BYTES] (default: 268435456).")
    var maxBufferedBytes: Int?

    @Option(help: "Most metadata entries in one call [ORGD_MAX_METADATA_ENTRIES] (default: 64).")
    var maxMetadataEntries: Int?

    @Option(help: "Most open connections to the metrics listener [ORGD_MAX_METRICS_CONNECTIONS] (default: 64).")
    var maxMetricsConnections: Int?

    @Option(help: "Most calls in flight on one connection [ORGD_MAX_CALLS_PER_CONNECTION] (default: 1024).")
    var maxCallsPerConnection: Int?

    @Option(help: "Most bytes of metadata in one call [ORGD_MAX_METADATA_BYTES] (default: 16384).")
    var maxMetadataBytes: Int?

    @Option(help: "Bytes of answers a client may leave untaken before orgd stops reading its calls [ORGD_MAX_QUEUED_RESPONSE_BYTES] (default: 1048576).")
    var maxQueuedResponseBytes: Int?

    @Option(help: "Seconds before an idle connection is closed [ORGD_IDLE_TIMEOUT] (default: 300).")
    var idleTimeout: Int?

    @Option(help: "Seconds a started frame (or a TLS handshake) may take to arrive whole [ORGD_FRAME_TIMEOUT] (default: 10).")
    var frameTimeout: Int?

    @Option(help: "Days an invitation stays valid when the inviter names none [ORGD_INVITE_EXPIRY_DAYS] (default: 7).")
    var inviteExpiryDays: Int?

    @Option(help: "Most sends of one invitation in 24 hours [ORGD_INVITE_MAX_SENDS] (default: 5).")
    var inviteMaxSends: Int?

    @Option(help: "Seconds a mailer holds claimed e-mail before it returns to the queue [ORGD_OUTBOX_LEASE_SECONDS] (default: 300).")
    var outboxLeaseSeconds: Int?

    @Option(help: "Delivery attempts of one e-mail before its invitation is marked delivery_failed; each claim is one [ORGD_OUTBOX_MAX_ATTEMPTS] (default: 5).")
    var outboxMaxAttempts: Int?

    @Option(help: "Seconds before a failed e-mail is retried, doubled after each further failure [ORGD_OUTBOX_RETRY_BASE_SECONDS] (default: 60).")
    var outboxRetryBaseSeconds: Int?

    @Option(help: "Longest wait in seconds between attempts at one e-mail [ORGD_OUTBOX_RETRY_MAX_SECONDS] (default: 3600).")
    var outboxRetryMaxSeconds: Int?

    @Flag(help: "Print SECURITY.md's authorisation matrix (every RPC × every kind of caller) and exit.")
    var printAuthorizationMatrix = false

    func run() async throws {
        if printAuthorizationMatrix {
            print(try Self.authorizationMatrix())
            return
        }
        var settings = try Settings(self, environment: ProcessInfo.processInfo.environment)
        // SIGHUP reloads (HangUpReloader below); until then it is ignored,
        // never the default that ends the process.
        signal(SIGHUP, SIG_IGN)
        DaemonLogLevel.current.withLockedValue { $0 = settings.logLevel }
        let logFormat = settings.logFormat
        LoggingSystem.bootstrap { label in DaemonLogHandler(label: label, format: logFormat) }
        let logger = Logger(label: "orgd")
        for note in try settings.server.fitDescriptorLimit() {
            logger.warning("\(note)")
        }
        let metricsHost = settings.server.metricsHost
        let metrics = OrgdMetrics()
        // One daemon per SQLite file: a second one exits here, naming the
        // first. Over PostgreSQL, any number share the database.
        var lock: DatabaseLock?
        let store: Store
        if let postgres = settings.postgres {
            store = try await Store(postgres: postgres, poolSize: settings.poolSize, logger: logger, metrics: metrics)
        } else {
            lock = try DatabaseLock(databasePath: settings.database)
            store = try Store(path: settings.database, durability: settings.durability, logger: logger, metrics: metrics)
        }
        defer { withExtendedLifetime(lock) {} }
        if settings.accessIndex { store.startAccessIndex(pollInterval: settings.accessIndexPoll) }
        let server = OrgdServer(
            configuration: settings.server,
            dispatcher: Dispatcher(store: store, logger: logger, invitations: settings.invitations, metrics: metrics),
            logger: logger,
            metrics: metrics,
            onListening: { bound in
                // One line per listener on stdout, for scripts and tests.
                if let path = bound.unixSocketPath { print("orgd listening on unix:\(path)") }
                if let port = bound.tcpPort, let host = bound.tcpHost { print("orgd listening on \(bound.tcpTLS ? "tls" : "tcp"):\(host):\(port)") }
                if let port = bound.metricsPort, let host = metricsHost { print("orgd listening on metrics:\(host):\(port)") }
                if let port = bound.grpcPort, let host = bound.grpcHost { print("orgd listening on grpc:\(host):\(port)") }
                fflush(nil)
            }
        )
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        let reloader = HangUpReloader(server: server, logLevelFile: settings.logLevelFile, logger: logger)
        defer { reloader.cancel() }
        try await group.run()
        // Calls stuck in the database (behind another process's lock, say)
        // were cut off at the drain timeout and never acknowledged; closing
        // must not wait for them, so the drain timeout bounds the exit.
        if Self.close(store, within: .seconds(1)) {
            logger.info("orgd stopped; database closed")
        } else {
            logger.warning("orgd stopped; the database was still busy with calls cut off at the drain timeout (none was acknowledged), exiting without waiting for them")
            // _exit, not exit: no atexit handler may run while the store's
            // thread is still inside SQLite.
            fflush(nil)
            _exit(0)
        }
    }

    /// Closes the store on a thread of its own; false when that takes longer than `limit`.
    static func close(_ store: Store, within limit: Duration) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread {
            try? store.close()
            done.signal()
        }.start()
        let (seconds, attoseconds) = limit.components
        return done.wait(timeout: .now() + .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))) == .success
    }
}

extension Orgd {
    /// The matrix from the methods actually registered, read off a
    /// throwaway store (registration needs one; nothing is kept).
    static func authorizationMatrix() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-matrix-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var quiet = Logger(label: "orgd")
        quiet.logLevel = .critical
        let store = try Store(path: directory.appendingPathComponent("orgd.sqlite").path, logger: quiet)
        defer { try? store.close() }
        return AuthorizationMatrix.markdown(Dispatcher(store: store, logger: quiet).accessRules)
    }
}

/// Flags, environment and defaults resolved into one configuration.
struct Settings {
    var database: String
    /// Set when `database` is a PostgreSQL URL.
    var postgres: PostgresLocation?
    var poolSize = Store.defaultPoolSize
    var durability: Durability
    var accessIndex = true
    var accessIndexPoll: Duration = .milliseconds(10)
    var logLevel: Logger.Level
    var logLevelFile: String?
    var logFormat = DaemonLogFormat.text
    var server: ServerConfiguration
    var invitations = InvitationPolicy()

    init(_ flags: Orgd, environment: [String: String]) throws {
        func value(_ flag: String?, _ variable: String) -> String? {
            flag ?? environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        database = value(flags.database, "ORGD_DATABASE") ?? "orgd.sqlite"
        if PostgresLocation.isURL(database) {
            var password = environment["ORGD_DATABASE_PASSWORD"].flatMap { $0.isEmpty ? nil : $0 }
            if let file = value(flags.databasePasswordFile, "ORGD_DATABASE_PASSWORD_FILE") {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("--database-password-file: cannot read \(file)")
                }
                password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init)
            }
            do {
                postgres = try PostgresLocation(url: database, password: password)
            } catch {
                throw ValidationError("--database: \(error)")
            }
            if let size = flags.databasePoolSize ?? environment["ORGD_DATABASE_POOL_SIZE"].flatMap(Int.init) {
                guard (1...1000).contains(size) else { throw ValidationError("--database-pool-size must be 1 to 1000") }
                poolSize = size
            }
        }

        let synchronous = value(flags.synchronous, "ORGD_SYNCHRONOUS") ?? "full"
        guard let durability = Durability(rawValue: synchronous.lowercased()) else {
            throw ValidationError("--synchronous must be full or normal, not \(synchronous)")
        }
        self.durability = durability

        switch (value(flags.accessIndex, "ORGD_ACCESS_INDEX") ?? "on").lowercased() {
        case "on": accessIndex = true
        case "off": accessIndex = false
        case let other: throw ValidationError("--access-index must be on or off, not \(other)")
        }
        if let milliseconds = flags.accessIndexPollMs ?? environment["ORGD_ACCESS_INDEX_POLL_MS"].flatMap(Int.init) {
            guard (1...60_000).contains(milliseconds) else { throw ValidationError("--access-index-poll-ms must be 1 to 60000") }
            accessIndexPoll = .milliseconds(milliseconds)
        }

        let level = value(flags.logLevel, "ORGD_LOG_LEVEL") ?? "info"
        guard let logLevel = Logger.Level(rawValue: level.lowercased()) else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        self.logLevel = logLevel
        let format = value(flags.logFormat, "ORGD_LOG_FORMAT") ?? "text"
        guard let logFormat = DaemonLogFormat(rawValue: format.lowercased()) else {
            throw ValidationError("--log-format must be text or json, not \(format)")
        }
        self.logFormat = logFormat
        if let file = value(flags.logLevelFile, "ORGD_LOG_LEVEL_FILE") {
            do {
                self.logLevel = try DaemonLogLevel.read(file)
            } catch {
                throw ValidationError("--log-level-file: \(error)")
            }
            logLevelFile = file
        }

        var server = ServerConfiguration()
        let socket = value(flags.socket, "ORGD_SOCKET") ?? Self.defaultSocketPath(environment)
        server.unixSocketPath = socket == "none" ? nil : socket
        if let mode = value(flags.socketMode, "ORGD_SOCKET_MODE") {
            guard let parsed = UInt16(mode, radix: 8), parsed <= 0o777 else {
                throw ValidationError("--socket-mode must be octal permissions such as 600 or 660, not \(mode)")
            }
            server.unixSocketMode = parsed
        }
        if let listen = value(flags.listen, "ORGD_LISTEN") {
            (server.tcpHost, server.tcpPort) = try Self.hostAndPort(listen, option: "--listen")
        }
        if let listen = value(flags.grpcListen, "ORGD_GRPC_LISTEN") {
            (server.grpcHost, server.grpcPort) = try Self.hostAndPort(listen, option: "--grpc-listen")
        }
        if let listen = value(flags.metricsListen, "ORGD_METRICS_LISTEN") {
            (server.metricsHost, server.metricsPort) = try Self.hostAndPort(listen, option: "--metrics-listen")
        }
        if let bytes = flags.maxFrameBytes ?? environment["ORGD_MAX_FRAME_BYTES"].flatMap(Int.init) {
            guard bytes >= 1024 else { throw ValidationError("--max-frame-bytes must be at least 1024") }
            server.maximumFrameLength = bytes
        }
        if let seconds = flags.drainTimeout ?? environment["ORGD_DRAIN_TIMEOUT"].flatMap(Int.init) {
            guard seconds >= 0 else { throw ValidationError("--drain-timeout must not be negative") }
            server.drainTimeout = .seconds(Int64(seconds))
        }
        func number(_ flag: Int?, _ variable: String, _ option: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let value = flag ?? environment[variable].flatMap(Int.init) else { return nil }
            guard range.contains(value) else { throw ValidationError("\(option) must be \(range.lowerBound) to \(range.upperBound)") }
            return value
        }
        if let value = try number(flags.maxConnections, "ORGD_MAX_CONNECTIONS", "--max-connections", 1...1_000_000) {
            server.maximumConnections = value
        }
        if let value = try number(flags.maxUnixConnections, "ORGD_MAX_UNIX_CONNECTIONS", "--max-unix-connections", 1...1_000_000) {
            server.maximumUnixConnections = value
        }
        if let value = try number(flags.maxConnectionsPerAddress, "ORGD_MAX_CONNECTIONS_PER_ADDRESS", "--max-connections-per-address", 1...1_000_000) {
            server.maximumConnectionsPerAddress = value
        }
        if let value = try number(flags.authenticationTimeout, "ORGD_AUTHENTICATION_TIMEOUT", "--authentication-timeout", 1...3600) {
            server.authenticationTimeout = .seconds(Int64(value))
        }
        if let value = try number(flags.maxBufferedBytes, "ORGD_MAX_BUFFERED_BYTES", "--max-buffered-bytes", (1 << 20)...(1 << 40)) {
            server.maximumBufferedBytes = value
        }
        if let value = try number(flags.maxMetadataEntries, "ORGD_MAX_METADATA_ENTRIES", "--max-metadata-entries", 1...10_000) {
            server.maximumMetadataEntries = value
        }
        if let value = try number(flags.maxMetricsConnections, "ORGD_MAX_METRICS_CONNECTIONS", "--max-metrics-connections", 1...10_000) {
            server.maximumMetricsConnections = value
        }
        if let value = try number(flags.maxCallsPerConnection, "ORGD_MAX_CALLS_PER_CONNECTION", "--max-calls-per-connection", 1...1_000_000) {
            server.maximumCallsPerConnection = value
        }
        if let value = try number(flags.maxMetadataBytes, "ORGD_MAX_METADATA_BYTES", "--max-metadata-bytes", 256...(1 << 20)) {
            server.maximumMetadataBytes = value
        }
        if let value = try number(flags.maxQueuedResponseBytes, "ORGD_MAX_QUEUED_RESPONSE_BYTES", "--max-queued-response-bytes", 4096...(1 << 30)) {
            server.maximumQueuedResponseBytes = value
        }
        if let value = try number(flags.idleTimeout, "ORGD_IDLE_TIMEOUT", "--idle-timeout", 1...86_400) {
            server.idleTimeout = .seconds(Int64(value))
        }
        if let value = try number(flags.frameTimeout, "ORGD_FRAME_TIMEOUT", "--frame-timeout", 1...3600) {
            server.frameTimeout = .seconds(Int64(value))
        }
        if let days = try number(flags.inviteExpiryDays, "ORGD_INVITE_EXPIRY_DAYS", "--invite-expiry-days", 1...30) {
            invitations.defaultExpiryDays = days
        }
        if let sends = try number(flags.inviteMaxSends, "ORGD_INVITE_MAX_SENDS", "--invite-max-sends", 1...1000) {
            invitations.maximumSendsPerDay = sends
        }
        if let seconds = try number(flags.outboxLeaseSeconds, "ORGD_OUTBOX_LEASE_SECONDS", "--outbox-lease-seconds", 1...86_400) {
            invitations.defaultLeaseSeconds = seconds
        }
        if let attempts = try number(flags.outboxMaxAttempts, "ORGD_OUTBOX_MAX_ATTEMPTS", "--outbox-max-attempts", 1...100) {
            invitations.outboxRetry.maximumAttempts = attempts
        }
        if let seconds = try number(flags.outboxRetryBaseSeconds, "ORGD_OUTBOX_RETRY_BASE_SECONDS", "--outbox-retry-base-seconds", 1...86_400) {
            invitations.outboxRetry.baseDelay = TimeInterval(seconds)
        }
        if let seconds = try number(flags.outboxRetryMaxSeconds, "ORGD_OUTBOX_RETRY_MAX_SECONDS", "--outbox-retry-max-seconds", 1...(7 * 86_400)) {
            invitations.outboxRetry.maximumDelay = TimeInterval(seconds)
        }
        guard invitations.outboxRetry.maximumDelay >= invitations.outboxRetry.baseDelay else {
            throw ValidationError("--outbox-retry-max-seconds (\(Int(invitations.outboxRetry.maximumDelay))) must be at least --outbox-retry-base-seconds (\(Int(invitations.outboxRetry.baseDelay)))")
        }
        let tlsCert = value(flags.tlsCert, "ORGD_TLS_CERT"), tlsKey = value(flags.tlsKey, "ORGD_TLS_KEY")
        let tlsClientCA = value(flags.tlsClientCa, "ORGD_TLS_CLIENT_CA")
        switch (tlsCert, tlsKey) {
        case (let cert?, let key?):
            guard server.tcpHost != nil || server.grpcHost != nil else {
                throw ValidationError("--tls-cert secures the TCP and gRPC listeners: give --listen or --grpc-listen too")
            }
            server.tls = ServerTLS(certificateChainPath: cert, privateKeyPath: key, clientCAPath: tlsClientCA)
        case (nil, nil):
            if tlsClientCA != nil { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        default:
            throw ValidationError("--tls-cert and --tls-key go together")
        }
        guard server.maximumBufferedBytes >= 2 * server.maximumFrameLength else {
            throw ValidationError("--max-buffered-bytes (\(server.maximumBufferedBytes)) must be at least twice --max-frame-bytes (\(server.maximumFrameLength)), or one large call would be closed")
        }
        guard server.unixSocketPath != nil || server.tcpHost != nil || server.grpcHost != nil else {
            throw ValidationError("nothing to listen on: give --socket, --listen or --grpc-listen")
        }
        self.server = server
    }

    static func hostAndPort(_ text: String, option: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option) must be HOST:PORT, e.g. 127.0.0.1:7420, not \(text)")
        }
        return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
    }

    static func defaultSocketPath(_ environment: [String: String]) -> String {
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/orgd.sock" }
        return "orgd.sock"
    }
}
