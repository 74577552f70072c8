import Foundation
import InMemoryStorage
import ModelRegistryCore
import PostgresMetadata
import SQLiteMetadata
import TestServers
import Testing

/// A metadata backend under test: `open` makes an empty store and hands the test a way to open instances of
/// it (a second instance is another process on the same database).
struct MetadataBackend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Whether its instances stand for processes that write one store at once (replicas), rather than one
    /// process's store opened again.
    var sharedByProcesses = false
    let open:
        @Sendable (_ body: @Sendable (_ instance: @Sendable () throws -> any MetadataStore) async throws -> Void)
            async throws -> Void

    var testDescription: String { name }

    static let all: [MetadataBackend] = [
        MetadataBackend(name: "in-memory", sharedByProcesses: true) { body in
            let storage = InMemoryMetadataStore.Storage()
            try await body { InMemoryMetadataStore(storage: storage) }
        },
        MetadataBackend(name: "SQLite") { body in
            try await withDatabasePath { path in try await body { try SQLiteMetadataStore(path: path) } }
        },
        // A real server (TestServers), a database of its own a test; instances are replicas' connection pools.
        MetadataBackend(name: "PostgreSQL", sharedByProcesses: true) { body in
            let server = try PostgresServer.shared()
            let database = try server.createDatabase()
            defer { server.dropDatabase(database) }
            let location = try PostgresLocation(parsing: server.url(database) + "?sslmode=disable")
            // Other suites that block the test process's cooperative threads can hold up the pool's work for
            // minutes in a full run: the tests wait for connections as long as that takes.
            try await PostgresMetadataStore(location, connectionWait: .seconds(600)).migrate()
            try await body { try PostgresMetadataStore(location, connections: 4, connectionWait: .seconds(600)) }
        },
        // What the server runs: the SQLite store behind the kept reads, which must change nothing it answers.
        MetadataBackend(name: "kept reads over SQLite") { body in
            try await withDatabasePath { path in
                try await body { KeptReadsMetadataStore(try SQLiteMetadataStore(path: path)) }
            }
        },
    ]

    /// A database path in a fresh directory, removed afterwards.
    private static func withDatabasePath(_ body: (String) async throws -> Void) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-conf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try await body(root.appendingPathComponent("registry.sqlite").path)
    }
}

extension MetadataStore {
    /// Publishes `model:version` (variant `variant`) of one file per content, recording the blobs first as the
    /// upload route does.
    @discardableResult
    func publish(
        _ model: String, _ version: String, variant: String = "default", files: [String: String],
        pushedArtifact: PushedArtifact? = nil, actor: String = "test"
    ) async throws -> PublishOutcome {
        let manifest = Manifest(
            format: .other,
            files: try files.map { path, content in
                ManifestFile(
                    path: try ManifestPath(path), digest: Digest.of(Array(content.utf8)),
                    size: Int64(content.utf8.count))
            })
        try await recordBlobs(manifest.files.map { StoredBlob(digest: $0.digest, size: $0.size, stored: Date()) })
        return try await publish(
            PublishRequest(
                model: try ModelName(model), version: try VersionName(version), variant: try VariantName(variant),
                manifest: manifest, pushedArtifact: pushedArtifact, actor: actor))
    }

    func set(_ model: String, _ alias: String, _ version: String, expecting: AliasExpectation? = nil) async throws
        -> AliasTarget
    {
        try await moveAlias(
            AliasMove(
                model: try ModelName(model), alias: try AliasName(alias),
                kind: .set(try VersionName(version), variant: nil),
                expectation: expecting, actor: "test"))
    }
}

/// The code of the `RegistryError` a call throws, or nil when it throws none.
func errorCode(_ body: () async throws -> Void) async -> RegistryError.Code? {
    do {
        try await body()
        return nil
    } catch let error as RegistryError {
        return error.code
    } catch {
        return .internalError
    }
}
