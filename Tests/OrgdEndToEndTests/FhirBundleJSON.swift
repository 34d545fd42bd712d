import Foundation
import Testing

/// Reading an exported bundle as plain JSON, for FhirBundleTests.
extension FhirBundleTests {
    /// Every `reference` string in a resource, with its path.
    static func references(_ value: Any, _ path: String = "") -> [(path: String, target: String)] {
        var found: [(path: String, target: String)] = []
        if let object = value as? JSON {
            for key in object.keys.sorted() {
                if key == "reference", let target = object[key] as? String {
                    found.append((path, target))
                } else {
                    found += references(object[key]!, path + "." + key)
                }
            }
        } else if let array = value as? [Any] {
            for index in array.indices {
                found += references(array[index], path + "[\(index)]")
            }
        }
        return found
    }

    /// The entries by fullUrl, checking each is `urn:uuid:<id>` and a PUT of `<Type>/<id>`.
    static func entriesByURL(_ entries: [JSON]) throws -> [String: JSON] {
        var byURL: [String: JSON] = [:]
        for entry in entries {
            let resource = try #require(entry["resource"] as? JSON)
            let type = try #require(resource["resourceType"] as? String)
            let id = try #require(resource["id"] as? String)
            #expect(entry["fullUrl"] as? String == "urn:uuid:\(id)")
            #expect(UUID(uuidString: id) != nil, "\(type) id \(id) is not a UUID")
            let request = entry["request"] as? JSON
            #expect(request?["method"] as? String == "PUT" && request?["url"] as? String == "\(type)/\(id)")
            #expect(byURL["urn:uuid:\(id)"] == nil, "urn:uuid:\(id) twice")
            byURL["urn:uuid:\(id)"] = resource
        }
        return byURL
    }

    static func resources(_ type: String, in byURL: [String: JSON]) -> [JSON] {
        byURL.values.filter { $0["resourceType"] as? String == type }
    }

    /// The type and id of the entry a reference names, or nil when it names none.
    static func resolve(_ reference: Any?, in byURL: [String: JSON]) -> (type: String, id: String)? {
        guard let target = (reference as? JSON)?["reference"] as? String, let resource = byURL[target],
              let type = resource["resourceType"] as? String, let id = resource["id"] as? String else { return nil }
        return (type, id)
    }
}
