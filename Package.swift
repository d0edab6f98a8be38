// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "outbox-relay",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "outbox-relay", targets: ["outbox-relay"]),
        .library(name: "OutboxSQL", targets: ["OutboxSQL"]),
        .library(name: "OutboxRelay", targets: ["OutboxRelay"]),
        .library(name: "OutboxOperations", targets: ["OutboxOperations"]),
        .library(name: "OutboxAdmin", targets: ["OutboxAdmin"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CLibCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CMalloc"),
        .target(
            name: "OutboxSQL",
            dependencies: ["CLibPQ", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "OutboxRelay",
            dependencies: [
                "OutboxSQL",
                "CLibCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [.embedInCode("Migrations")]
        ),
        // The operator's operations, one type each, over OutboxSQL: what the CLI and the admin API both call.
        .target(name: "OutboxOperations", dependencies: ["OutboxSQL"]),
        // The surfaces around the core: the admin port, the JSON API, the console and the metrics backend.
        .target(
            name: "OutboxAdmin",
            dependencies: [
                "OutboxOperations",
                "OutboxRelay",
                "OutboxSQL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            resources: [.embedInCode("Console")]
        ),
        .executableTarget(
            name: "outbox-relay",
            dependencies: [
                "CMalloc",
                "OutboxAdmin",
                "OutboxOperations",
                "OutboxRelay",
                "OutboxSQL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Shared by the test targets: a throwaway database per test, real HTTP receivers, the relay binary.
        .target(
            name: "TestSupport",
            dependencies: [
                "OutboxSQL",
                "OutboxRelay",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "OutboxSQLTests", dependencies: ["OutboxSQL", "TestSupport"]),
        .testTarget(name: "OutboxRelayTests", dependencies: ["OutboxRelay", "OutboxSQL", "TestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "OutboxAdmin",
                "OutboxOperations",
                "OutboxRelay",
                "OutboxSQL",
                "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ]
)
