import Foundation
import struct GRPCCore.MethodDescriptor
import SwiftProtobuf

/// One unary RPC of the schema: its full name (`orgd.v1.OrganizationService/
/// CreateOrganization`) and the Swift types of its messages.
public struct SchemaMethod: Sendable {
    public let fullName: String
    public let request: any SwiftProtobuf.Message.Type
    public let response: any SwiftProtobuf.Message.Type

    init(_ fullName: String, _ request: any SwiftProtobuf.Message.Type, _ response: any SwiftProtobuf.Message.Type) {
        self.fullName = fullName
        self.request = request
        self.response = response
    }

    public var service: String { String(fullName.split(separator: "/")[0]) }
    public var method: String { String(fullName.split(separator: "/")[1]) }
}

/// The schema this client was built from (proto/, with its comments), for
/// tools that work by name: listing and describing RPCs and messages, calling
/// an RPC from JSON, and printing JSON that shows every field.
public enum OrgdSchema {
    /// The descriptor set, decoded once.
    public static let files: [Google_Protobuf_FileDescriptorProto] = {
        guard let bytes = Data(base64Encoded: encodedDescriptorSet),
              let set = try? Google_Protobuf_FileDescriptorSet(serializedBytes: bytes)
        else { preconditionFailure("the generated descriptor set does not decode") }
        return set.file
    }()

    /// A message, enum or service, with where it was declared.
    public struct Symbol: Sendable {
        public enum Kind: Sendable {
            case message(Google_Protobuf_DescriptorProto)
            case enumeration(Google_Protobuf_EnumDescriptorProto)
            case service(Google_Protobuf_ServiceDescriptorProto)
        }

        public let fullName: String
        public let kind: Kind
        public let file: Google_Protobuf_FileDescriptorProto
        /// Its path in `file`'s source info (for comments).
        public let path: [Int32]
    }

    /// Every message, enum and service by full name (no leading dot).
    public static let symbols: [String: Symbol] = {
        var symbols: [String: Symbol] = [:]
        for file in files {
            func add(_ message: Google_Protobuf_DescriptorProto, prefix: String, path: [Int32]) {
                let name = prefix + message.name
                symbols[name] = Symbol(fullName: name, kind: .message(message), file: file, path: path)
                for (index, nested) in message.nestedType.enumerated() { add(nested, prefix: name + ".", path: path + [3, Int32(index)]) }
                for (index, nested) in message.enumType.enumerated() {
                    symbols[name + "." + nested.name] = Symbol(
                        fullName: name + "." + nested.name, kind: .enumeration(nested), file: file, path: path + [4, Int32(index)])
                }
            }
            let prefix = file.package.isEmpty ? "" : file.package + "."
            for (index, message) in file.messageType.enumerated() { add(message, prefix: prefix, path: [4, Int32(index)]) }
            for (index, enumeration) in file.enumType.enumerated() {
                symbols[prefix + enumeration.name] = Symbol(
                    fullName: prefix + enumeration.name, kind: .enumeration(enumeration), file: file, path: [5, Int32(index)])
            }
            for (index, service) in file.service.enumerated() {
                symbols[prefix + service.name] = Symbol(fullName: prefix + service.name, kind: .service(service), file: file, path: [6, Int32(index)])
            }
        }
        return symbols
    }()

    /// The services a client can call (orgd's and the health service), sorted.
    public static var services: [String] {
        Set(methods.map(\.service)).sorted()
    }

    public static func method(_ fullName: String) -> SchemaMethod? {
        methods.first { $0.fullName == fullName }
    }

    /// The comment written above the element at `path` in `file`.
    public static func comment(_ file: Google_Protobuf_FileDescriptorProto, _ path: [Int32]) -> String {
        guard let location = file.sourceCodeInfo.location.first(where: { $0.path == path }) else { return "" }
        return location.leadingComments.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix(" ") ? String($0.dropFirst()) : String($0) }
            .joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public static func comment(_ symbol: Symbol) -> String { comment(symbol.file, symbol.path) }

    // MARK: JSON with every field

    /// `message` as proto3 JSON (the proto field names) with every field
    /// shown: a field at its default value appears with it (`false`, `0`,
    /// `""`, `[]`, `{}`, an enum's zero name), as other languages' "emit
    /// defaults" options print it, so that `select(.active == false)`
    /// finds something. Fields with presence (proto3 `optional`, oneof
    /// members, messages) appear only when set, as `null` never carries
    /// meaning in this schema. 64-bit integers stay strings, as proto3 JSON
    /// has them.
    public static func jsonObject(_ message: some SwiftProtobuf.Message) throws -> Any {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        let object = try JSONSerialization.jsonObject(with: Data(message.jsonString(options: options).utf8), options: [.fragmentsAllowed])
        return withDefaults(object, type: type(of: message).protoMessageName)
    }

    private static func withDefaults(_ value: Any, type: String) -> Any {
        guard var object = value as? [String: Any], let symbol = symbols[type], case .message(let message) = symbol.kind else { return value }
        // Well-known types print in their own JSON forms (a timestamp as a string).
        if symbol.file.package == "google.protobuf" { return value }
        for field in message.field {
            let name = field.name
            let typeName = String(field.typeName.drop { $0 == "." })
            if let present = object[name] {
                guard field.type == .message else { continue }
                if let entry = symbols[typeName], case .message(let nested) = entry.kind, nested.options.mapEntry {
                    let valueField = nested.field.first { $0.number == 2 }
                    if valueField?.type == .message, let map = present as? [String: Any], let valueType = valueField?.typeName {
                        object[name] = map.mapValues { withDefaults($0, type: String(valueType.drop { $0 == "." })) }
                    }
                } else if field.label == .repeated, let items = present as? [Any] {
                    object[name] = items.map { withDefaults($0, type: typeName) }
                } else {
                    object[name] = withDefaults(present, type: typeName)
                }
                continue
            }
            if field.hasOneofIndex || field.proto3Optional { continue }
            if field.label == .repeated {
                if let entry = symbols[typeName], case .message(let nested) = entry.kind, nested.options.mapEntry {
                    object[name] = [String: Any]()
                } else {
                    object[name] = [Any]()
                }
                continue
            }
            switch field.type {
            case .message, .group: continue
            case .bool: object[name] = false
            case .string, .bytes: object[name] = ""
            case .int64, .uint64, .sint64, .fixed64, .sfixed64: object[name] = "0"
            case .double, .float, .int32, .uint32, .sint32, .fixed32, .sfixed32: object[name] = 0
            case .enum:
                if let entry = symbols[typeName], case .enumeration(let enumeration) = entry.kind,
                   let zero = enumeration.value.first(where: { $0.number == 0 }) {
                    object[name] = zero.name
                } else {
                    object[name] = 0
                }
            }
        }
        return object
    }
}

extension OrgdConnection {
    /// Calls an RPC by its full name (`orgd.v1.OrganizationService/
    /// GetOrganization`) with raw request bytes, over any transport; for
    /// tools that work from the schema rather than the typed clients.
    public func call(_ method: SchemaMethod, payload: [UInt8], options: CallOptions = CallOptions()) async throws -> [UInt8] {
        try await call(MethodDescriptor(fullyQualifiedService: method.service, method: method.method), payload: payload, options: options)
    }
}
