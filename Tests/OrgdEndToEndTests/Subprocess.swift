import Foundation
import NIOConcurrencyHelpers

/// Runs the built `orgd` and `orgctl` executables as a user would.
enum Subprocess {
    /// The directory holding the built executables: $ORGD_BIN_DIR, else the
    /// package's default debug build folder.
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["ORGD_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return repositoryRoot.appendingPathComponent(".build/debug")
    }

    /// Makes a child started with posix_spawn close every descriptor but 0,
    /// 1 and 2 that this process has open. NIO's accepted sockets are not
    /// close-on-exec (accept4 without SOCK_CLOEXEC), nor are some others: a
    /// long-lived child (a PostgreSQL server) would otherwise hold a copy of
    /// every connection the tests running beside it had open, so a peer
    /// never saw those close — a PostgreSQL backend whose client went away
    /// kept its transaction, and its locks, open, and the tests behind it
    /// hung. (Foundation's Process closes them itself.)
    static func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        // One closed (or not open) by the time the child starts is ignored.
        for fd in open.compactMap(Int32.init) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs an executable to completion, off Swift's cooperative pool: one
    /// of ours by name, or any other by absolute path.
    static func run(_ name: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> Result {
        let process = Process()
        process.executableURL = name.hasPrefix("/") ? URL(fileURLWithPath: name) : binDirectory.appendingPathComponent(name)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        // Only what the test passes: none of the developer's ORGD_* settings.
        for key in merged.keys where key.hasPrefix("ORGD_") { merged[key] = nil }
        merged.merge(environment) { $1 }
        process.environment = merged
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return try await RawSocket.offPool {
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return Result(
                status: process.terminationStatus,
                stdout: String(decoding: stdout, as: UTF8.self),
                stderr: String(decoding: stderr, as: UTF8.self)
            )
        }
    }
}

/// A real `orgd` process in a temporary directory.
final class DaemonProcess: @unchecked Sendable {
    let process = Process()
    let directory: String
    let stdout = Pipe()
    let stderr = Pipe()
    private(set) var tcpPort: Int?

    /// `descriptorLimit` starts orgd under `ulimit -n` (soft and hard).
    init(directory: String, arguments: [String], descriptorLimit: Int? = nil) throws {
        self.directory = directory
        let orgd = Subprocess.binDirectory.appendingPathComponent("orgd")
        if let descriptorLimit {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", "ulimit -n \(descriptorLimit) && exec \"$0\" \"$@\"", orgd.path] + arguments
        } else {
            process.executableURL = orgd
            process.arguments = arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_RUNTIME_DIR"] = nil
        for key in environment.keys where key.hasPrefix("ORGD_") { environment[key] = nil }
        // Who started it: if a sanitizer aborts this test process, `deinit`
        // never runs, and scripts/test stops every orgd whose owner is gone.
        environment["ORGDTEST_OWNER_PID"] = "\(getpid())"
        process.environment = environment
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
    }

    /// A test that fails (throws or returns early) before `stop()` still
    /// leaves no daemon behind.
    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Reads stdout until the daemon has announced `count` listeners.
    func waitUntilListening(count: Int) async throws -> [String] {
        try await RawSocket.offPool {
            var text = ""
            while text.components(separatedBy: "\n").filter({ $0.hasPrefix("orgd listening on ") }).count < count {
                let data = self.stdout.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            let lines = text.components(separatedBy: "\n").filter { $0.hasPrefix("orgd listening on ") }
            if let tcp = lines.first(where: { $0.contains("tcp:") || $0.contains("tls:") }), let port = tcp.split(separator: ":").last.flatMap({ Int($0) }) {
                self.tcpPort = port
            }
            return lines
        }
    }

    /// Sends `signal` and waits for the exit status.
    func stop(signal: Int32 = SIGTERM) async throws -> Int32 {
        kill(process.processIdentifier, signal)
        return try await RawSocket.offPool {
            self.process.waitUntilExit()
            return self.process.terminationStatus
        }
    }

    private let errorSeen = NIOLockedValueBox("")

    /// Reads standard error while the daemon runs until what it wrote since
    /// the start contains `text` (true), or `seconds` pass (false).
    func waitForErrorOutput(containing text: String, seconds: Double = 20) async throws -> Bool {
        let descriptor = stderr.fileHandleForReading.fileDescriptor
        let seen = errorSeen
        return try await RawSocket.offPool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if seen.withLockedValue({ $0.contains(text) }) { return true }
                var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 100) > 0 else { continue }
                var buffer = [UInt8](repeating: 0, count: 65536)
                let count = read(descriptor, &buffer, buffer.count)
                if count <= 0 { break }
                seen.withLockedValue { $0 += String(decoding: buffer[..<count], as: UTF8.self) }
            }
            return seen.withLockedValue { $0.contains(text) }
        }
    }

    func errorOutput() -> String {
        String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Everything the daemon wrote to standard error, once it has exited:
    /// what `waitForErrorOutput` read, then the rest.
    func allErrorOutput() -> String {
        errorSeen.withLockedValue { $0 } + errorOutput()
    }
}
