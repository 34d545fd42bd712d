import Foundation
import OrgdCore

/// The one SQL interface the store's queries are written against. Each
/// backend (SQLite through GRDB, PostgreSQL through postgres-nio) runs the
/// same statements through its own `SQLExecutor`; the queries, and every rule
/// they carry, are written once. Statements use `?` placeholders; the
/// PostgreSQL executor numbers them.
protocol SQLExecutor {
    /// Which database runs the statements, for the few places the SQL differs.
    var dialect: SQLDialect { get }
    func fetchAll(_ sql: String, _ arguments: SQLArguments) throws -> [SQLRow]
    /// Runs a statement that returns no rows; returns how many rows it changed.
    @discardableResult
    func execute(_ sql: String, _ arguments: SQLArguments) throws -> Int
    /// Rows changed by this executor's statements so far, in this transaction
    /// and the ones before it on the same connection (only differences matter).
    var totalChanges: Int { get }
    /// Rows changed by the last INSERT, UPDATE or DELETE (not counting what
    /// its triggers changed).
    var lastChanges: Int { get }
    /// Runs `body` in a savepoint: if it throws, only its own changes are undone.
    func savepoint<T>(_ body: () throws -> T) throws -> T
}

/// The databases orgd runs on.
public enum SQLDialect: String, Sendable {
    case sqlite
    case postgres

    /// `LIKE` for a case-insensitive prefix match: SQLite's LIKE already
    /// folds ASCII case; PostgreSQL's does not, ILIKE does.
    var caseInsensitiveLike: String { self == .sqlite ? "LIKE" : "ILIKE" }

    /// The length in bytes of a TEXT column's value.
    func octetLength(_ column: String) -> String {
        self == .sqlite ? "length(CAST(\(column) AS BLOB))" : "octet_length(\(column))"
    }
}

/// One value as the store reads and writes it. Both backends store only
/// these: integers (booleans as 0/1, times as microseconds), reals, text and
/// bytes.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob(Data)
}

/// What can be bound to a statement's `?`.
protocol SQLEncodable {
    var sqlValue: SQLValue { get }
}

/// What a column's value can be read as. Reading NULL, or a value of another
/// kind, into a non-optional type is a programming error (the schema says
/// what each column holds), as it was with GRDB's rows.
protocol SQLDecodable {
    static func decode(_ value: SQLValue) -> Self?
}

extension String: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .text(self) }
    static func decode(_ value: SQLValue) -> String? {
        if case .text(let text) = value { return text }
        return nil
    }
}

extension Int64: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .integer(self) }
    static func decode(_ value: SQLValue) -> Int64? {
        if case .integer(let integer) = value { return integer }
        return nil
    }
}

extension Int: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .integer(Int64(self)) }
    static func decode(_ value: SQLValue) -> Int? {
        if case .integer(let integer) = value { return Int(exactly: integer) }
        return nil
    }
}

extension Int32: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .integer(Int64(self)) }
    static func decode(_ value: SQLValue) -> Int32? {
        if case .integer(let integer) = value { return Int32(exactly: integer) }
        return nil
    }
}

extension Bool: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .integer(self ? 1 : 0) }
    static func decode(_ value: SQLValue) -> Bool? {
        if case .integer(let integer) = value { return integer != 0 }
        return nil
    }
}

extension Double: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .real(self) }
    static func decode(_ value: SQLValue) -> Double? {
        switch value {
        case .real(let real): real
        case .integer(let integer): Double(integer)
        default: nil
        }
    }
}

extension Data: SQLEncodable, SQLDecodable {
    var sqlValue: SQLValue { .blob(self) }
    static func decode(_ value: SQLValue) -> Data? {
        if case .blob(let data) = value { return data }
        return nil
    }
}

extension Optional: SQLEncodable where Wrapped: SQLEncodable {
    var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

extension Optional: SQLDecodable where Wrapped: SQLDecodable {
    static func decode(_ value: SQLValue) -> Wrapped?? {
        if case .null = value { return .some(nil) }
        return Wrapped.decode(value).map { .some($0) }
    }
}

/// A statement's arguments, in the order of its `?`s.
struct SQLArguments: ExpressibleByArrayLiteral {
    var values: [SQLValue]

    init(_ values: [SQLValue] = []) {
        self.values = values
    }

    init(arrayLiteral elements: (any SQLEncodable)?...) {
        values = elements.map { $0?.sqlValue ?? .null }
    }

    static func += (arguments: inout SQLArguments, more: SQLArguments) {
        arguments.values += more.values
    }

    static func + (arguments: SQLArguments, more: SQLArguments) -> SQLArguments {
        SQLArguments(arguments.values + more.values)
    }
}

/// One row of a result: its columns by name (shared by every row of the
/// result) and its values.
struct SQLRow {
    let columns: SQLColumns
    let values: [SQLValue]

    /// The value of `column`, read as `T`.
    subscript<T: SQLDecodable>(_ column: String) -> T {
        guard let index = columns.index(of: column) else {
            preconditionFailure("no column \(column) in the result (\(columns.names))")
        }
        return self[index]
    }

    /// The value of the column at `index`, read as `T`.
    subscript<T: SQLDecodable>(_ index: Int) -> T {
        guard let value = T.decode(values[index]) else {
            preconditionFailure("column \(columns.names[index]) holds \(values[index]), not \(T.self)")
        }
        return value
    }
}

/// A result's column names, looked up by name.
final class SQLColumns {
    let names: [String]
    private let positions: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        // The first of two equal names wins, as in GRDB.
        for (index, name) in names.enumerated().reversed() { positions[name] = index }
        self.positions = positions
    }

    func index(of name: String) -> Int? { positions[name] }
}
