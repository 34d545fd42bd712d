// libFuzzer targets, one binary. ORGD_FUZZ_TARGET picks one:
//   frames (the default)  arbitrary bytes through the frame decoder, the
//                         envelope decoding and the dispatcher, into a real
//                         store (a temporary SQLite file);
//   structured            one well-typed request of any RPC by any kind of
//                         caller against a seeded store (StructuredTarget).
// Build and run with scripts/fuzz. libFuzzer supplies `main`, so this
// file holds no top-level code: state lives in lazily initialised statics.
// (A plain build, without -DORGD_FUZZ, gets a small @main instead.)
import Dispatch
import Foundation
import Logging
import NIOCore
import OrgdProto
import OrgdServices
import OrgdStore
import OrgdWire

enum FuzzTarget {
    static let dispatcher: Dispatcher = {
        let path = NSTemporaryDirectory() + "/orgd-fuzz-\(getpid()).sqlite"
        let store = try! Store(path: path, durability: .normal)
        var logger = Logger(label: "orgd.fuzz")
        logger.logLevel = .critical
        return Dispatcher(store: store, logger: logger)
    }()

    static func run(_ bytes: UnsafeRawBufferPointer) {
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = FrameDecoder(maximumFrameLength: 64 * 1024)
        var calls = 0
        while calls < 16, let frame = decoder.decodeFrame(from: &buffer) {
            guard case .frame(let header, let payload) = frame, header.type == .request,
                  let request = try? Envelope.decodeRequest(payload)
            else { continue }
            calls += 1
            // Both doors: the local operator on Unix, and TCP (which needs a token).
            let transport: Transport = header.streamID % 4 == 1 ? .unix : .tcp
            let done = DispatchSemaphore(value: 0)
            dispatcher.dispatch(request, connection: ConnectionInfo(transport: transport, peer: "fuzz", connectionID: 1)) { outcome in
                // Whatever the input, the answer is a well-formed status.
                precondition((0...16).contains(outcome.status.code), "status code \(outcome.status.code)")
                _ = Envelope.responseFrame(streamID: header.streamID, status: outcome.status, payload: outcome.payload, allocator: .init())
                done.signal()
            }
            done.wait()
        }
    }
}

#if !ORGD_FUZZ
/// Built without libFuzzer (a plain `swift build`): libFuzzer's `main` is
/// missing, so this one says how to build the real thing.
@main
enum FuzzUsage {
    static func main() {
        FileHandle.standardError.write(Data("orgd-fuzz: build and run it with scripts/fuzz\n".utf8))
        exit(2)
    }
}
#endif

private let structured: Bool = {
    switch ProcessInfo.processInfo.environment["ORGD_FUZZ_TARGET"] ?? "frames" {
    case "frames": return false
    case "structured": return true
    case let other:
        FileHandle.standardError.write(Data("orgd-fuzz: ORGD_FUZZ_TARGET must be frames or structured, not \(other)\n".utf8))
        exit(2)
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    if structured {
        StructuredTarget.run(UnsafeRawBufferPointer(start: start, count: count))
    } else {
        FuzzTarget.run(UnsafeRawBufferPointer(start: start, count: count))
    }
    return 0
}
