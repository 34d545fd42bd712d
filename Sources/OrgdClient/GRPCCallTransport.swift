import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import OrgdCore
import OrgdProto
import OrgdWire
import Synchronization

/// Calls over gRPC/HTTP/2 (orgd's `--grpc-listen`) with grpc-swift-2's
/// `GRPCClient` on grpc-swift-nio-transport's Posix HTTP/2 transport, so
/// that the same typed client runs over either transport and a caller cannot
/// tell them apart: the metadata goes as gRPC metadata, the timeout as
/// `grpc-timeout`, and a failure comes back as the `OrgdCore.RPCError` the
/// ttrpc path throws, field violations included (read from the
/// `grpc-status-details-bin` trailer, a serialized `google.rpc.Status`).
final class GRPCCallTransport: OrgdCallTransport {
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    /// Runs the client's connections until `close`.
    private let connections: Task<Void, Never>
    private let closed = Atomic(false)
    private let maximumMessageLength: Int
    private let endpoint: String

    /// Sets the transport up; the HTTP/2 connection itself is made by the
    /// first call (a call that cannot connect fails with UNAVAILABLE).
    init(host: String, port: Int, tls: OrgdTLS?, maximumMessageLength: Int, group: any EventLoopGroup) throws {
        endpoint = "grpc:\(host):\(port)"
        let security: HTTP2ClientTransport.Posix.TransportSecurity
        if let tls {
            security = .tls(try tls.grpcSettings())
        } else {
            security = .plaintext
        }
        let config = HTTP2ClientTransport.Posix.Config.defaults { config in
            // The certificate's name, when it is not the host's (and SNI).
            if let name = tls?.serverHostname { config.http2.authority = name }
        }
        let target: any ResolvableTarget =
            if OrgdTLS.isIPv4Address(host) { .ipv4(address: host, port: port) }
            else if OrgdTLS.isIPAddress(host) { .ipv6(address: host, port: port) }
            else { .dns(host: host, port: port) }
        let transport: HTTP2ClientTransport.Posix
        do {
            transport = try HTTP2ClientTransport.Posix(
                target: target, transportSecurity: security, config: config, eventLoopGroup: group)
        } catch {
            throw OrgdCore.RPCError(.invalidArgument, "cannot set up gRPC to \(endpoint): \(error)")
        }
        let client = GRPCClient(transport: transport)
        self.client = client
        self.maximumMessageLength = maximumMessageLength
        connections = Task { try? await client.runConnections() }
    }

    func send(_ call: OutgoingCall) async throws -> IncomingAnswer {
        var metadata = Metadata()
        metadata.reserveCapacity(call.metadata.count + 1)
        for (key, value) in call.metadata { metadata.addString(value, forKey: key) }
        guard let timeout = call.timeout else { return try await unary(call, metadata) }
        // The timeout goes as `grpc-timeout` and the client waits a little
        // longer than it (as on ttrpc), so the server's DEADLINE_EXCEEDED is
        // the answer; grpc-swift's own `CallOptions.timeout` would end the
        // call locally at the same instant with a message of its own.
        let nanoseconds = max(1, OrgdConnection.nanoseconds(timeout))
        metadata.replaceOrAddString(GRPCTimeout.header(nanoseconds: nanoseconds), forKey: "grpc-timeout")
        guard nanoseconds <= Int64.max - CallOptions.deadlineGrace else { return try await unary(call, metadata) }
        return try await withThrowingTaskGroup(of: IncomingAnswer.self) { group in
            group.addTask { [metadata] in try await self.unary(call, metadata) }
            group.addTask {
                try await Task.sleep(for: .nanoseconds(nanoseconds + CallOptions.deadlineGrace))
                throw OrgdCore.RPCError(.deadlineExceeded, "no answer before the deadline")
            }
            defer { group.cancelAll() }
            guard let answer = try await group.next() else { preconditionFailure("two tasks were added") }
            return answer
        }
    }

    private func unary(_ call: OutgoingCall, _ metadata: Metadata) async throws -> IncomingAnswer {
        guard !closed.load(ordering: .acquiring) else { throw OrgdCore.RPCError(.unavailable, "the connection is closed") }
        var options = GRPCCore.CallOptions.defaults
        options.maxResponseMessageBytes = maximumMessageLength
        // The server's limit is the one a caller meets, as on ttrpc.
        options.maxRequestMessageBytes = Int(UInt32.max)
        do {
            return try await client.unary(
                request: ClientRequest(message: call.payload, metadata: metadata), descriptor: call.method,
                serializer: RawBytes(), deserializer: RawBytes(), options: options
            ) { response in
                let headers: [(key: String, value: String)] = response.metadata.compactMap { key, value in
                    guard case .string(let text) = value else { return nil }
                    return (key: key, value: text)
                }
                return IncomingAnswer(payload: try response.message, metadata: headers)
            }
        } catch let error as GRPCCore.RPCError {
            if error.code == .unavailable, error.message.hasPrefix("Could not establish a connection") {
                // grpc-swift's words name its resolver's target; say it as ttrpc does.
                let reason = error.cause.map { ConnectionFailure.reason($0) + ConnectionFailure.hint($0, unix: false) } ?? "no connection could be made"
                throw OrgdCore.RPCError(.unavailable, "\(Self.notConnected) \(endpoint): \(reason)")
            }
            throw Self.orgdError(error)
        } catch {
            // The client stopped (closed) or was never able to run.
            throw OrgdCore.RPCError(.unavailable, "the connection to orgd at \(endpoint) is closed: \(error)")
        }
    }

    /// Refuses new calls (UNAVAILABLE), lets those in flight finish (each
    /// has its deadline, if the caller gave one), then ends the HTTP/2
    /// connection with GOAWAY and returns once it is gone.
    func close() async {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { client.beginGracefulShutdown() }
        await connections.value
    }

    /// The error a failed gRPC call stands for: the server's
    /// `google.rpc.Status` from `grpc-status-details-bin` when it sent one
    /// (orgd does for every failure), else the bare code and message (a
    /// proxy's, or the transport's own).
    /// How a failed connection's message begins (FailoverTransport looks for it).
    static let notConnected = "cannot connect to orgd at"

    static func orgdError(_ error: GRPCCore.RPCError) -> OrgdCore.RPCError {
        let code = Int32(error.code.rawValue)
        if let details = error.metadata[binaryValues: "grpc-status-details-bin"].first(where: { _ in true }),
           let status = try? Google_Rpc_Status(serializedBytes: details), status.code == code {
            return OrgdCore.RPCError(status: status)
        }
        return OrgdCore.RPCError(StatusCode(wireValue: code), error.message)
    }
}
