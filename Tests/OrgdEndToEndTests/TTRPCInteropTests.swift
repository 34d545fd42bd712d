import Foundation
import Testing

/// containerd's own ttrpc client (Debian's golang-github-containerd-ttrpc-dev,
/// built with Debian's Go in GOPATH mode) calls a real orgd: health, a create,
/// an unknown method and a validation error, each checked by the Go program.
@Suite("containerd ttrpc interop")
struct TTRPCInteropTests {
    static let goSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("interop/go-ttrpc/main.go")

    @Test("a client built from containerd's ttrpc package calls orgd")
    func goClient() async throws {
        let go = "/usr/bin/go"
        let ttrpc = "/usr/share/gocode/src/github.com/containerd/ttrpc/client.go"
        try #require(
            FileManager.default.isExecutableFile(atPath: go) && FileManager.default.fileExists(atPath: ttrpc),
            "install golang-go and golang-github-containerd-ttrpc-dev (scripts/test does)"
        )
        try await withDaemon { daemon in
            let binary = daemon.directory + "/go-ttrpc-interop"
            let build = try await Self.run(go, ["build", "-o", binary, Self.goSource.path], environment: [
                "GOPATH": "/usr/share/gocode", "GO111MODULE": "off", "GOCACHE": daemon.directory + "/gocache", "HOME": daemon.directory,
            ])
            try #require(build.status == 0, "go build failed: \(build.output)")
            let run = try await Self.run(binary, [daemon.bound.unixSocketPath!], environment: [:])
            #expect(run.status == 0, "\(run.output)")
            #expect(run.output.contains("ok validation InvalidArgument: name: required"))
        }
    }

    static func run(_ path: String, _ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return try await RawSocket.offPool {
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: data, as: UTF8.self))
        }
    }
}
