import OrgdClient
import OrgdCore
import SwiftProtobuf
import Testing

/// Calls every method in `cases` as every caller and checks the outcome:
/// the anonymous caller is UNAUTHENTICATED, allowed callers get past
/// authorisation (any other answer is theirs to get), everyone else is
/// PERMISSION_DENIED.
func checkPermissionMatrix<Caller: Hashable & CustomStringConvertible>(
    service: String,
    cases: [(method: String, request: any SwiftProtobuf.Message, allowed: Set<Caller>)],
    callers: [Caller], anonymous: Caller, clients: [Caller: OrgdClient],
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    for (method, request, allowed) in cases {
        for caller in callers {
            let response = try await clients[caller]!.connection.call(service: service, method: method, payload: try request.serializedBytes())
            let code = StatusCode(wireValue: response.status.code)
            if caller == anonymous {
                #expect(code == .unauthenticated, "\(method) as \(caller): \(code)", sourceLocation: sourceLocation)
            } else if allowed.contains(caller) {
                #expect(code != .permissionDenied && code != .unauthenticated,
                        "\(method) as \(caller): \(code) \(response.status.message)", sourceLocation: sourceLocation)
            } else {
                #expect(code == .permissionDenied, "\(method) as \(caller): \(code) \(response.status.message)", sourceLocation: sourceLocation)
            }
        }
    }
}
