import Foundation
import Testing

/// The Unix socket is the operator's door: another, unprivileged user must not
/// get in. Needs root to switch users (CI runs as root); skipped otherwise.
@Suite("Unix socket permissions", .enabled(if: getuid() == 0, "switching to another user needs root"))
struct SocketPermissionTests {
    /// Tries to connect to `path` as the user `nobody`; returns what happened.
    static func connectAsNobody(_ path: String) async throws -> String {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sys.argv[1]); print("connected")
            except PermissionError:
                print("permission denied")
            except OSError as e:
                print("error", e.errno)
            """
        return try await TTRPCInteropTests.run(
            "/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, path], environment: [:]
        ).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("another user cannot connect to the default socket (0600); with mode 666 they can, so the check is real")
    func otherUserRefused() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Let `nobody` reach the directory, so only the socket's own mode decides.
        chmod(directory, 0o755)
        let daemon = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/orgd.sock"])
        _ = try await daemon.waitUntilListening(count: 1)
        #expect(try await Self.connectAsNobody(directory + "/orgd.sock") == "permission denied")
        _ = try await daemon.stop()

        let open = try DaemonProcess(directory: directory, arguments: ["--socket", directory + "/open.sock", "--socket-mode", "666"])
        _ = try await open.waitUntilListening(count: 1)
        #expect(try await Self.connectAsNobody(directory + "/open.sock") == "connected")
        _ = try await open.stop()
    }
}
