/// The one error type that crosses layers: a status code, a message for
/// humans, and the request fields it concerns. Every domain failure maps to
/// exactly one of these, and the wire carries it as a `google.rpc.Status`.
public struct RPCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A request field that was wrong, and why.
    public struct FieldViolation: Sendable, Equatable {
        /// The field's name as the schema spells it, e.g. `identifier.value`.
        public var field: String
        /// Why the value was refused.
        public var description: String

        public init(field: String, description: String) {
            self.field = field
            self.description = description
        }
    }

    public var code: StatusCode
    public var message: String
    public var fieldViolations: [FieldViolation]

    public init(_ code: StatusCode, _ message: String, fieldViolations: [FieldViolation] = []) {
        self.code = code
        self.message = message
        self.fieldViolations = fieldViolations
    }

    public var description: String { "\(code): \(message)" }

    /// An INVALID_ARGUMENT naming the field: "<field>: <why>".
    public static func invalidArgument(field: String, _ why: String) -> RPCError {
        RPCError(.invalidArgument, "\(field): \(why)", fieldViolations: [FieldViolation(field: field, description: why)])
    }

    public static func notFound(_ what: String, id: String) -> RPCError {
        RPCError(.notFound, "\(what) \(id) not found")
    }

    /// A thing the request refers to in `field` does not exist: NOT_FOUND,
    /// "<field>: <what> <id> not found", the field as a violation. The one
    /// rule for missing references (PROTOCOL.md, "Errors").
    public static func notFound(field: String, _ what: String, id: String) -> RPCError {
        let why = "\(what) \(id) not found"
        return RPCError(.notFound, "\(field): \(why)", fieldViolations: [FieldViolation(field: field, description: why)])
    }

    /// This NOT_FOUND said of the request field that named the missing thing
    /// ("<field>: <message>", the field as a violation); any other error, or
    /// one that names its field already, as it is.
    public func referenced(from field: String) -> RPCError {
        guard code == .notFound, fieldViolations.isEmpty else { return self }
        return RPCError(.notFound, "\(field): \(message)", fieldViolations: [FieldViolation(field: field, description: message)])
    }

    /// Runs a lookup of what `field` names, saying the field if it is missing.
    public static func referenced<T>(from field: String, _ lookup: () throws -> T) throws -> T {
        do { return try lookup() } catch let error as RPCError { throw error.referenced(from: field) }
    }

    /// A thing the request refers to in `field` exists but is in the wrong
    /// state or relation for this call: FAILED_PRECONDITION naming the field.
    public static func failedPrecondition(field: String, _ why: String) -> RPCError {
        RPCError(.failedPrecondition, "\(field): \(why)", fieldViolations: [FieldViolation(field: field, description: why)])
    }

    public static func permissionDenied(_ message: String) -> RPCError {
        RPCError(.permissionDenied, message)
    }
}
