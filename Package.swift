// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "orgd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "orgd", targets: ["orgd"]),
        .executable(name: "orgctl", targets: ["orgctl"]),
        .library(name: "OrgdClient", targets: ["OrgdClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Generated code for proto/ (scripts/generate-protos): swift-protobuf's
        // messages and protoc-gen-grpc-swift-2's method descriptors and clients.
        .target(
            name: "OrgdProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            exclude: ["PROTO_DIGEST"]
        ),
        // Status codes and the error value every layer throws; depends on
        // nothing, generated code included.
        .target(name: "OrgdCore"),
        // ttrpc framing: header, decoder, frame writing (NIOCore); the bridge
        // between RPCError and google.rpc.Status, which both wires carry; and
        // gRPC's raw-bytes coder and grpc-timeout header (GRPCCore).
        .target(
            name: "OrgdWire",
            dependencies: [
                "OrgdCore", "OrgdProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ]
        ),
        // The store: the domain's queries over one SQL interface, and its two
        // backends (SQLite through GRDB, PostgreSQL through postgres-nio):
        // migrations, records, queries. Never sees a protobuf.
        .target(
            name: "OrgdStore",
            dependencies: [
                "OrgdCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The services' rules and authorisation; never sees a socket.
        .target(
            name: "OrgdServices",
            dependencies: [
                "OrgdCore", "OrgdProto", "OrgdStore", "OrgdWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),
        // Listeners, connections, dispatch, deadlines.
        .target(
            name: "OrgdServer",
            dependencies: [
                "OrgdCore", "OrgdWire", "OrgdServices", "OrgdStore", "OrgdProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .executableTarget(
            name: "orgd",
            dependencies: [
                "OrgdCore", "OrgdServer", "OrgdStore", "OrgdServices",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The Swift client: one multiplexed connection, typed async methods.
        .target(
            name: "OrgdClient",
            dependencies: [
                "OrgdCore", "OrgdWire", "OrgdProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        ),
        .executableTarget(
            name: "orgctl",
            dependencies: [
                "OrgdClient", "OrgdCore", "OrgdProto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // libFuzzer targets: bytes → frames → envelopes → dispatcher → store, and structured requests of every RPC (scripts/fuzz).
        .executableTarget(
            name: "OrgdFuzz",
            dependencies: [
                "OrgdWire", "OrgdServices", "OrgdStore", "OrgdProto", "OrgdCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        // What the test targets share: the database the suites run over
        // (ORGD_TEST_BACKEND) and fresh PostgreSQL databases on the tests'
        // throwaway cluster (ORGD_TEST_POSTGRES_URL, scripts/test).
        .target(
            name: "OrgdTestSupport",
            dependencies: [
                "OrgdStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "OrgdWireTests",
            dependencies: [
                "OrgdWire", "OrgdProto", "OrgdCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Unit tests of the server's parts that need no socket.
        .testTarget(
            name: "OrgdServerTests",
            dependencies: [
                "OrgdServer", "OrgdCore", "OrgdWire", "OrgdProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "OrgdServicesTests",
            dependencies: [
                "OrgdServices", "OrgdStore", "OrgdCore", "OrgdProto", "OrgdClient", "OrgdWire", "OrgdTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "OrgdEndToEndTests",
            dependencies: [
                "OrgdServer", "OrgdClient", "OrgdStore", "OrgdServices", "OrgdProto", "OrgdCore", "OrgdWire", "OrgdTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
    ]
)
