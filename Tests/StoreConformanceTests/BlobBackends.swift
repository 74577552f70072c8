import FileSystemBlobs
import Foundation
import InMemoryStorage
import ModelRegistryCore
import NIOCore
import PostgresMetadata
import S3Blobs
import SQLiteMetadata
import TestServers
import Testing

/// A blob backend under test: `open` makes an empty storage and hands the test a way to open store instances
/// over it (a second instance is another replica, or the server after a restart).
struct BlobBackend: Sendable, CustomTestStringConvertible {
    let name: String
    /// Whether its stores hand out direct download URLs.
    let presigns: Bool
    /// Whether its blobs are local files, handed out as file regions (for `sendfile`).
    var localFiles = false
    let open:
        @Sendable (_ body: @Sendable (_ instance: @Sendable () throws -> any BlobStore) async throws -> Void)
            async throws -> Void

    var testDescription: String { name }

    static let all: [BlobBackend] = [
        BlobBackend(name: "in-memory", presigns: false) { body in
            let storage = InMemoryBlobStore.Storage()
            try await body { InMemoryBlobStore(storage: storage) }
        },
        BlobBackend(name: "file system", presigns: false, localFiles: true) { body in
            let root = FileManager.default.temporaryDirectory.appendingPathComponent(
                "modelreg-conf-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: root) }
            let directory = DataDirectory(root.path)
            try directory.create()
            try await body { FileSystemBlobStore(directory: directory) }
        },
        // A real S3-compatible server (moto, TestServers), a bucket of its own a test, under a prefix; uploads'
        // records in a real PostgreSQL, as replicas share them. Instances are replicas.
        BlobBackend(name: "S3 (moto) with PostgreSQL", presigns: true) { body in
            let moto = try MotoServer.shared()
            let bucket = try moto.createBucket()
            let server = try PostgresServer.shared()
            let database = try server.createDatabase()
            defer { server.dropDatabase(database) }
            let records = try PostgresLocation(parsing: server.url(database) + "?sslmode=disable")
            try await PostgresMetadataStore(records, connectionWait: .seconds(600)).migrate()
            let location = try S3Location(parsing: moto.url(bucket: bucket, prefix: "registry"))
            let credentials = S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey)
            try await body {
                S3BlobStore(
                    client: S3Client(location: location, credentials: credentials), location: location,
                    uploads: try PostgresMetadataStore(records, connections: 4, connectionWait: .seconds(600)),
                    holdLength: starvedThreadsWait)
            }
        },
        // One server on S3 with the embedded metadata: uploads' records in SQLite.
        BlobBackend(name: "S3 (moto) with SQLite", presigns: true) { body in
            let moto = try MotoServer.shared()
            let location = try S3Location(parsing: moto.url(bucket: try moto.createBucket(), prefix: "registry"))
            let credentials = S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey)
            let root = FileManager.default.temporaryDirectory.appendingPathComponent(
                "modelreg-conf-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: root) }
            let records = try SQLiteMetadataStore(path: root.appendingPathComponent("registry.sqlite").path)
            try await body {
                S3BlobStore(
                    client: S3Client(location: location, credentials: credentials), location: location,
                    uploads: records, holdLength: starvedThreadsWait)
            }
        },
    ]
}

/// How long a hold on an S3 upload lasts in the tests: a full run starves the test process's threads for
/// minutes (as the PostgreSQL backends' connection wait allows), and a hold must not lapse meanwhile.
private let starvedThreadsWait: TimeInterval = 600

/// Byte buffers as an async sequence, optionally failing after the last one (a dropped connection).
struct Chunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    var parts: [[UInt8]]
    var failAtEnd = false

    struct Dropped: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        var parts: [[UInt8]]
        var failAtEnd: Bool
        mutating func next() async throws -> ByteBuffer? {
            if parts.isEmpty {
                if failAtEnd { throw Dropped() }
                return nil
            }
            return ByteBuffer(bytes: parts.removeFirst())
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(parts: parts, failAtEnd: failAtEnd) }
}

extension BlobStore {
    func put(_ bytes: [UInt8]) async throws -> BlobInfo {
        try await put(Chunks(parts: [bytes]), expecting: Digest.of(bytes))
    }

    func readAll(_ digest: Digest, _ range: Range<Int64>) async throws -> [UInt8] {
        var collected: [UInt8] = []
        for try await chunk in try await read(digest, range: range) { collected += Array(buffer: chunk) }
        return collected
    }
}
