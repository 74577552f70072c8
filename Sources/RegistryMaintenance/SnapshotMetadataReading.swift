import FileSystemIO
import Foundation
import ModelRegistryCore
import SQLiteMetadata

extension BackupRepository {
    /// The snapshot's metadata as an export, checked against its digest. A snapshot written before exports
    /// holds a SQLite database: a copy of it in `scratch` is brought up to this binary's schema and exported,
    /// so every restore imports the same way.
    func metadata(of snapshot: Snapshot, scratch: URL) async throws -> MetadataExport {
        let blob = snapshot.metadata.blob
        let path = self.blob(blob.digest)
        guard try POSIXFile.status(path) != nil else {
            throw RegistryError(
                .integrity,
                "the repository lacks the metadata of snapshot \(snapshot.id) (\(blob.digest)): run `modelreg backup verify`; restore an older snapshot"
            )
        }
        let corrupt = { (actual: Digest) in
            RegistryError(
                .integrity,
                "the repository's copy of the metadata of snapshot \(snapshot.id) is corrupt (it hashes to \(actual)): restore an older snapshot"
            )
        }
        switch snapshot.metadata {
        case .export:
            guard let data = FileManager.default.contents(atPath: path) else {
                throw RegistryError(.storageFailure, "cannot read \(path)")
            }
            let bytes = [UInt8](data)
            let actual = Digest.of(bytes)
            guard actual == blob.digest else { throw corrupt(actual) }
            return try MetadataExport.decode(bytes, from: "the metadata of snapshot \(snapshot.id)")
        case .sqliteDatabase:
            try POSIXFile.createDirectory(scratch.path)
            let copy = scratch.appendingPathComponent("snapshot-database-\(UUID().uuidString.lowercased())").path
            defer {
                for suffix in ["", "-wal", "-shm"] { try? POSIXFile.remove(copy + suffix) }
            }
            let copied = try FileTree.copy(from: path, to: copy)
            guard copied.digest == blob.digest else { throw corrupt(copied.digest) }
            return try await SQLiteMetadataStore.openExisting(path: copy).exportMetadata()
        }
    }
}
