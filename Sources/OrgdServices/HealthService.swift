import OrgdCore
import OrgdProto

/// `grpc.health.v1.Health`: open to anyone, so that probes and load
/// balancers need no token.
struct HealthService {
    static let name = "grpc.health.v1.Health"

    /// Registers Check; it answers from `isServing` and the final table.
    static func register(in table: inout MethodTable, isServing: @escaping @Sendable () -> Bool, knows: @escaping @Sendable (String) -> Bool) {
        table.add(name, "Check", rule: .anyone) { (request: Grpc_Health_V1_HealthCheckRequest, _) in
            guard request.service.isEmpty || knows(request.service) else {
                throw RPCError(.notFound, "unknown service \(request.service)")
            }
            var response = Grpc_Health_V1_HealthCheckResponse()
            response.status = isServing() ? .serving : .notServing
            return response
        }
    }
}
