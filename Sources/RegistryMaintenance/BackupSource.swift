import FileSystemBlobs
import FileSystemIO
import Foundation
import GRDB
import ModelRegistryCore

/// Where a backup reads a registry from: its data directory, or a running server (`RemoteBackupSource` in
/// RegistryClient).
public protocol BackupSource: Sendable {
    /// Names the registry in snapshots and messages.
    var description: String { get }
    /// Writes a consistent copy of the registry database to the new file `path`.
    func snapshotDatabase(to path: String) async throws
    /// Writes the blob's bytes to the new file `path`, synced, and returns the digest and size of what it wrote.
    func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry
}

/// A registry's data directory on this machine; the server may be running on it meanwhile.
public struct LocalBackupSource: BackupSource {
    public let directory: DataDirectory

    public init(directory: DataDirectory) {
        self.directory = directory
    }

    public var description: String { directory.root.path }

    public func snapshotDatabase(to path: String) async throws {
        try Self.snapshot(database: directory.database.path, to: path)
    }

    /// SQLite's online backup API, all pages in one step inside one read transaction: a consistent database
    /// as of one moment, taken while writers go on.
    public static func snapshot(database source: String, to path: String) throws {
        let database = try RegistryDatabase.open(source)
        defer { try? database.close() }
        do {
            let copy = try DatabaseQueue(path: path)
            try database.backup(to: copy)
            try copy.close()
        } catch {
            throw RegistryError(.storageFailure, "cannot snapshot the database \(source) into \(path): \(error)")
        }
        let file = try POSIXFile.openForReading(path)
        try file.sync()
        try file.close()
    }

    public func copyBlob(_ blob: BlobEntry, to path: String) async throws -> BlobEntry {
        let source = directory.blob(blob.digest).path
        guard try POSIXFile.status(source) != nil else {
            throw RegistryError(
                .notFound,
                "blob \(blob.digest) is referenced but not stored in \(directory.root.path): run `modelreg verify` and `modelreg repair`"
            )
        }
        return try FileTree.copy(from: source, to: path)
    }
}
