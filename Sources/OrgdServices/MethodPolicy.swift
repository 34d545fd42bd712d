import struct GRPCCore.MethodDescriptor
import SwiftProtobuf

/// What the schema declares of an RPC besides its types: its
/// `(orgd.v1.policy)` option (proto/orgd/v1/options.proto), turned into Swift
/// by scripts/generate-protos (Sources/OrgdServices/Generated).
public struct MethodPolicy: Sendable {
    /// What a call that changed something leaves in the audit log.
    public enum Audit: Sendable {
        /// Nothing: reads, a patient's own answers, the outbox's bookkeeping.
        case none
        /// A row with the request as JSON.
        case request
        /// A row saying the call was made: the request holds a secret.
        case callOnly
    }

    public let access: AccessRule
    public let audit: Audit
}

/// An RPC as the generated code describes it: its descriptor (service and
/// method name), its request and answer types, and its policy. The generated
/// `Orgd_V1_…Service.Method.X` enums conform; handlers are registered by these
/// types, so no file names an RPC by hand and a handler's types are the RPC's.
protocol PolicedMethod {
    associatedtype Input: SwiftProtobuf.Message
    associatedtype Output: SwiftProtobuf.Message
    static var descriptor: MethodDescriptor { get }
    static var policy: MethodPolicy { get }
}

extension PolicedMethod {
    /// `service/method`, e.g. `orgd.v1.OrganizationService/CreateOrganization`.
    static var fullName: String { "\(descriptor.service.fullyQualifiedService)/\(descriptor.method)" }
}
