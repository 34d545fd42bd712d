import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import SwiftProtobuf
import Testing

/// Timestamps no calendar holds, sent over TCP by the callers who may make
/// consent requests: each is refused naming the field, and orgd lives on.
/// (`end_time.seconds = 10^13` used to kill the daemon converting to
/// microseconds.)
@Suite("bad timestamps end to end")
struct BadTimestampTests {
    static func timestamp(_ seconds: Int64, _ nanos: Int32 = 0) -> Google_Protobuf_Timestamp {
        var value = Google_Protobuf_Timestamp()
        value.seconds = seconds
        value.nanos = nanos
        return value
    }

    static let bad: [(String, Google_Protobuf_Timestamp)] = [
        ("seconds = 10^13", timestamp(10_000_000_000_000)),
        ("seconds = -10^13", timestamp(-10_000_000_000_000)),
        ("nanos = -1", timestamp(1_900_000_000, -1)),
        ("nanos = 10^9", timestamp(1_900_000_000, 1_000_000_000)),
    ]

    @Test("CreateConsentRequest and UpdateConsentRequest refuse out-of-range start_time and end_time, from an admin and from the manager, and orgd still serves")
    func outOfRange() async throws {
        try await withConsentWorld { (world: ConsentWorld) async throws in
            let admin = try await MembershipEndToEndTests.user(world.local, role: .admin)
            let adminClient = try await world.daemon.client(
                world.daemon.tcp, token: try await MembershipEndToEndTests.token(world.local, user: admin.id))
            let existing = try await world.request("Study", [world.bloodPressure])
            for (who, client) in [("admin", adminClient), ("manager", world.managerClient)] {
                for (what, value) in Self.bad {
                    for field in ["start_time", "end_time"] {
                        var create = Orgd_V1_CreateConsentRequestRequest()
                        create.organizationID = world.organization.id
                        create.kind = .study
                        create.name = "Study"
                        create.scopes = [ConsentWorld.reference(world.bloodPressure)]
                        if field == "start_time" { create.startTime = value } else { create.endTime = value }
                        let created = await rpcError { _ = try await client.consents.createConsentRequest(create) }
                        #expect(created?.code == .invalidArgument, "create, \(who), \(field) \(what): \(String(describing: created))")
                        #expect(created?.fieldViolations.first?.field == field, "create, \(who), \(field) \(what)")
                        #expect(created?.message.hasPrefix("\(field): ") == true)

                        var update = Orgd_V1_UpdateConsentRequestRequest()
                        update.id = existing.id
                        update.version = existing.version
                        if field == "start_time" { update.startTime = value } else { update.endTime = value }
                        let updated = await rpcError { _ = try await client.consents.updateConsentRequest(update) }
                        #expect(updated?.code == .invalidArgument, "update, \(who), \(field) \(what): \(String(describing: updated))")
                        #expect(updated?.fieldViolations.first?.field == field, "update, \(who), \(field) \(what)")
                    }
                }
            }
            // Nothing was half-written: the request is as it was.
            var get = Orgd_V1_GetConsentRequestRequest()
            get.id = existing.id
            let after = try await world.managerClient.consents.getConsentRequest(get)
            #expect(after.version == existing.version && !after.hasStartTime && !after.hasEndTime)
            // The daemon still serves, on a new connection, and so do the old ones.
            let fresh = try await world.daemon.client(world.daemon.tcp, token: nil)
            #expect(try await fresh.health.check().status == .serving)
            await fresh.close()
            #expect(try await adminClient.health.check().status == .serving)
            _ = try await world.request("Still works", [world.bloodPressure])
            await adminClient.close()
        }
    }

    @Test("a client timeout beyond what Int64 nanoseconds hold, or negative, is clamped, not trapped on")
    func hugeClientTimeout() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            for timeout: Duration in [.seconds(Int64.max), .seconds(Int64.min), .seconds(9_223_372_036), .nanoseconds(Int64.max)] {
                let answer = await rpcError { _ = try await client.health.check(options: CallOptions(timeout: timeout)) }
                #expect(answer == nil || answer?.code == .deadlineExceeded, "\(timeout): \(String(describing: answer))")
            }
            #expect(try await client.health.check(options: CallOptions(timeout: .seconds(Int64.max))).status == .serving)
            await client.close()
        }
    }
}
