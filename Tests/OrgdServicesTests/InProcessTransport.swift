import OrgdClient
import OrgdCore
import OrgdServices
import OrgdWire

/// Hands each call of the typed client straight to a `Dispatcher`, through
/// the one entry the ttrpc and gRPC listeners use, as a connection of
/// `connection`'s kind (the Unix socket: the local operator; TCP: a token
/// needed). No sockets and no frames: what this tier tests is the rules, on
/// the path production takes from the dispatcher on. Deadlines are the
/// listeners' (the end-to-end tier tests them), so `timeout` is not used.
struct InProcessTransport: OrgdCallTransport {
    let dispatcher: Dispatcher
    let connection: ConnectionInfo

    func send(_ call: OutgoingCall) async throws -> IncomingAnswer {
        let outcome = await Self.dispatch(
            dispatcher, service: call.method.service.fullyQualifiedService, method: call.method.method,
            metadata: call.metadata, payload: call.payload, connection: connection)
        guard outcome.code == .ok else { throw RPCError(status: outcome.status) }
        return IncomingAnswer(
            payload: outcome.payload, metadata: outcome.consistencyToken.map { [(key: ConsistencyTokens.metadataKey, value: $0)] } ?? [])
    }

    func close() async {}

    /// Runs one call to its outcome, whatever its status.
    static func dispatch(
        _ dispatcher: Dispatcher, service: String, method: String, metadata: [(key: String, value: String)], payload: [UInt8],
        connection: ConnectionInfo
    ) async -> CallOutcome {
        await dispatcher.dispatch(service: service, method: method, metadata: Metadata(pairs: metadata), payload: payload, connection: connection)
    }
}
