import OrgdCore
import OrgdProto

/// `grpc.health.v1.Health`: open to anyone, so that probes and load
/// balancers need no token. Its proto is gRPC's own, without our policy
/// option, so its policy is declared here.
struct HealthService {
    typealias Method = Grpc_Health_V1_Health.Method
    static let name = Grpc_Health_V1_Health.descriptor.fullyQualifiedService

    /// Registers Check; it answers from `status`. (Watch streams, so it is
    /// served by the gRPC transport alone, from the same `status`.)
    static func register(in table: inout MethodTable, status: @escaping @Sendable (String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus) {
        table.add(Method.Check.self) { request, _ in
            let status = status(request.service)
            guard status != .serviceUnknown else { throw RPCError(.notFound, "unknown service \(request.service)") }
            var response = Grpc_Health_V1_HealthCheckResponse()
            response.status = status
            return response
        }
    }
}

extension Grpc_Health_V1_Health.Method.Check: PolicedMethod {
    static let policy = MethodPolicy(access: .anyone, audit: .none)
}
