import Crypto
import Foundation
import Testing

/// Generated code must match proto/: scripts/generate-protos records a digest
/// of every .proto input and every generated Swift, C and Python file; this recomputes it the same
/// way as scripts/proto-digest, so a stale or hand-edited output fails here
/// without building protoc-gen-swift.
@Suite("generated code")
struct ProtoSyncTests {
    @Test("Sources/OrgdProto matches proto/ (run scripts/generate-protos if this fails)")
    func digestMatches() throws {
        let root = TestVectors.repositoryRoot
        let recorded = try String(contentsOf: root.appendingPathComponent("Sources/OrgdProto/PROTO_DIGEST"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var files: [String] = []
        let generated: [(String, [String])] = [
            ("proto", [".proto"]), ("Sources/OrgdProto", [".swift"]), ("Sources/OrgdServices/Generated", [".swift"]), ("Sources/OrgdClient/Generated", [".swift"]),
            ("clients/c/gen", [".c", ".h"]), ("clients/python/orgd_client/_gen", [".py"]),
        ]
        for (folder, suffixes) in generated {
            let enumerator = FileManager.default.enumerator(atPath: root.appendingPathComponent(folder).path)
            while let relative = enumerator?.nextObject() as? String {
                if suffixes.contains(where: relative.hasSuffix) { files.append("\(folder)/\(relative)") }
            }
        }
        #expect(files.contains { $0.hasPrefix("clients/c/gen/") } && files.contains { $0.hasPrefix("clients/python/") })
        // `LC_ALL=C sort`: byte order.
        files.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        var listing = ""
        for file in files {
            let contents = try Data(contentsOf: root.appendingPathComponent(file))
            listing += "\(file)\n\(SHA256.hash(data: contents).map { String(format: "%02x", $0) }.joined())\n"
        }
        let digest = SHA256.hash(data: Data(listing.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(digest == recorded)
    }
}
