import Foundation

/// Where a PostgreSQL database is, from a URL in libpq's URI form:
/// `postgresql://[user[:password]@][host][:port][/database][?param=value&…]`
/// (`postgres://` too). Parameters understood: `host` (a Unix-socket
/// directory when it starts with "/", e.g. `?host=/run/postgresql`), `port`,
/// `user`, `dbname`, `sslmode` (`disable`, `prefer` (the default),
/// `require`, `verify-ca`, `verify-full`), `sslrootcert` (a PEM file of the
/// roots to trust), `application_name`, and orgd's own `prepared_statements`
/// (`on`, the default, or `off` for a pooler in transaction mode in front of
/// PostgreSQL, which hands each transaction another session); any other is
/// refused, so a typo is not silently ignored.
///
/// The password is better kept out of the URL (it shows in `ps` and shell
/// history): `ORGD_DATABASE_PASSWORD` or a file (`--database-password-file`)
/// supply it; one in the URL is accepted too.
public struct PostgresLocation: Sendable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, CaseIterable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    /// A host name or address, or nil with `socketDirectory`.
    public var host: String?
    /// The directory holding the server's socket `.s.PGSQL.<port>`.
    public var socketDirectory: String?
    public var port: Int
    public var database: String
    public var tlsMode: TLSMode
    public var rootCertificatePath: String?
    public var applicationName: String
    /// Whether statements that return rows run as named prepared statements
    /// of each connection (planned once per connection, not once per call).
    public var preparedStatements = true

    /// Whether `text` names a PostgreSQL database rather than an SQLite file.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Parses `url`; `password`, when given, replaces one in the URL.
    public init(url: String, password: String? = nil) throws {
        guard let schemeEnd = url.range(of: "://"), Self.isURL(url) else {
            throw PostgresLocationError("a PostgreSQL URL starts with postgresql:// or postgres://")
        }
        var rest = Substring(url[schemeEnd.upperBound...])
        var query = Substring("")
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var path = Substring("")
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        var userInfo: Substring?
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        user = ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        self.password = nil
        if let userInfo {
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon], "user")
                self.password = try Self.decode(userInfo[userInfo.index(after: colon)...], "password")
            } else {
                user = try Self.decode(userInfo, "user")
            }
        }
        port = 5432
        host = nil
        socketDirectory = nil
        // host[:port]; an IPv6 literal is bracketed.
        var hostPart = rest
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw PostgresLocationError("an IPv6 host needs its closing ]") }
            host = String(hostPart[hostPart.index(after: hostPart.startIndex)..<close])
            hostPart = hostPart[hostPart.index(after: close)...]
            if hostPart.hasPrefix(":") { port = try Self.port(hostPart.dropFirst()) } else if !hostPart.isEmpty {
                throw PostgresLocationError("unexpected \(hostPart) after the host")
            }
        } else if let colon = hostPart.lastIndex(of: ":") {
            host = try Self.decode(hostPart[..<colon], "host")
            port = try Self.port(hostPart[hostPart.index(after: colon)...])
        } else if !hostPart.isEmpty {
            host = try Self.decode(hostPart, "host")
        }
        if host?.isEmpty == true { host = nil }
        database = path.isEmpty ? "" : try Self.decode(path, "database")
        tlsMode = .prefer
        rootCertificatePath = nil
        applicationName = "orgd"
        for pair in query.split(separator: "&") where !pair.isEmpty {
            guard let equals = pair.firstIndex(of: "=") else { throw PostgresLocationError("parameter \(pair) has no value") }
            let name = String(pair[..<equals])
            let value = try Self.decode(pair[pair.index(after: equals)...], name)
            switch name {
            case "host":
                if value.hasPrefix("/") { socketDirectory = value; host = nil } else { host = value }
            case "port": port = try Self.port(Substring(value))
            case "user": user = value
            case "dbname": database = value
            case "password": self.password = value
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw PostgresLocationError("sslmode \(value) is not one of \(TLSMode.allCases.map(\.rawValue).joined(separator: ", ")) (allow is not supported: use prefer)")
                }
                tlsMode = mode
            case "sslrootcert": rootCertificatePath = value
            case "application_name": applicationName = value
            case "prepared_statements":
                guard value == "on" || value == "off" else {
                    throw PostgresLocationError("prepared_statements \(value) is not on or off")
                }
                preparedStatements = value == "on"
            default:
                throw PostgresLocationError(
                    "parameter \(name) is not supported (host, port, user, dbname, sslmode, sslrootcert, application_name, prepared_statements are)")
            }
        }
        if let password { self.password = password }
        if host == nil && socketDirectory == nil { socketDirectory = "/var/run/postgresql" }
        if database.isEmpty { database = user }
        if user.isEmpty { throw PostgresLocationError("no user: name one before @ or with ?user=") }
        if socketDirectory != nil && tlsMode != .prefer && tlsMode != .disable {
            throw PostgresLocationError("sslmode \(tlsMode.rawValue) needs a TCP host; a Unix socket is not encrypted")
        }
    }

    /// The path of the server's Unix socket, when it is reached by one.
    public var socketPath: String? {
        socketDirectory.map { "\($0)/.s.PGSQL.\(port)" }
    }

    /// The URL without its password, for logs.
    public var description: String {
        let place = socketDirectory.map { "?host=\($0)" } ?? ""
        let hostText = host.map { $0.contains(":") ? "[\($0)]:\(port)" : "\($0):\(port)" } ?? ""
        let portText = socketDirectory != nil && port != 5432 ? (place.isEmpty ? "?" : "&") + "port=\(port)" : ""
        return "postgresql://\(user)@\(hostText)/\(database)\(place)\(portText)"
    }

    private static func port(_ text: Substring) throws -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else { throw PostgresLocationError("port \(text) is not a number from 1 to 65535") }
        return port
    }

    private static func decode(_ text: Substring, _ what: String) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else {
            throw PostgresLocationError("\(what): bad percent-encoding")
        }
        return decoded
    }
}

/// Why a PostgreSQL URL was refused.
public struct PostgresLocationError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public var errorDescription: String? { description }

    init(_ description: String) {
        self.description = "bad PostgreSQL URL: " + description
    }
}
