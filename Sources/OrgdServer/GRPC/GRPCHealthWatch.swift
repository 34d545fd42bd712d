import GRPCCore
import OrgdProto
import OrgdServices
import OrgdWire
import SwiftProtobuf

/// `grpc.health.v1.Health/Watch`: the one streaming method, so gRPC alone
/// serves it (Check goes through the Dispatcher like every call). Open to
/// anyone, like Check, so probes need no token. Sends the status of the
/// service now and at every change, read every 250 ms from the same source
/// as Check (and at once when the RPC is cancelled: the client went away or
/// the server started draining), until the client cancels or the server
/// drains, whose NOT_SERVING is the last message. An unknown service streams
/// SERVICE_UNKNOWN, as the health protocol says, rather than failing.
struct GRPCHealthWatch: Sendable {
    let status: @Sendable (String) -> Grpc_Health_V1_HealthCheckResponse.ServingStatus
    let draining: @Sendable () -> Bool
    static let interval: Duration = .milliseconds(250)

    func register<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Grpc_Health_V1_Health.Method.Watch.descriptor, deserializer: RawBytes(), serializer: RawBytes()
        ) { request, context in
            let single = try await ServerRequest(stream: request)
            let service: String
            do {
                service = try Grpc_Health_V1_HealthCheckRequest(serializedBytes: single.message).service
            } catch {
                throw RPCError(code: .invalidArgument, message: "payload does not decode as grpc.health.v1.HealthCheckRequest: \(error)")
            }
            return StreamingServerResponse { writer in
                try await watch(service, cancellation: context.cancellation, writer)
                return [:]
            }
        }
    }

    private func watch(_ service: String, cancellation: ServerContext.RPCCancellationHandle, _ writer: RPCWriter<[UInt8]>) async throws {
        var sent: Grpc_Health_V1_HealthCheckResponse.ServingStatus?
        while true {
            // Read before looking at the drain: NOT_SERVING is set before it starts.
            let now = status(service)
            if now != sent {
                var response = Grpc_Health_V1_HealthCheckResponse()
                response.status = now
                try await writer.write(try response.serializedBytes())
                sent = now
            }
            if draining() || cancellation.isCancelled || Task.isCancelled { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: Self.interval) }
                group.addTask { try? await cancellation.cancelled }
                await group.next()
                group.cancelAll()
            }
        }
    }
}
