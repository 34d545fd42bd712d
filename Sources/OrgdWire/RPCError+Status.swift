import OrgdCore
import OrgdProto
import SwiftProtobuf

extension RPCError {
    /// The `google.rpc.Status` that carries this error, with a
    /// `google.rpc.BadRequest` detail when fields are named.
    public var status: Google_Rpc_Status {
        var status = Google_Rpc_Status()
        status.code = code.rawValue
        status.message = message
        if !fieldViolations.isEmpty {
            var badRequest = Google_Rpc_BadRequest()
            badRequest.fieldViolations = fieldViolations.map {
                var violation = Google_Rpc_BadRequest.FieldViolation()
                violation.field = $0.field
                violation.description_p = $0.description
                return violation
            }
            if let any = try? Google_Protobuf_Any(message: badRequest) {
                status.details = [any]
            }
        }
        return status
    }

    /// Reads an error back from a non-OK status (the client side).
    public init(status: Google_Rpc_Status) {
        var violations: [FieldViolation] = []
        for detail in status.details where detail.isA(Google_Rpc_BadRequest.self) {
            if let badRequest = try? Google_Rpc_BadRequest(unpackingAny: detail) {
                violations += badRequest.fieldViolations.map { FieldViolation(field: $0.field, description: $0.description_p) }
            }
        }
        self.init(StatusCode(wireValue: status.code), status.message, fieldViolations: violations)
    }
}
