import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import OrgdTestSupport
import NIOConcurrencyHelpers
import Testing

/// PostgreSQL going away under a daemon: calls fail UNAVAILABLE while it is
/// down, the daemon stays up, and service comes back by itself. The cluster
/// is one of this test's own (scripts/postgres-cluster), since stopping the
/// shared one would stop every other test.
/// It runs alone, in a step of its own of the test command
/// (ORGD_TEST_FAULTS=1): once, beside the two-daemon tests in the parallel
/// run, those hung waiting for PostgreSQL answers — not understood yet.
@Suite(
    "PostgreSQL faults",
    .enabled(if: TestDatabase.postgresURL != nil && ProcessInfo.processInfo.environment["ORGD_TEST_FAULTS"] == "1", "set ORGD_TEST_FAULTS=1 (scripts/test runs it alone)"),
    .timeLimit(.minutes(5)))
struct PostgresFaultTests {
    static let script = Subprocess.repositoryRoot.appendingPathComponent("scripts/postgres-cluster").path

    /// Runs scripts/postgres-cluster COMMAND DIRECTORY with its output in
    /// DIRECTORY's log, and returns the cluster's URL. posix_spawn and
    /// waitpid rather than Foundation's Process: the server the script starts
    /// outlives it, and Process.waitUntilExit was seen spinning then.
    @discardableResult
    static func cluster(_ command: String, _ directory: String) async throws -> String {
        let arguments = [script, command, directory]
        let status: Int32 = try await RawSocket.offPool {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, "/tmp/orgd-pgf-script.log", O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            Subprocess.closeInheritedDescriptors(&actions)
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            guard posix_spawn(&pid, script, &actions, nil, &argv, environ) == 0 else { return -1 }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return status
        }
        try #require(status == 0, "postgres-cluster \(command) \(directory) failed (see /tmp/orgd-pgf-script.log)")
        return "postgresql://orgdtest@/postgres?host=\(directory)"
    }

    @Test("PostgreSQL restarted under load: calls fail UNAVAILABLE while it is down, the daemon and its connections stay up, and service resumes by itself")
    func restartUnderLoad() async throws {
        var template = Array("/tmp/orgd-pgf.XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let url = try await Self.cluster("start", directory)
        do {
            let daemon = try await TestDaemon.start(postgresURL: url)
            let client = try await daemon.client()
            _ = try await MembershipEndToEndTests.organization(client, "Before")
            let codes = Tally()
            let stop = ManagedFlag()
            // Load: writes and reads from four callers while the server goes away.
            let load = Task {
                await withTaskGroup(of: Void.self) { group in
                    for caller in 0..<4 {
                        group.addTask {
                            var index = 0
                            while !stop.isSet {
                                index += 1
                                let code: StatusCode
                                do {
                                    if caller % 2 == 0 {
                                        _ = try await MembershipEndToEndTests.organization(client, "Load \(caller)-\(index)")
                                    } else {
                                        _ = try await client.organizations.listOrganizations(.init())
                                    }
                                    code = .ok
                                } catch let error as RPCError {
                                    code = error.code
                                } catch {
                                    code = .unknown
                                }
                                codes.add(code)
                                try? await Task.sleep(for: .milliseconds(20))
                            }
                        }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(500))
            try await Self.cluster("down", directory)
            // While it is down: UNAVAILABLE, said plainly; health still answers.
            let down = await rpcError { _ = try await MembershipEndToEndTests.organization(client, "During") }
            #expect(down?.code == .unavailable, "\(String(describing: down))")
            #expect(down?.message.contains("PostgreSQL") == true, "\(String(describing: down))")
            #expect(try await client.health.check().status == .serving, "the daemon is up; the database's outage shows call by call")
            try await Task.sleep(for: .seconds(1))
            try await Self.cluster("up", directory)
            // Service resumes by itself: no restart of orgd, the same connection.
            var resumed = false
            for _ in 0..<300 where !resumed {
                resumed = (try? await MembershipEndToEndTests.organization(client, "After")) != nil
                if !resumed { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(resumed, "writes work again within 30 s of PostgreSQL's return")
            stop.set()
            await load.value
            let seen = codes.counts
            #expect(Set(seen.keys).isSubset(of: [.ok, .unavailable]), "only OK and UNAVAILABLE, never INTERNAL: \(seen)")
            #expect((seen[.unavailable] ?? 0) > 0 && (seen[.ok] ?? 0) > 0, "\(seen)")
            // What was answered OK is there.
            var list = Orgd_V1_ListOrganizationsRequest()
            list.pageSize = 1000
            let names = Set(try await client.organizations.listOrganizations(list).organizations.map(\.name))
            #expect(names.contains("Before") && names.contains("After") && !names.contains("During"))
            await client.close()
            await daemon.stop()
        } catch {
            _ = try? await Self.cluster("stop", directory)
            throw error
        }
        try await Self.cluster("stop", directory)
    }
}

/// Status codes counted from several tasks.
final class Tally: Sendable {
    private let value = NIOLockedValueBox<[StatusCode: Int]>([:])
    var counts: [StatusCode: Int] { value.withLockedValue { $0 } }
    func add(_ code: StatusCode) { value.withLockedValue { $0[code, default: 0] += 1 } }
}
