import Foundation
import OrgdServices
import Testing

/// SECURITY.md's authorisation matrix must be the one the code holds.
@Suite("SECURITY.md")
struct SecurityDocumentTests {
    @Test("SECURITY.md's matrix lists exactly the methods served, each with its rule and every caller's outcome")
    func matrixMatchesCode() async throws {
        let harness = try await Harness()
        let fromCode = AuthorizationMatrix.markdown(harness.dispatcher.accessRules)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let document = try String(contentsOf: root.appendingPathComponent("SECURITY.md"), encoding: .utf8)
        let lines = document.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex { $0.hasPrefix("<!-- authorization matrix:") })
        let end = try #require(lines.firstIndex(of: "<!-- end of authorization matrix -->"))
        let fromDocument = lines[(start + 1)..<end].joined(separator: "\n")
        #expect(fromDocument == fromCode, "regenerate SECURITY.md's matrix with `orgd --print-authorization-matrix`; it should read:\n\(fromCode)")
    }

}
