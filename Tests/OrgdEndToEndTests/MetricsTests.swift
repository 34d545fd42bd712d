import Foundation
import OrgdClient
import OrgdProto
import Testing

@Suite("metrics")
struct MetricsTests {
    /// The value of the first sample line that starts with `prefix`.
    static func sample(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix) }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test("after real calls, the Prometheus endpoint counts them by method and code, with latency, connections and commits")
    func scrape() async throws {
        try await withDaemon { daemon in
            let client = try await daemon.client()
            for index in 0..<3 {
                var create = Orgd_V1_CreateOrganizationRequest()
                create.name = "Counted \(index)"
                create.type = .department
                _ = try await client.organizations.createOrganization(create)
            }
            _ = await rpcError { _ = try await client.organizations.createOrganization(.init()) }
            _ = try await client.connection.call(service: "no.Such", method: "Thing", payload: [])
            let port = try #require(daemon.bound.metricsPort)
            let result = try await Subprocess.run("orgctl", ["metrics", "--metrics-address", "127.0.0.1:\(port)"])
            #expect(result.status == 0, "\(result.stderr)")
            let text = result.stdout
            let create = #"orgd_calls_total{method="orgd.v1.OrganizationService/CreateOrganization",code="#
            #expect(Self.sample(text, create + #""OK"}"#) == 3, "\(text)")
            #expect(Self.sample(text, create + #""INVALID_ARGUMENT"}"#) == 1)
            #expect(Self.sample(text, #"orgd_calls_total{method="unknown",code="UNIMPLEMENTED"}"#) == 1)
            #expect(Self.sample(text, #"orgd_call_duration_seconds_count{method="orgd.v1.OrganizationService/CreateOrganization"}"#) == 4)
            #expect(Self.sample(text, "orgd_connections_open") == 1)
            #expect(Self.sample(text, "orgd_calls_in_flight") == 0)
            #expect((Self.sample(text, "orgd_commit_batch_size_count") ?? 0) >= 3)
            #expect((Self.sample(text, "orgd_commit_duration_seconds_count") ?? 0) >= 3)
            let filtered = try await Subprocess.run("orgctl", ["metrics", "--metrics-address", "127.0.0.1:\(port)", "--grep", "orgd_connections_open"])
            #expect(filtered.stdout.split(separator: "\n").allSatisfy { $0.contains("orgd_connections_open") })
            await client.close()
        }
    }
}
