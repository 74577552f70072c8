import FileSystemBlobs
import Foundation
import GRDB
import ModelRegistryCore
import NIOCore
import SQLiteMetadata
import Testing

@testable import RegistryMaintenance

/// A registry data directory driven through the real blob store and metadata store, without a server.
final class TestData: @unchecked Sendable {
    let root: URL
    let directory: DataDirectory
    let blobs: FileSystemBlobStore
    let metadata: SQLiteMetadataStore

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "modelreg-maintenance-\(UUID().uuidString)")
        directory = DataDirectory(root.appendingPathComponent("data").path)
        try directory.create()
        blobs = FileSystemBlobStore(directory: directory)
        metadata = try SQLiteMetadataStore(path: directory.database.path)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func url(_ path: String) -> URL { root.appendingPathComponent(path) }

    /// Stores bytes as a blob the way the upload route does: put, then record.
    @discardableResult
    func store(_ bytes: [UInt8]) async throws -> BlobInfo {
        let info = try await blobs.put([ByteBuffer(bytes: bytes)].async, expecting: Digest.of(bytes))
        try await metadata.recordBlob(info)
        return info
    }

    /// Publishes `name:version` (variant `default`) with one file per entry, storing each file's blob first.
    @discardableResult
    func publish(_ name: String, _ version: String, _ files: [String: [UInt8]]) async throws -> Digest {
        var manifestFiles: [ManifestFile] = []
        for (path, bytes) in files.sorted(by: { $0.key < $1.key }) {
            let info = try await store(bytes)
            manifestFiles.append(ManifestFile(path: try ManifestPath(path), digest: info.digest, size: info.size))
        }
        let outcome = try await metadata.publish(
            PublishRequest(
                model: try ModelName(name), version: try VersionName(version), variant: .default,
                manifest: Manifest(format: .other, files: manifestFiles), actor: "test"
            ))
        return outcome.variant.digest
    }

    /// Sets a blob file's modification time into the past, as if it had been uploaded long ago.
    /// Sets a blob file's time and its record's into the past, as if it had been uploaded long ago.
    func age(_ digest: Digest, seconds: TimeInterval) throws {
        let then = Date().addingTimeInterval(-seconds)
        try FileManager.default.setAttributes([.modificationDate: then], ofItemAtPath: directory.blob(digest).path)
        try DatabaseQueue(path: directory.database.path).write { db in
            try db.execute(
                sql: "UPDATE blobs SET created_at = ? WHERE digest = ?",
                arguments: [Timestamp.format(then), digest.description])
        }
    }

    /// The digests the database has records of.
    func recordedBlobs() throws -> Set<Digest> {
        try DatabaseQueue(path: directory.database.path).read { db in
            Set(try String.fetchAll(db, sql: "SELECT digest FROM blobs").map { try Digest(parsing: $0) })
        }
    }

    func hasBlob(_ digest: Digest) -> Bool {
        FileManager.default.fileExists(atPath: directory.blob(digest).path)
    }

    /// Flips one bit of a file in place.
    static func flipBit(_ path: String, at offset: UInt64 = 0) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let byte = try #require(try handle.read(upToCount: 1)).first!
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: [byte ^ 0x10])
    }
}

func bytes(_ text: String, count: Int = 4096) -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return Array(text.utf8) + (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

extension Array where Element: Sendable {
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}
