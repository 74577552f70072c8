import FileSystemIO
import Foundation
import ModelRegistryCore

/// The on-disk layout of a registry. Every path the registry touches is derived here and nowhere else.
///
///     <root>/registry.sqlite        metadata (WAL)
///     <root>/blobs/sha256/ab/<hex>  immutable blobs
///     <root>/blobs/sha256/ab/<hex>.deleting   a blob garbage collection is deleting (put back at start)
///     <root>/uploads/<id>           uploads in progress
///     <root>/uploads/<id>.digest    the digest an upload was started for (to resume it)
///     <root>/uploads/<id>.hash      the hash state of the upload's first bytes (any process goes on with it)
///     <root>/uploads/<id>.hash.tmp  a new hash state before it replaces the saved one
///     <root>/images/                cache image records of earlier versions (now in the metadata store)
///     <root>/tmp/                   scratch space on the same filesystem
///     <root>/quarantine/sha256/<hex> blobs `modelreg verify` found corrupt, never served
///     <root>/admin.token            the first admin token (0600)
///     <root>/server.lock            held by the server, or a restore, working on the directory
///     <root>/restore.incomplete     present while a restore writes the directory
public struct DataDirectory: Sendable {
    public let root: URL

    public init(_ path: String) {
        self.root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
    }

    public var database: URL { root.appendingPathComponent("registry.sqlite") }
    public var blobs: URL { root.appendingPathComponent("blobs/sha256", isDirectory: true) }
    public var uploads: URL { root.appendingPathComponent("uploads", isDirectory: true) }
    public var tmp: URL { root.appendingPathComponent("tmp", isDirectory: true) }
    public var adminToken: URL { root.appendingPathComponent("admin.token") }
    /// Held by the server that serves this directory, for as long as it runs.
    public var serverLock: URL { root.appendingPathComponent("server.lock") }
    /// Written when a restore starts and removed when it finished: a directory holding it is no registry
    /// yet, and a rerun with `--force` may replace it.
    public var restoreMarker: URL { root.appendingPathComponent("restore.incomplete") }
    /// Where versions before the metadata store kept cache image records; the server removes it.
    public var legacyImages: URL { root.appendingPathComponent("images", isDirectory: true) }
    public var quarantine: URL { root.appendingPathComponent("quarantine/sha256", isDirectory: true) }

    public func blobDirectory(_ digest: Digest) -> URL {
        blobs.appendingPathComponent(String(digest.hex.prefix(2)), isDirectory: true)
    }

    public func blob(_ digest: Digest) -> URL {
        blobDirectory(digest).appendingPathComponent(digest.hex)
    }

    public func upload(_ id: UploadID) -> URL {
        uploads.appendingPathComponent(id.value)
    }

    /// The digest an upload was started for, so that a client killed mid-upload finds it again.
    public func uploadExpectation(_ id: UploadID) -> URL {
        uploads.appendingPathComponent(id.value + Self.expectationSuffix)
    }

    static let expectationSuffix = ".digest"

    /// The saved hash state of an upload's first bytes, so that any process can go on with it.
    public func uploadHashState(_ id: UploadID) -> URL {
        uploads.appendingPathComponent(id.value + Self.hashStateSuffix)
    }

    static let hashStateSuffix = ".hash"

    /// A blob renamed aside while garbage collection deletes it (`blobs/sha256/ab/<hex>.deleting`).
    public static let deletingSuffix = ".deleting"

    /// Where a new hash state is written before it replaces the saved one.
    func uploadHashStateDraft(_ id: UploadID) -> URL {
        uploads.appendingPathComponent(id.value + Self.hashStateDraftSuffix)
    }

    static let hashStateDraftSuffix = ".hash.tmp"

    /// The upload a record in `uploads/` (`<id>.digest`, `<id>.hash`, `<id>.hash.tmp`) belongs to, from its name.
    static func uploadRecordOwner(_ name: String) -> UploadID? {
        for suffix in [expectationSuffix, hashStateSuffix, hashStateDraftSuffix] where name.hasSuffix(suffix) {
            return try? UploadID(name.dropLast(suffix.count))
        }
        return nil
    }

    /// Takes the directory for the life of the process, as `serve` does and as `restore` and every
    /// maintenance command that writes must: another process holding it is refused, named, with `doing`
    /// (what the caller is) and `instead` (what the user may do rather than stop the holder) in the message.
    public func claim(doing: String, instead: String = "give this one another --data") throws(RegistryError) -> FileLock
    {
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        } catch {
            throw RegistryError(.storageFailure, "cannot create \(root.path): \(error.localizedDescription)")
        }
        return try FileLock(path: serverLock.path, exclusive: true) { holder in
            RegistryError(
                .conflict,
                "the data directory \(root.path) is in use by another modelreg server, restore or maintenance command\(holder.isEmpty ? "" : " (\(holder))"): "
                    + "stop it before \(doing), or \(instead)"
            )
        }
    }

    /// Creates the directory tree; safe to call on an existing registry.
    public func create() throws(RegistryError) {
        try create([root, blobs, uploads, tmp])
    }

    /// The directory alone, for a server that keeps its data elsewhere and writes only its admin token here.
    public func createRoot() throws(RegistryError) {
        try create([root])
    }

    private func create(_ directories: [URL]) throws(RegistryError) {
        for directory in directories {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw RegistryError(.storageFailure, "cannot create \(directory.path): \(error.localizedDescription)")
            }
        }
    }
}
