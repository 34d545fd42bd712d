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
final class PostgresExecutor: SQLExecutor {
    let connection: PostgresConnection
    let logger: Logger
    private(set) var totalChanges = 0
    private(set) var lastChanges = 0
    private var savepoints = 0

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    var dialect: SQLDialect { .postgres }

    func fetchAll(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow] {
        let result = try run(sql, arguments)
        guard let first = result.rows.first else { return [] }
        let columns = SQLColumns(first.map(\.columnName))
        return try result.rows.map { row in
            SQLRow(columns: columns, values: try row.map(Self.value))
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
        let connection = self.connection
        let logger = self.logger
        // The query is handed to the connection on its event loop, and only
        // while its channel is open. postgres-nio writes a query to the
        // channel without a promise for the write: on a channel that closed
        // meanwhile (PostgreSQL ended the connection just as the pool leased
        // it) the write fails unseen and the query's answer never comes —
        // this thread would wait for ever, and with it the call (seen when
        // PostgreSQL restarted under load). On the loop, an open channel
        // takes the query into its handler, which fails it if the
        // connection closes later.
        return try connection.eventLoop.flatSubmit {
            guard !connection.isClosed else {
                return connection.eventLoop.makeFailedFuture(
                    RPCError(.unavailable, "PostgreSQL closed the connection; retry (a write in flight may or may not have committed)"))
            }
            return connection.query(query, logger: logger)
        }.wait()
    }

    /// `sql` with each `?` outside quotes numbered `$1`, `$2`, ….
    static func numbered(_ sql: String) -> String {
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
                number += 1
                out += "$\(number)"
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
