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

/// The file operations maintenance needs, with the fsync ordering that makes each step durable: a file is
/// complete and synced before it is renamed into place, and the directory is synced after the rename.
enum FileTree {
    static let chunkSize = 4 << 20

    /// Copies a file into a new file while hashing it, and syncs the copy. Returns what was copied.
    static func copy(from source: String, to destination: String) throws(RegistryError) -> BlobEntry {
        let (digest, size) = try POSIXFile.copy(from: source, to: destination, chunkSize: chunkSize)
        return BlobEntry(digest: digest, size: size)
    }

    /// Writes a stream into the new file `path` while hashing it, and syncs it. Returns what was written.
    static func write(_ bytes: BlobBytes, to path: String) async throws -> BlobEntry {
        let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        do {
            var hasher = ContentHasher()
            for try await buffer in bytes {
                try buffer.withUnsafeReadableBytes { raw throws(RegistryError) in
                    try file.write(raw, at: hasher.count)
                    hasher.update(raw)
                }
            }
            try file.sync()
            try file.close()
            return BlobEntry(digest: hasher.finalize(), size: hasher.count)
        } catch {
            try? file.close()
            try? POSIXFile.remove(path)
            throw error
        }
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
        try POSIXFile.createDirectory(parent)
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
        for name in try POSIXFile.entries(path) where !kept.contains(name) {
            do {
                try FileManager.default.removeItem(atPath: path + "/" + name)
            } catch {
                throw RegistryError(.storageFailure, "cannot remove \(path)/\(name): \(error.localizedDescription)")
            }
        }
    }
}
