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

    public static func permissionDenied(_ message: String) -> RPCError {
        RPCError(.permissionDenied, message)
    }
}
