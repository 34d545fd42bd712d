import OrgdCore

/// Carries calls to one of several orgd daemons (say two behind one
/// PostgreSQL) and moves to the next when the one in use goes away.
///
/// A call goes to the current daemon. When its connection is found closed
/// before the call is written, or the daemon refuses the call because it is
/// shutting down (it did not run), the call goes to the next address: no
/// daemon ran it, so sending it again cannot run it twice. A call already
/// written on a connection that then drops fails UNAVAILABLE and is not sent
/// again — reads included: the client cannot tell a read from a write by
/// its method, and the caller knows whether a retry is safe (a create with
/// an idempotency key is). The next call goes to the next address. Over gRPC,
/// where the client cannot tell a call not sent from one lost in flight,
/// every other UNAVAILABLE but a connection that could not be made
/// (grpc-swift's "Could not establish a connection", which the gRPC
/// transport words as "cannot connect to orgd at …") is the second kind.
final class FailoverTransport: OrgdCallTransport {
    private let rotation: EndpointRotation

    var endpoints: [OrgdEndpoint] { rotation.endpoints }

    /// `connector` makes a connection to one address, without token or
    /// act-as: the `OrgdConnection` in front adds those to every call.
    init(endpoints: [OrgdEndpoint], connector: @escaping @Sendable (OrgdEndpoint) async throws -> OrgdConnection) {
        rotation = EndpointRotation(endpoints: endpoints, connector: connector)
    }

    /// Connects to the first address that answers (so that `connect` fails
    /// as it does with one address when none does).
    func connect() async throws {
        _ = try await rotation.connection()
    }

    func send(_ call: OutgoingCall) async throws -> IncomingAnswer {
        // Each address at most once for a call that no daemon has run.
        var unsent: [String] = []
        while true {
            let current: EndpointRotation.Current
            do {
                current = try await rotation.connection()
            } catch let error as RPCError where !unsent.isEmpty {
                throw RPCError(.unavailable, "\(error.message); before that: \(unsent.joined(separator: "; "))")
            }
            do {
                return try await current.connection.send(call)
            } catch let error as RPCError where error.code == .unavailable {
                let address = current.connection.endpoint.map(String.init(describing:)) ?? "?"
                if Self.notRun(error, grpc: current.connection.isGRPC) {
                    await rotation.lost(current)
                    unsent.append("\(address): \(error.message)")
                    if unsent.count < rotation.endpoints.count { continue }
                    throw RPCError(.unavailable, "no orgd took the call: \(unsent.joined(separator: "; "))")
                }
                guard !current.connection.isOpen || current.connection.isGRPC else { throw error }
                await rotation.lost(current)
                throw RPCError(.unavailable, "\(error.message) (orgd at \(address); the call may have run and is not sent again; the next call goes to the next address)")
            }
        }
    }

    func close() async {
        await rotation.close()
    }

    /// Whether `error` says no daemon ran the call: it never left this
    /// process, the daemon refused it while shutting down (PROTOCOL.md,
    /// "Several addresses"), or — over gRPC, which connects on the first
    /// call — grpc-swift could not connect at all.
    static func notRun(_ error: RPCError, grpc: Bool) -> Bool {
        error.message == OrgdConnection.closedBeforeSending || error.message.hasPrefix("the server is shutting down")
            || grpc && error.message.hasPrefix(GRPCCallTransport.notConnected)
    }
}
