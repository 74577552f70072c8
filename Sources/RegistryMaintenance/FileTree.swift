import FileSystemIO
import Foundation
import ModelRegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file of a content-addressed tree `<root>/<2 hex>/<64 hex>`.
public struct BlobFile: Sendable {
    public var digest: Digest
    public var path: String
    public var size: Int64
    public var modified: Date
}

/// The file operations maintenance needs, with the fsync ordering that makes each step durable: a file is
/// complete and synced before it is renamed into place, and the directory is synced after the rename.
enum FileTree {
    static let chunkSize = 4 << 20

    /// Every file named like a blob under a content-addressed tree; other names are left alone.
    static func blobFiles(in root: URL) throws(RegistryError) -> [BlobFile] {
        var files: [BlobFile] = []
        for prefix in try entries(root.path) where prefix.utf8.count == 2 {
            let directory = root.path + "/" + prefix
            for name in try entries(directory) where name.hasPrefix(prefix) {
                guard let digest = try? Digest(parsing: Digest.prefix + name) else { continue }
                let path = directory + "/" + name
                guard let status = try status(path) else { continue }
                files.append(BlobFile(digest: digest, path: path, size: status.size, modified: status.modified))
            }
        }
        return files.sorted { $0.digest < $1.digest }
    }

    /// The names in a directory; none when it does not exist.
    static func entries(_ path: String) throws(RegistryError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw RegistryError(.storageFailure, "cannot list \(path): \(error.localizedDescription)")
        }
    }

    /// Size and modification time of a regular file, or nil when there is none.
    static func status(_ path: String) throws(RegistryError) -> (size: Int64, modified: Date)? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw RegistryError(.storageFailure, "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
        return (Int64(info.st_size), modified)
    }

    /// Creates a directory and any missing parents, syncing the parent of each one created.
    static func createDirectory(_ path: String) throws(RegistryError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return }
        let parent = (path as NSString).deletingLastPathComponent
        if parent != path, !parent.isEmpty { try createDirectory(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
            throw RegistryError(.storageFailure, "cannot create directory \(path): \(String(cString: strerror(errno)))")
        }
        try POSIXFile.syncDirectory(parent.isEmpty ? "." : parent)
    }

    /// Copies a file into a new file while hashing it, and syncs the copy. Returns what was copied.
    static func copy(from source: String, to destination: String) throws(RegistryError) -> BlobEntry {
        let (digest, size) = try POSIXFile.copy(from: source, to: destination, chunkSize: chunkSize)
        return BlobEntry(digest: digest, size: size)
    }

    /// Writes bytes durably at `path` through a temporary file beside it.
    static func writeAtomically(_ bytes: [UInt8], to path: String, temporary: String) throws(RegistryError) {
        try POSIXFile.create(temporary) { file throws(RegistryError) in
            let failure = bytes.withUnsafeBytes { raw -> RegistryError? in
                do {
                    try file.write(raw, at: 0)
                    return nil
                } catch {
                    return error as? RegistryError
                        ?? RegistryError(.storageFailure, "cannot write \(temporary): \(error)")
                }
            }
            if let failure { throw failure }
        }
        try install(temporary, as: path)
    }

    /// Renames a complete, synced file into place and syncs the directory that now holds it.
    static func install(_ temporary: String, as path: String) throws(RegistryError) {
        let parent = (path as NSString).deletingLastPathComponent
        try createDirectory(parent)
        try POSIXFile.rename(temporary, to: path)
        try POSIXFile.syncDirectory(parent)
    }

    /// Hashes a whole file.
    static func hash(_ path: String) throws(RegistryError) -> BlobEntry {
        let file = try POSIXFile.openForReading(path)
        defer { try? file.close() }
        let (hasher, size) = try file.hashContents(chunkSize: chunkSize)
        return BlobEntry(digest: hasher.finalize(), size: size)
    }

    /// Removes everything inside a directory but the names in `kept`, keeping the directory.
    static func removeContents(of path: String, keeping kept: Set<String> = []) throws(RegistryError) {
        for name in try entries(path) where !kept.contains(name) {
            do {
                try FileManager.default.removeItem(atPath: path + "/" + name)
            } catch {
                throw RegistryError(.storageFailure, "cannot remove \(path)/\(name): \(error.localizedDescription)")
            }
        }
    }
}
