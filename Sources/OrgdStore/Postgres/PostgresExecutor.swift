import Foundation
import Logging
import NIOCore
import OrgdCore
import PostgresNIO

/// Runs the store's statements on one leased PostgreSQL connection, from a
/// thread of the backend's pool (never an event loop): each statement waits
/// for its answer, so the store's transactions read as plainly as on SQLite.
/// `?` placeholders become `$1`, `$2`, …; values travel as bound parameters,
/// never in the SQL text.
///
/// Statements that return rows run as named prepared statements of the
/// connection (`PreparedStatements`), prepared on first use: PostgreSQL then
/// plans them once per connection instead of once per call. Statements
/// whose answer is a count of changed rows go unnamed (postgres-nio's
/// prepared statements do not return the command tag); so do transaction
/// control and savepoints.
final class PostgresExecutor: SQLExecutor {
    let connection: PostgresConnection
    let logger: Logger
    private let statements: PreparedStatements?
    private(set) var totalChanges = 0
    private(set) var lastChanges = 0
    private var savepoints = 0

    init(connection: PostgresConnection, statements: PreparedStatements?, logger: Logger) {
        self.connection = connection
        self.statements = statements
        self.logger = logger
    }

    var dialect: SQLDialect { .postgres }

    func fetchAll(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        let (rows, prepared) = try statements.map { try runPrepared(sql, arguments, $0) } ?? (run(sql, arguments).rows, false)
        guard let first = rows.first else { return [] }
        let columns = SQLColumns(first.map(\.columnName))
        return try rows.map { row in
            SQLRow(columns: columns, values: try row.map { cell in
                // Every Bind asks for binary results, but postgres-nio 1.33
                // describes a prepared statement's columns with the format
                // the statement's Describe reported (text): its cells say
                // text over binary bytes, and would not decode.
                var cell = cell
                if prepared { cell.format = .binary }
                return try Self.value(cell)
            })
        }
    }

    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int {
        let result = try run(sql, arguments)
        let changed = result.metadata.rows ?? 0
        if ["INSERT", "UPDATE", "DELETE"].contains(result.metadata.command) {
            totalChanges += changed
            lastChanges = changed
        }
        return changed
    }

    func savepoint<T>(_ body: () throws -> T) throws -> T {
        savepoints += 1
        let name = "orgd_\(savepoints)"
        _ = try run("SAVEPOINT \(name)", [])
        do {
            let result = try body()
            _ = try run("RELEASE SAVEPOINT \(name)", [])
            return result
        } catch {
            // Undoes the savepoint's changes and leaves the transaction usable.
            _ = try? run("ROLLBACK TO SAVEPOINT \(name)", [])
            throw error
        }
    }

    /// Runs one statement and waits for its whole answer.
    func run(_ sql: String, _ arguments: SQLArguments) throws -> PostgresQueryResult {
        var binds = PostgresBindings(capacity: arguments.values.count)
        for value in arguments.values {
            switch value {
            case .null: binds.appendNull()
            case .integer(let integer): binds.append(integer)
            case .real(let real): binds.append(real)
            case .text(let text): binds.append(text)
            case .blob(let data): binds.append(ByteBuffer(bytes: data))
            }
        }
        let query = PostgresQuery(unsafeSQL: Self.numbered(sql), binds: binds)
        let logger = self.logger
        return try onOpenConnection { connection in connection.query(query, logger: logger) }
    }

    /// Runs a statement that returns rows as this connection's prepared
    /// statement, preparing it first if it is new here. Falls back to an
    /// unnamed statement when it cannot be prepared (not a query) or the
    /// connection holds as many as it may.
    private func runPrepared(_ sql: String, _ arguments: SQLArguments, _ statements: PreparedStatements) throws -> (rows: [PostgresRow], prepared: Bool) {
        guard Self.isPreparable(sql) else { return (try run(sql, arguments).rows, false) }
        let text = Self.numbered(sql, types: arguments.values.map(Self.parameterType))
        let prepared: PreparedQuery
        if let known = statements[text] {
            prepared = known
        } else if statements.isFull {
            return (try run(sql, arguments).rows, false)
        } else {
            prepared = try Self.restatingErrors { try onOpenConnection { connection in connection.prepare(query: text) } }
            statements.add(prepared, for: text)
        }
        let binds = arguments.values.map(Self.data)
        do {
            return (try Self.restatingErrors { try onOpenConnection { _ in prepared.execute(binds) } }, true)
        } catch let error as PostgresRefusal where error.isStalePreparedStatement {
            // The server no longer knows the connection's statements, or a
            // schema change altered a statement's result columns: forget
            // them all; the transaction's next attempt prepares them again.
            statements.removeAll()
            throw error
        }
    }

    /// Runs `body`, restating the errors of postgres-nio's older API (which
    /// its prepared statements use) as the store reads them: a refusal as
    /// `PostgresRefusal`, a closed connection as the outage it is.
    private static func restatingErrors<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as PostgresError {
            switch error {
            case .server(let message): throw PostgresRefusal(message)
            case .connectionClosed: throw PostgresErrors.unreachable
            case .protocol(let text): throw RPCError(.unavailable, "PostgreSQL connection failed (\(text)); retry")
            }
        }
    }

    /// Hands `body` to the connection on its event loop, and only while its
    /// channel is open, and waits for its answer. postgres-nio writes a
    /// query to the channel without a promise for the write: on a channel
    /// that closed meanwhile (PostgreSQL ended the connection just as the
    /// pool leased it) the write fails unseen and the query's answer never
    /// comes — this thread would wait for ever, and with it the call (seen
    /// when PostgreSQL restarted under load). On the loop, an open channel
    /// takes the query into its handler, which fails it if the connection
    /// closes later.
    private func onOpenConnection<T>(_ body: @escaping @Sendable (PostgresConnection) -> EventLoopFuture<T>) throws -> T {
        let connection = self.connection
        return try connection.eventLoop.flatSubmit {
            guard !connection.isClosed else {
                return connection.eventLoop.makeFailedFuture(
                    RPCError(.unavailable, "PostgreSQL closed the connection; retry (a write in flight may or may not have committed)"))
            }
            return body(connection)
        }.wait()
    }

    /// Whether `sql` can be a prepared statement (PREPARE takes SELECT,
    /// VALUES, INSERT, UPDATE, DELETE and MERGE, with or without WITH).
    static func isPreparable(_ sql: String) -> Bool {
        let head = sql.utf8.drop(while: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }).prefix(6)
        let word = String(decoding: head, as: UTF8.self).uppercased()
        return ["SELECT", "WITH ", "INSERT", "UPDATE", "DELETE", "VALUES"].contains { word.hasPrefix($0) }
    }

    /// The type PostgreSQL is told for a parameter: the one an unnamed
    /// statement declares for the same value (postgres-nio sends int8,
    /// float8, text, bytea), and none for NULL, whose type PostgreSQL
    /// infers from where it stands. So a prepared statement types its
    /// parameters exactly as the unnamed one would.
    static func parameterType(_ value: SQLValue) -> String? {
        switch value {
        case .null: nil
        case .integer: "int8"
        case .real: "float8"
        case .text: "text"
        case .blob: "bytea"
        }
    }

    /// A value as a prepared statement's parameter (binary, as unnamed).
    static func data(_ value: SQLValue) -> PostgresData {
        switch value {
        case .null: .null
        case .integer(let integer): PostgresData(int64: integer)
        case .real(let real): PostgresData(double: real)
        case .text(let text): PostgresData(string: text)
        case .blob(let data): PostgresData(bytes: data)
        }
    }

    /// `sql` with each `?` outside quotes numbered `$1`, `$2`, …; with
    /// `types`, each number is followed by its type's cast (`$1::int8`)
    /// where it has one.
    static func numbered(_ sql: String, types: [String?] = []) -> String {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var quote: Character?
        var number = 0
        for character in sql {
            if let open = quote {
                if character == open { quote = nil }
                out.append(character)
            } else if character == "'" || character == "\"" {
                quote = character
                out.append(character)
            } else if character == "?" {
                out += "$\(number + 1)"
                if number < types.count, let type = types[number] { out += "::\(type)" }
                number += 1
            } else {
                out.append(character)
            }
        }
        return out
    }

    /// A cell as the store reads values: integers (and booleans) as
    /// integers, bytea as bytes, void as NULL, everything else as text.
    static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard let bytes = cell.bytes else { return .null }
        switch cell.dataType {
        case .int8, .int4, .int2: return .integer(try cell.decode(Int64.self))
        case .bool: return .integer(try cell.decode(Bool.self) ? 1 : 0)
        case .float8, .float4: return .real(try cell.decode(Double.self))
        case .bytea: return .blob(Data(bytes.readableBytesView))
        case .void: return .null
        case .numeric:
            // sum() and the like; the store's numbers are whole.
            let decimal = try cell.decode(Decimal.self)
            return .integer(NSDecimalNumber(decimal: decimal).int64Value)
        default: return .text(try cell.decode(String.self))
        }
    }
}
