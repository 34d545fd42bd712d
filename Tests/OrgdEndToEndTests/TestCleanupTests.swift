import Foundation
import Testing

/// Test scripts that start daemons stop them, also when the test fails.
@Suite("Test cleanup", .serialized)
struct TestCleanupTests {
    /// Runs clients/c/run-tests.sh with a stand-in valgrind that passes or
    /// fails, in a temporary directory of its own; then no process may still
    /// name that directory (its two orgd daemons did, before the fix).
    @Test("clients/c/run-tests.sh stops both of its orgd daemons, whether its checks pass or fail", arguments: [true, false])
    func cTestScriptStopsItsDaemons(checksPass: Bool) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("orgd-cleanup-\(UUID().uuidString)").path
        let fakeBin = directory + "/bin"
        try FileManager.default.createDirectory(atPath: fakeBin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Instead of the C client under valgrind: succeed, printing what the
        // example's check greps for, or fail as a failing check does.
        // Written by a shell of its own: a descriptor this process held open
        // for writing could be inherited by a child another test forks
        // meanwhile, and executing the file would then fail with ETXTBSY.
        let valgrind = fakeBin + "/valgrind"
        let body = checksPass ? "echo 'Example Practice'" : "echo 'a check failed' >&2; exit 99"
        let written = try await Subprocess.run("/bin/sh", ["-c", "printf '#!/bin/sh\\n%s\\n' \"$1\" > \"$2\" && chmod 755 \"$2\"", "sh", body, valgrind])
        #expect(written.status == 0, "\(written.stderr)")

        let script = Subprocess.repositoryRoot.appendingPathComponent("clients/c/run-tests.sh").path
        let before = Set(Self.processes(naming: "/orgd-c-"))
        // posix_spawn and waitpid rather than Foundation's Process, whose
        // wait never ends while a daemon left behind holds a descriptor
        // inherited from it: the test must fail, not hang, on a leak.
        var environment = ProcessInfo.processInfo.environment
        for key in environment.keys where key.hasPrefix("ORGD_") { environment[key] = nil }
        environment["ORGD_BIN_DIR"] = Subprocess.binDirectory.path
        environment["TMPDIR"] = directory
        environment["PATH"] = fakeBin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        let status = try await Self.spawnAndWait(
            ["/bin/bash", script], environment: environment, stdout: directory + "/out", stderr: directory + "/err")
        let stderr = (try? String(contentsOfFile: directory + "/err", encoding: .utf8)) ?? ""
        if checksPass {
            #expect(status == 0, "\(stderr)")
        } else {
            #expect(status != 0)
            #expect(stderr.contains("a check failed"), "\(stderr)")
        }
        // Both daemons got as far as listening (else this proves nothing)…
        #expect(!stderr.contains("did not start"), "\(stderr)")
        // …and none is left (the script's daemons name its work directory,
        // /tmp/orgd-c-… or $TMPDIR/orgd-c-…, in their arguments).
        let left = Set(Self.processes(naming: "/orgd-c-")).subtracting(before)
        #expect(left.isEmpty, "\(left.sorted())")
        for entry in left {
            if let pid = Int32(entry.prefix { $0 != ":" }) { kill(pid, SIGKILL) }
        }
    }

    /// Runs `arguments` with output to files; its exit status.
    static func spawnAndWait(_ arguments: [String], environment: [String: String], stdout: String, stderr: String) async throws -> Int32 {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        Subprocess.closeInheritedDescriptors(&actions)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO) }
        let child = pid
        return try await RawSocket.offPool {
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            // Exited normally: the exit code; else 128 + the signal.
            return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        }
    }

    /// The pids (and command lines) of processes whose command line contains `text`.
    static func processes(naming text: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(text) ? "\(pid): \(line)" : nil
        }
    }
}
