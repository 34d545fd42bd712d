import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// A real orgd process, killed while writers run. Every write it answered OK
/// must survive, and the SQLite file must stay sound.
@Suite("crash safety", .timeLimit(.minutes(2)))
struct CrashSafetyTests {
    /// What the writers saw.
    final class Ledger: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var acknowledged: [String] = []
        private(set) var failures: [String] = []

        func ok(_ id: String) { lock.withLock { acknowledged.append(id) } }
        func failed(_ message: String) { lock.withLock { failures.append(message) } }
        var count: Int { lock.withLock { acknowledged.count } }

        /// Waits until `count` writes in all have been acknowledged: the
        /// signal then comes after a known amount of work, however fast the
        /// machine is.
        func waitFor(_ target: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(60)
            while count < target && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        }
    }

    /// `count` connections, each creating organisations one after another
    /// until its connection fails.
    static func writers(_ socket: String, count: Int, ledger: Ledger, tag: String) -> Task<Void, Never> {
        Task {
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<count {
                    group.addTask {
                        guard let client = try? await OrgdClient.connect(to: .unix(path: socket)) else { return }
                        var sequence = 0
                        while true {
                            var request = Orgd_V1_CreateOrganizationRequest()
                            request.name = "\(tag) writer \(writer) call \(sequence)"
                            request.type = .department
                            sequence += 1
                            do {
                                ledger.ok(try await client.organizations.createOrganization(request).id)
                            } catch let error as RPCError {
                                ledger.failed(error.message)
                                if error.code == .unavailable { break }
                            } catch {
                                ledger.failed("\(error)")
                                break
                            }
                        }
                        await client.close()
                    }
                }
            }
        }
    }

    static func storedIDs(_ socket: String) async throws -> Set<String> {
        let client = try await OrgdClient.connect(to: .unix(path: socket))
        var ids = Set<String>()
        var request = Orgd_V1_ListOrganizationsRequest()
        request.pageSize = 1000
        repeat {
            let page = try await client.organizations.listOrganizations(request)
            ids.formUnion(page.organizations.map(\.id))
            request.pageToken = page.nextPageToken
        } while !request.pageToken.isEmpty
        await client.close()
        return ids
    }

    static func integrity(_ database: String) async throws -> String {
        try await TTRPCInteropTests.run("/usr/bin/sqlite3", [database, "PRAGMA integrity_check"], environment: [:]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("SIGKILL at random moments, several rounds: every acknowledged write survives and the file is sound")
    func sigkill() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/orgd.sock"
        let ledger = Ledger()
        var generator = SeededGenerator(seed: 8_112_026)
        for round in 0..<4 {
            let daemon = try DaemonProcess(directory: directory, arguments: ["--socket", socket])
            _ = try await daemon.waitUntilListening(count: 1)
            let writers = Self.writers(socket, count: 8, ledger: ledger, tag: "round \(round)")
            // Kill after a random amount of acknowledged work, with writes in flight.
            try await ledger.waitFor(ledger.count + Int.random(in: 20...150, using: &generator))
            _ = try await daemon.stop(signal: SIGKILL)
            await writers.value
        }
        #expect(ledger.count >= 80, "the writers got real work done (\(ledger.count) writes)")
        let daemon = try DaemonProcess(directory: directory, arguments: ["--socket", socket])
        _ = try await daemon.waitUntilListening(count: 1)
        let stored = try await Self.storedIDs(socket)
        let lost = Set(ledger.acknowledged).subtracting(stored)
        #expect(lost.isEmpty, "\(lost.count) acknowledged writes were lost")
        _ = try await daemon.stop()
        #expect(try await Self.integrity(directory + "/orgd.sqlite") == "ok")
    }

    @Test("SIGTERM under load: calls finish or are refused cleanly, exit 0, nothing acknowledged is lost")
    func sigterm() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/orgd.sock"
        let ledger = Ledger()
        let daemon = try DaemonProcess(directory: directory, arguments: ["--socket", socket])
        _ = try await daemon.waitUntilListening(count: 1)
        let writers = Self.writers(socket, count: 8, ledger: ledger, tag: "term")
        try await ledger.waitFor(60)
        #expect(try await daemon.stop(signal: SIGTERM) == 0, "a graceful shutdown exits 0")
        await writers.value
        // Each writer ends with one refusal: its call arrived after the drain
        // began ("shutting down"), or — ttrpc has no GOAWAY — it was sent as
        // the drained connection closed. Never more than one per connection,
        // and never an error from inside the server.
        #expect(ledger.failures.count <= 8, "\(ledger.failures)")
        #expect(ledger.failures.allSatisfy { $0.contains("shutting down") || $0.contains("closed") }, "\(ledger.failures)")
        let again = try DaemonProcess(directory: directory, arguments: ["--socket", socket])
        _ = try await again.waitUntilListening(count: 1)
        let stored = try await Self.storedIDs(socket)
        #expect(Set(ledger.acknowledged).isSubset(of: stored))
        #expect(ledger.count >= 60)
        _ = try await again.stop()
        #expect(try await Self.integrity(directory + "/orgd.sqlite") == "ok")
    }
}
