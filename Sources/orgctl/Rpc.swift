import ArgumentParser
import Foundation
import OrgdClient
import SwiftProtobuf

/// The schema compiled into orgctl, as grpcurl shows a server's: the
/// services, their methods and messages, with the comments proto/ gives.
struct Rpc: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List and describe the RPCs and messages orgctl knows (the schema it was built from; no connection).",
        subcommands: [List.self, Describe.self]
    )

    /// `orgd.v1.OrganizationService/GetOrganization`, also written with a
    /// dot before the method (grpcurl's way).
    static func method(named name: String) -> SchemaMethod? {
        if let method = OrgdSchema.method(name) { return method }
        guard let dot = name.lastIndex(of: ".") else { return nil }
        return OrgdSchema.method(name[..<dot] + "/" + name[name.index(after: dot)...])
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The services; with a service, its methods (as `call` takes them).")
        @Argument(help: "A service, e.g. orgd.v1.OrganizationService.", completion: .list(OrgdSchema.services)) var service: String?

        func run() throws {
            guard let service else {
                for name in OrgdSchema.services { print(name) }
                return
            }
            let methods = OrgdSchema.methods.filter { $0.service == service }
            guard !methods.isEmpty else {
                throw ValidationError("no service \(service): orgctl rpc list shows them")
            }
            for method in methods { print(method.fullName) }
        }
    }

    struct Describe: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A service, method, message or enum, as proto/ declares it, with its comments.",
            discussion: "e.g. orgctl rpc describe orgd.v1.OrganizationService/CreateOrganization, or orgd.v1.Organization.")
        @Argument(help: "A full name: orgd.v1.OrganizationService, orgd.v1.OrganizationService/GetOrganization, orgd.v1.Organization.")
        var symbol: String

        func run() throws {
            if let method = Rpc.method(named: symbol) {
                let service = try Self.service(method.service)
                guard let index = service.declaration.method.firstIndex(where: { $0.name == method.method }) else { throw Self.unknown(symbol) }
                print(Self.comment(OrgdSchema.comment(service.symbol.file, service.symbol.path + [2, Int32(index)]), indent: ""), terminator: "")
                print(Self.rpcLine(service.declaration.method[index]))
                return
            }
            guard let found = OrgdSchema.symbols[symbol.drop { $0 == "." }.description] else { throw Self.unknown(symbol) }
            print(Self.comment(OrgdSchema.comment(found), indent: ""), terminator: "")
            switch found.kind {
            case .service(let service):
                print("service \(service.name) {")
                for (index, method) in service.method.enumerated() {
                    print(Self.comment(OrgdSchema.comment(found.file, found.path + [2, Int32(index)]), indent: "  "), terminator: "")
                    print("  " + Self.rpcLine(method))
                }
                print("}")
            case .message(let message):
                print("message \(message.name) {")
                for (index, field) in message.field.enumerated() {
                    print(Self.comment(OrgdSchema.comment(found.file, found.path + [2, Int32(index)]), indent: "  "), terminator: "")
                    print("  \(Self.label(field, in: message))\(Self.typeName(field)) \(field.name) = \(field.number);")
                }
                print("}")
            case .enumeration(let enumeration):
                print("enum \(enumeration.name) {")
                for (index, value) in enumeration.value.enumerated() {
                    print(Self.comment(OrgdSchema.comment(found.file, found.path + [2, Int32(index)]), indent: "  "), terminator: "")
                    print("  \(value.name) = \(value.number);")
                }
                print("}")
            }
        }

        static func unknown(_ symbol: String) -> ValidationError {
            ValidationError("no service, method, message or enum \(symbol): orgctl rpc list shows the services")
        }

        static func service(_ name: String) throws -> (symbol: OrgdSchema.Symbol, declaration: Google_Protobuf_ServiceDescriptorProto) {
            guard let symbol = OrgdSchema.symbols[name], case .service(let declaration) = symbol.kind else { throw unknown(name) }
            return (symbol, declaration)
        }

        static func rpcLine(_ method: Google_Protobuf_MethodDescriptorProto) -> String {
            let input = method.inputType.drop { $0 == "." }, output = method.outputType.drop { $0 == "." }
            return "rpc \(method.name)(\(method.clientStreaming ? "stream " : "")\(input)) returns (\(method.serverStreaming ? "stream " : "")\(output));"
        }

        static func comment(_ text: String, indent: String) -> String {
            text.isEmpty ? "" : text.split(separator: "\n", omittingEmptySubsequences: false).map { "\(indent)// \($0)" }.joined(separator: "\n") + "\n"
        }

        static func label(_ field: Google_Protobuf_FieldDescriptorProto, in message: Google_Protobuf_DescriptorProto) -> String {
            if field.label == .repeated {
                let type = field.typeName.drop { $0 == "." }.description
                if let entry = OrgdSchema.symbols[type], case .message(let nested) = entry.kind, nested.options.mapEntry { return "" }
                return "repeated "
            }
            if field.proto3Optional { return "optional " }
            return ""
        }

        static func typeName(_ field: Google_Protobuf_FieldDescriptorProto) -> String {
            if !field.typeName.isEmpty {
                let type = field.typeName.drop { $0 == "." }.description
                if field.label == .repeated, let entry = OrgdSchema.symbols[type], case .message(let nested) = entry.kind, nested.options.mapEntry,
                   nested.field.count == 2 {
                    return "map<\(typeName(nested.field[0])), \(typeName(nested.field[1]))>"
                }
                return type
            }
            switch field.type {
            case .double: return "double"
            case .float: return "float"
            case .int64: return "int64"
            case .uint64: return "uint64"
            case .int32: return "int32"
            case .fixed64: return "fixed64"
            case .fixed32: return "fixed32"
            case .bool: return "bool"
            case .string: return "string"
            case .bytes: return "bytes"
            case .uint32: return "uint32"
            case .sfixed32: return "sfixed32"
            case .sfixed64: return "sfixed64"
            case .sint32: return "sint32"
            case .sint64: return "sint64"
            default: return "\(field.type)"
            }
        }
    }
}

/// Calls any RPC by name with a JSON request, as `grpcurl -d` does; prints
/// the answer in orgctl's JSON (or -o yaml).
struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any RPC by its name with a JSON request (grpcurl -d's habit); prints the answer as JSON.",
        discussion: """
            orgctl call orgd.v1.OrganizationService/GetOrganization -d '{"id": "…"}'
            -d @FILE reads the request from a file, -d @- from standard input; no -d sends an empty request.
            The JSON is proto3's (the proto field names or their lowerCamelCase); orgctl rpc describe shows each message.
            """)

    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "SERVICE/METHOD, e.g. orgd.v1.OrganizationService/GetOrganization (orgctl rpc list).", completion: .list(OrgdSchema.methods.map(\.fullName)))
    var method: String
    @Option(name: [.customShort("d"), .customLong("data")], help: "The request as JSON, @FILE, or @- for standard input.")
    var data: String?

    func validate() throws {
        guard Rpc.method(named: method) != nil else {
            throw ValidationError("no method \(method): orgctl rpc list SERVICE shows a service's methods")
        }
    }

    func run() async throws {
        guard let method = Rpc.method(named: method) else { return }
        let text = try Self.read(data)
        let payload = try Self.encode(method.request, json: text)
        try await connection.run { client in
            let answer = try await client.connection.call(method, payload: payload, options: connection.callOptions)
            // No table for an answer of any shape: JSON unless -o says otherwise.
            try Self.show(method.response, answer, format: connection.output == .table ? .json : connection.output)
        }
    }

    static func read(_ data: String?) throws -> String {
        guard let data else { return "{}" }
        guard data.hasPrefix("@") else { return data }
        let path = String(data.dropFirst())
        if path == "-" { return String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self) }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read the request from \(path): \((error as NSError).localizedDescription)")
        }
    }

    static func encode<Request: SwiftProtobuf.Message>(_ type: Request.Type, json: String) throws -> [UInt8] {
        do {
            return try Request(jsonString: json).serializedBytes()
        } catch {
            throw ValidationError("the request is not a \(Request.protoMessageName) in JSON: \(error)")
        }
    }

    static func show<Response: SwiftProtobuf.Message>(_ type: Response.Type, _ bytes: [UInt8], format: OutputFormat) throws {
        try Output.emit(try Response(serializedBytes: bytes), format)
    }
}
