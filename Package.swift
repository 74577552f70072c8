// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "modelreg",
    products: [
        .executable(name: "modelreg", targets: ["modelreg"]),
        // The parsers and the extractor, for the fuzz targets in Fuzz/ (a package that depends on this one).
        .library(name: "ModelRegistryCore", targets: ["ModelRegistryCore"]),
        .library(name: "ModelFormats", targets: ["ModelFormats"]),
        .library(name: "CacheImage", targets: ["CacheImage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
    ],
    targets: [
        .executableTarget(name: "MigrationEmbedder"),
        .plugin(
            name: "EmbedMigrations",
            capability: .buildTool(),
            dependencies: ["MigrationEmbedder"]
        ),
        // SHA-256 with a state that can be saved and restored (libcrypto, from libssl-dev), so an upload's hash
        // outlives the process that began it.
        .target(name: "CResumableSHA256", linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "ModelRegistryCore",
            dependencies: [
                "CResumableSHA256",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // File descriptors with exact write, fsync and rename control; errors that name the path.
        .target(
            name: "FileSystemIO",
            dependencies: ["ModelRegistryCore", "CWriteback", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // Linux's sync_file_range, which Swift's Glibc module leaves out.
        .target(name: "CWriteback"),
        // The embedded blob backend: the data directory's layout and blobs and uploads as files in it.
        .target(
            name: "FileSystemBlobs",
            dependencies: [
                "ModelRegistryCore", "FileSystemIO", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        // Stores held in memory: the reference backends of the conformance suites and the route tests' stores.
        .target(
            name: "InMemoryStorage",
            dependencies: ["ModelRegistryCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        // The SQLite metadata store (GRDB, WAL) and its schema, Migrations/sqlite/.
        .target(
            name: "SQLiteMetadata",
            dependencies: ["ModelRegistryCore", .product(name: "GRDB", package: "GRDB.swift")],
            plugins: ["EmbedMigrations"]
        ),
        // The PostgreSQL metadata store (postgres-nio, a connection pool) and its schema, Migrations/postgres/.
        .target(
            name: "PostgresMetadata",
            dependencies: [
                "ModelRegistryCore", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            plugins: ["EmbedMigrations"]
        ),
        // AWS Signature Version 4 for S3 requests (swift-crypto's HMAC; there is no AWS SDK here).
        .target(
            name: "S3Blobs",
            dependencies: [
                "ModelRegistryCore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Real servers the tests start on free loopback ports (PostgreSQL through initdb and pg_ctl).
        .target(
            name: "TestServers",
            dependencies: ["ModelRegistryCore"],
            path: "Tests/TestServers"
        ),
        .target(
            name: "ModelFormats",
            dependencies: ["FileSystemIO", "ModelRegistryCore", .product(name: "NIOCore", package: "swift-nio")]
        ),
        .systemLibrary(
            name: "CArchive",
            pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"]), .brew(["libarchive"])]
        ),
        .target(
            name: "CacheImage",
            dependencies: [
                "FileSystemIO", "ModelRegistryCore", "CArchive", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Serving plans: a variant's metadata to a tensor-parallel size, a context and vLLM's arguments.
        .target(
            name: "ServingPlan",
            dependencies: ["ModelFormats", "ModelRegistryCore"]
        ),
        // Kubernetes manifests that serve a plan: Deployment, Service, PodDisruptionBudget, HPA, as YAML.
        .target(
            name: "KubernetesManifests",
            dependencies: ["ServingPlan", "ModelFormats", "ModelRegistryCore"]
        ),
        // Models as OCI artifacts and images: CNCF ModelPack manifests and configs, runnable images, tags.
        .target(
            name: "OCIArtifacts",
            dependencies: ["ModelRegistryCore"]
        ),
        // The wire contract shared by server and client: request and response bodies, header names.
        .target(
            name: "RegistryAPI",
            dependencies: ["ModelRegistryCore"]
        ),
        .target(
            name: "RegistryMaintenance",
            dependencies: [
                "FileSystemIO", "FileSystemBlobs", "ModelRegistryCore", "RegistryAPI", "SQLiteMetadata",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        // The web pages at /ui: templates, their page models, safe Markdown, sign-in sessions and CSRF tokens.
        .target(
            name: "WebUI",
            dependencies: [
                "ModelRegistryCore", "ModelFormats", "OCIArtifacts",
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: [
                .embedInCode("Templates/layout.mustache"), .embedInCode("Templates/catalogue.mustache"),
                .embedInCode("Templates/model.mustache"), .embedInCode("Templates/variant.mustache"),
                .embedInCode("Templates/audit.mustache"), .embedInCode("Templates/signin.mustache"),
                .embedInCode("Templates/error.mustache"), .embedInCode("Static/style.css"),
                .embedInCode("Static/app.js"),
            ]
        ),
        .target(
            name: "RegistryServer",
            dependencies: [
                "WebUI",
                "FileSystemIO",
                "FileSystemBlobs",
                "ModelRegistryCore",
                "ModelFormats",
                "CacheImage",
                "OCIArtifacts",
                "RegistryAPI",
                "RegistryMaintenance",
                "SQLiteMetadata",
                "PostgresMetadata",
                "S3Blobs",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("openapi.json")]
        ),
        .target(
            name: "RegistryClient",
            dependencies: [
                "FileSystemIO",
                "ModelRegistryCore",
                "ModelFormats",
                "CacheImage",
                "RegistryAPI",
                "ServingPlan",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Maintenance as the CLI runs it: backups and repairs of a server through its API, and their reports.
        .target(
            name: "MaintenanceClient",
            dependencies: ["ModelRegistryCore", "RegistryAPI", "RegistryClient", "RegistryMaintenance"]
        ),
        .executableTarget(
            name: "modelreg",
            dependencies: [
                "FileSystemIO",
                "FileSystemBlobs",
                "ModelRegistryCore",
                "ModelFormats",
                "CacheImage",
                "RegistryServer",
                "RegistryAPI",
                "RegistryClient",
                "RegistryMaintenance",
                "MaintenanceClient",
                "SQLiteMetadata",
                "PostgresMetadata",
                "S3Blobs",
                "ServingPlan",
                "KubernetesManifests",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The conformance suites every store backend passes.
        .testTarget(
            name: "StoreConformanceTests",
            dependencies: [
                "ModelRegistryCore", "FileSystemBlobs", "InMemoryStorage", "SQLiteMetadata", "PostgresMetadata",
                "S3Blobs",
                "TestServers", .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ModelRegistryCoreTests",
            dependencies: [
                "ModelRegistryCore", "TestServers",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "FileSystemBlobsTests",
            dependencies: [
                "FileSystemBlobs", "FileSystemIO", "ModelRegistryCore", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "S3BlobsTests",
            dependencies: [
                "S3Blobs", "ModelRegistryCore", "PostgresMetadata", "TestServers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .testTarget(
            name: "PostgresMetadataTests", dependencies: ["PostgresMetadata", "ModelRegistryCore", "TestServers"]),
        .testTarget(
            name: "SQLiteMetadataTests",
            dependencies: ["SQLiteMetadata", "ModelRegistryCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "CacheImageTests",
            dependencies: ["CacheImage", "ModelRegistryCore", "TestServers"]
        ),
        .testTarget(
            name: "OCIArtifactsTests",
            dependencies: ["OCIArtifacts", "ModelRegistryCore"]
        ),
        .testTarget(
            name: "KubernetesManifestsTests",
            dependencies: ["KubernetesManifests", "ServingPlan", "ModelFormats", "ModelRegistryCore", "TestServers"]
        ),
        .testTarget(
            name: "WebUITests",
            dependencies: ["WebUI", "ModelRegistryCore", "ModelFormats", "InMemoryStorage"]
        ),
        .testTarget(
            name: "ServingPlanTests",
            dependencies: ["ServingPlan", "ModelFormats", "ModelRegistryCore", "ModelFixtures"]
        ),
        // Model files written by hand (safetensors, GGUF), for the tests of the modules that read them.
        .target(
            name: "ModelFixtures",
            dependencies: ["ModelFormats", "ModelRegistryCore"],
            path: "Tests/ModelFixtures"
        ),
        .testTarget(
            name: "ModelFormatsTests",
            dependencies: ["ModelFormats", "ModelRegistryCore", "ModelFixtures", "TestServers"]
        ),
        .testTarget(
            name: "RegistryMaintenanceTests",
            dependencies: [
                "FileSystemBlobs", "RegistryMaintenance", "RegistryAPI", "SQLiteMetadata", "ModelRegistryCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "RegistryServerTests",
            dependencies: [
                "FileSystemBlobs", "InMemoryStorage",
                "RegistryServer",
                "RegistryAPI",
                "ModelRegistryCore",
                "SQLiteMetadata",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "RegistryClientTests",
            dependencies: [
                "ModelRegistryCore",
                "RegistryClient",
                "TestServers",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "FileSystemIO",
                "FileSystemBlobs",
                "ModelRegistryCore",
                "RegistryAPI",
                "SQLiteMetadata",
                "TestServers",
                "modelreg",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            // Read by ContractTests, OCIProtocolTests and BrowserTests from their place in the source tree, not
            // resources of the test bundle.
            exclude: ["schemathesis.toml", "Schemas", "Browser"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
