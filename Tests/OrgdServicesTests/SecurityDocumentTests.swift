import Foundation
import OrgdServices
import Testing

/// SECURITY.md's table of every RPC and its access rule must be the code's.
@Suite("SECURITY.md")
struct SecurityDocumentTests {
    @Test("the RPC table in SECURITY.md lists exactly the methods served, each with the rule the code applies")
    func tableMatchesCode() throws {
        let harness = try Harness()
        let fromCode = harness.dispatcher.accessRules.map { "| `\($0.method)` | `\($0.rule)` |" }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: root.appendingPathComponent("SECURITY.md"), encoding: .utf8)
        let fromDocument = document.split(separator: "\n").map(String.init).filter { $0.hasPrefix("| `") && $0.contains("/") }
        #expect(fromDocument == fromCode, "SECURITY.md's table should read:\n\(fromCode.joined(separator: "\n"))")
    }
}
