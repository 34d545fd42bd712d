import Foundation

/// The shared ttrpc test vectors (testdata/ttrpc-vectors.json), which the
/// Swift, C and Python clients' tests all check.
struct TestVectors: Decodable {
    struct KeyValue: Decodable { var key: String; var value: String }
    struct Request: Decodable {
        var stream_id: UInt32
        var service: String
        var method: String
        var payload_hex: String
        var timeout_nano: Int64
        var metadata: [KeyValue]
    }
    struct Response: Decodable {
        var stream_id: UInt32
        var status_code: Int32
        var status_message: String
        var payload_hex: String
    }
    struct Vector: Decodable {
        var name: String
        var request: Request
        var request_frame_hex: String
        var response: Response
        var response_frame_hex: String
    }

    var vectors: [Vector]

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func load() throws -> TestVectors {
        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("testdata/ttrpc-vectors.json"))
        return try JSONDecoder().decode(TestVectors.self, from: data)
    }
}

extension Array where Element == UInt8 {
    init(hex: String) {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        self = bytes
    }

    var hex: String { map { String(format: "%02x", $0) }.joined() }
}
