#if canImport(Glibc)
import Glibc
#endif
import Foundation
import OrgdClient
import OrgdCore
import OrgdProto
import Testing

/// How a connection ends without losing answers: at shutdown every call that
/// ran is answered (written out before the close) and every call that did not
/// start is answered UNAVAILABLE; a client that half-closes gets its answers;
/// and the drain timeout bounds the process's exit.
@Suite("drain and half-close", .timeLimit(.minutes(5)))
struct DrainTests {
    /// A ListOrganizations frame for stream `streamID` whose answer is about
    /// 12.5 KB (50 organisations with long names must exist).
    static func listFrame(_ streamID: UInt32, token: String? = nil) throws -> [UInt8] {
        var list = Orgd_V1_ListOrganizationsRequest()
        list.pageSize = 100
        return try RawSocket.requestFrame(
            streamID: streamID, service: "orgd.v1.OrganizationService", method: "ListOrganizations", payload: list, token: token)
    }

    /// A CreateOrganization frame with a bearer token.
    static func createFrame(_ streamID: UInt32, name: String, token: String) throws -> [UInt8] {
        try RawSocket.requestFrame(
            streamID: streamID, service: "orgd.v1.OrganizationService", method: "CreateOrganization",
            payload: LifecycleTests.createRequest(name), token: token)
    }

    static func seed(_ daemon: TestDaemon) async throws {
        let client = try await daemon.client()
        let longName = String(repeating: "n", count: 190)
        for index in 0..<50 { _ = try await client.organizations.createOrganization(LifecycleTests.createRequest("\(longName) \(index)")) }
        await client.close()
    }

    static let method = "orgd.v1.OrganizationService/ListOrganizations"

    @Test("shutdown writes out every answer of the calls that ran before closing, though the client had not read them", arguments: ["unix", "tcp"])
    func drainFlushesAnswers(transport: String) async throws {
        let daemon = try await TestDaemon.start {
            $0.maximumQueuedResponseBytes = 64 << 20
            // The drain must not be cut short by its timeout on a loaded machine.
            $0.drainTimeout = .seconds(150)
        }
        try await Self.seed(daemon)
        let socket: RawSocket
        var frames = try (0..<100).flatMap { try Self.listFrame(UInt32(2 * $0 + 1)) }
        if transport == "unix" {
            socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
        } else {
            let (_, secret) = try await daemon.serviceToken(role: .admin)
            socket = try RawSocket(tcpHost: "127.0.0.1", port: daemon.bound.tcpPort!)
            frames = try (0..<100).flatMap { try Self.listFrame(UInt32(2 * $0 + 1), token: secret) }
        }
        // 100 answers of ~12.5 KB: far more than the socket buffers hold.
        try await socket.send(frames)
        #expect(try await ConnectionBudgetTests.eventually { daemon.answeredCalls(Self.method) == 100 })
        let stopping = Task { await daemon.stop() }
        let codes = try await socket.receiveResponseCodes(100)
        #expect(codes.count == 100 && codes.allSatisfy { $0 == 0 }, "every call that ran is answered")
        #expect(try await socket.closedByServer(within: 10))
        socket.shutdownWrite()
        await stopping.value
    }

    @Test("at shutdown, calls held back by back-pressure are answered UNAVAILABLE; those that ran are answered OK", .sqliteOnly("its calls queue behind SQLite's one writer"))
    func drainAnswersHeldBackCalls() async throws {
        let daemon = try await TestDaemon.start {
            $0.maximumQueuedResponseBytes = 64 * 1024
            // Under TSan with the whole suite at once, writing out the answers
            // of the calls that ran took longer than TestDaemon's 5 s drain
            // timeout, which then closed the connection mid-way (38 of 77).
            $0.drainTimeout = .seconds(150)
        }
        try await Self.seed(daemon)
        let socket = try RawSocket(unixPath: daemon.bound.unixSocketPath!)
        // Each call padded with a 15 KB unknown field (protobuf skips it), so
        // that the frames arrive over many reads and back-pressure can hold
        // some of them back once the ~12.5 KB answers back up.
        var list = Orgd_V1_ListOrganizationsRequest()
        list.pageSize = 100
        var payload: [UInt8] = try list.serializedBytes()
        payload += [15 << 3 | 2, 0x98, 0x75] + [UInt8](repeating: 0x70, count: 15_000)
        var request = Ttrpc_Request()
        request.service = "orgd.v1.OrganizationService"
        request.method = "ListOrganizations"
        request.payload = Data(payload)
        let body: [UInt8] = try request.serializedBytes()
        let frames = (0..<300).map { RawSocket.frame(streamID: UInt32(2 * $0 + 1), body: body) }
        // The client sends ten calls at a time, each batch once all but the
        // last have run: sent at once, a server slowed by a loaded machine
        // read all 300 before the first answer, and nothing was held back.
        // It never reads, so the answers back up, the server stops reading,
        // and a batch stays unread.
        let method = Self.method
        let sending = Task {
            for start in stride(from: 0, to: frames.count, by: 10) {
                while daemon.answeredCalls(method) < start - 10 {
                    if Task.isCancelled { return }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                try? await socket.send(Array(frames[start..<start + 10].joined()))
            }
        }
        // Held back: some calls ran, bytes the client sent wait unread, and
        // the count then stays put for a second. The deadline is a hang guard.
        var (ran, steady) = (daemon.answeredCalls(Self.method), 0)
        let deadline = ContinuousClock.now + .seconds(180)
        while steady < 10 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            let now = daemon.answeredCalls(Self.method)
            (ran, steady) = (now, now == ran && now > 0 && socket.unreadByPeer > 0 ? steady + 1 : 0)
        }
        #expect(ran > 0 && ran < 300)
        let stopping = Task { await daemon.stop() }
        // Reading frees room for answers, and the held calls would start: the
        // client reads once the drain has begun (the server removes its
        // socket file just before).
        let path = daemon.bound.unixSocketPath!
        #expect(try await ConnectionBudgetTests.eventually { !FileManager.default.fileExists(atPath: path) })
        try await Task.sleep(for: .milliseconds(50))
        var codes: [Int32] = []
        while let (_, response) = try? await socket.receiveResponse() { codes.append(response.status.code) }
        sending.cancel()
        await sending.value
        socket.shutdownWrite()
        await stopping.value
        // Calls that were running when the drain began finish and count too.
        ran = daemon.answeredCalls(Self.method)
        #expect(codes.filter { $0 == 0 }.count == ran, "every call that ran is answered OK")
        let refused = codes.filter { $0 == StatusCode.unavailable.rawValue }.count
        #expect(refused >= 1 && refused + ran == codes.count, "the calls read and not started are answered UNAVAILABLE (\(refused) of \(300 - ran))")
    }

    @Test("a client that sends its calls and shuts its write side gets every answer", arguments: ["unix", "tcp"])
    func halfClose(transport: String) async throws {
        try await withDaemon { daemon in
            let local = try await daemon.client()
            let (_, secret) = try await daemon.serviceToken(role: .admin)
            await local.close()
            let socket = transport == "unix"
                ? try RawSocket(unixPath: daemon.bound.unixSocketPath!)
                : try RawSocket(tcpHost: "127.0.0.1", port: daemon.bound.tcpPort!)
            let frames = try (0..<5).flatMap { try Self.createFrame(UInt32(2 * $0 + 1), name: "Half-closed \(transport) \($0)", token: secret) }
            try await socket.send(frames)
            socket.shutdownWrite()
            let codes = try await socket.receiveResponseCodes(5)
            #expect(codes == [0, 0, 0, 0, 0])
            #expect(try await socket.closedByServer(within: 10), "then the server closes")
        }
    }

    @Test("orgd exits within the drain timeout even with a write stuck behind another process's lock on the database")
    func drainTimeoutBoundsExit() async throws {
        let directory = try TestDaemon.makeTemporaryDirectory()
        let database = directory + "/orgd.sqlite"
        let daemon = try DaemonProcess(directory: directory, arguments: [
            "--database", database, "--socket", directory + "/s", "--drain-timeout", "1",
        ])
        _ = try await daemon.waitUntilListening(count: 1)
        // Another process takes the database's write lock and keeps it
        // until its standard input closes.
        let blocker = Process()
        blocker.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        blocker.arguments = [database]
        let input = Pipe(), output = Pipe()
        blocker.standardInput = input
        blocker.standardOutput = output
        try blocker.run()
        defer { if blocker.isRunning { blocker.terminate() } }
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nSELECT 'locked';\n".utf8))
        let answer = try await RawSocket.offPool { String(decoding: output.fileHandleForReading.availableData, as: UTF8.self) }
        #expect(answer.contains("locked"))
        let client = try await OrgdClient.connect(to: .unix(path: directory + "/s"))
        let stuck = Task { try? await client.organizations.createOrganization(LifecycleTests.createRequest("Stuck")) }
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        let status = try await daemon.stop()
        let took = ContinuousClock.now - started
        try input.fileHandleForWriting.close()
        _ = await stuck.value
        await client.close()
        #expect(status == 0)
        // The busy timeout is 10 s; the bound is the 1 s drain timeout plus
        // time to close, with room for TSan with the whole suite at once
        // (8.2 s seen there), still short of the 10 s the busy timeout takes.
        #expect(took < .seconds(9.5), "exited after \(took)")
    }
}
