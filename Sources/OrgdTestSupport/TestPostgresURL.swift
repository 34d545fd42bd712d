import Foundation

/// The parts of a libpq URI (`postgresql://user[:password]@[host][:port]/db?host=/dir&sslmode=…`)
/// the tests need to reach their server and to name another database on it.
///
/// A stand-in until the tests use the daemon's own parser (OrgdStore's
/// `PostgresLocation`); it reads only what `scripts/postgres-cluster` and a
/// hand-given test server URL carry, and refuses the rest.
struct TestPostgresURL: Sendable, Equatable {
    var user: String
    var password: String?
    /// A TCP host, or nil when `socketDirectory` is set.
    var host: String?
    /// The directory holding the server's `.s.PGSQL.<port>` socket.
    var socketDirectory: String?
    var port: Int
    var database: String
    /// `disable`, `prefer` or `require` (no certificate checks: a test server).
    var sslmode: String

    init(_ url: String) throws {
        guard let schemeEnd = url.range(of: "://"),
              ["postgres", "postgresql"].contains(url[..<schemeEnd.lowerBound]) else {
            throw TestDatabaseError("\(url): not a postgresql:// URL")
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
        user = ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        password = nil
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decode(userInfo[..<colon])
                password = try Self.decode(userInfo[userInfo.index(after: colon)...])
            } else {
                user = try Self.decode(userInfo)
            }
        }
        port = 5432
        host = nil
        if rest.hasPrefix("[") {
            throw TestDatabaseError("\(url): an IPv6 host is not understood here; name the server by host name")
        }
        if let colon = rest.lastIndex(of: ":") {
            host = try Self.decode(rest[..<colon])
            port = try Self.port(rest[rest.index(after: colon)...])
        } else if !rest.isEmpty {
            host = try Self.decode(rest)
        }
        if host?.isEmpty == true { host = nil }
        database = try Self.decode(path)
        socketDirectory = nil
        sslmode = "prefer"
        for pair in query.split(separator: "&") {
            guard let equals = pair.firstIndex(of: "=") else { throw TestDatabaseError("\(url): parameter \(pair) has no value") }
            let value = try Self.decode(pair[pair.index(after: equals)...])
            switch pair[..<equals] {
            case "host": if value.hasPrefix("/") { socketDirectory = value } else { host = value }
            case "port": port = try Self.port(Substring(value))
            case "user": user = value
            case "password": password = value
            case "dbname": database = value
            case "sslmode":
                guard ["disable", "prefer", "require"].contains(value) else {
                    throw TestDatabaseError("\(url): sslmode \(value): the tests know disable, prefer, require")
                }
                sslmode = value
            default: throw TestDatabaseError("\(url): parameter \(pair[..<equals]) is not understood here")
            }
        }
        if socketDirectory != nil { host = nil }
        if host == nil && socketDirectory == nil { socketDirectory = "/var/run/postgresql" }
        if database.isEmpty { database = user }
    }

    /// The server's Unix socket, when reached by one.
    var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

    /// This server's URL naming `database` instead (password kept: the
    /// daemon under test is handed this URL).
    func url(database: String) -> String {
        var query: [String] = []
        if let socketDirectory { query.append("host=\(Self.encode(socketDirectory))") }
        if socketDirectory != nil && port != 5432 { query.append("port=\(port)") }
        if sslmode != "prefer" { query.append("sslmode=\(sslmode)") }
        let credentials = Self.encode(user) + (password.map { ":" + Self.encode($0) } ?? "")
        let hostText = host.map { $0 + (port != 5432 ? ":\(port)" : "") } ?? ""
        let queryText = query.isEmpty ? "" : "?" + query.joined(separator: "&")
        return "postgresql://\(credentials)@\(hostText)/\(Self.encode(database))\(queryText)"
    }

    private static func port(_ text: Substring) throws -> Int {
        guard let port = Int(text), (1...65_535).contains(port) else { throw TestDatabaseError("port \(text) is not 1…65535") }
        return port
    }

    private static func decode(_ text: Substring) throws -> String {
        guard let decoded = String(text).removingPercentEncoding else { throw TestDatabaseError("\(text): bad percent-encoding") }
        return decoded
    }

    private static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
