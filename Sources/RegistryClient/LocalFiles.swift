import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One file of a model directory on the local disk.
public struct LocalFile: Sendable {
    public var path: ManifestPath
    public var url: URL
    public var size: Int64
    public var executable: Bool
    /// What the hash cache compares to know the bytes are unchanged.
    public var identity: FileIdentity
}

public enum LocalFiles {
    /// Directories that are never part of a model (version control metadata).
    static let skippedDirectories: Set<String> = [".git"]

    /// Every regular file under `root`, in path order; anything but files, directories and symbolic links
    /// to them is refused by name.
    ///
    /// A symbolic link is followed when its target lies inside `root`, or, for a Hugging Face snapshot
    /// (`…/models--org--name/snapshots/<revision>`), inside that repository's `blobs/`, where the snapshot's
    /// links point. Any other target is refused, naming the link, unless `followExternalLinks`: a link to
    /// `~/.ssh` or `/etc` in a model directory is never what a push means.
    public static func scan(_ root: URL, followExternalLinks: Bool = false) throws -> [LocalFile] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory) else {
            throw RegistryError(.invalidRequest, "\(root.path) does not exist: name the model's directory")
        }
        guard isDirectory.boolValue else {
            throw RegistryError(.invalidRequest, "\(root.path) is not a directory: name the model's directory")
        }
        var files: [LocalFile] = []
        let scope = followExternalLinks ? nil : try LinkScope(root)
        try walk(root, relative: [], scope: scope, into: &files)
        guard !files.isEmpty else { throw RegistryError(.invalidRequest, "\(root.path) contains no files to push") }
        return files.sorted { $0.path < $1.path }
    }

    /// Where the targets of followed links may lie: real paths, symbolic links resolved.
    struct LinkScope {
        var allowed: [String]

        init(_ root: URL) throws {
            let real = try Self.realPath(root.path)
            allowed = [real]
            let components = real.split(separator: "/")
            if components.count >= 3, components[components.count - 2] == "snapshots",
                components[components.count - 3].hasPrefix("models--")
            {
                allowed.append("/" + components.dropLast(2).joined(separator: "/") + "/blobs")
            }
        }

        func contains(_ path: String) -> Bool {
            allowed.contains { path == $0 || path.hasPrefix($0 == "/" ? "/" : $0 + "/") }
        }

        static func realPath(_ path: String) throws -> String {
            guard let resolved = realpath(path, nil) else {
                throw RegistryError(
                    .invalidRequest,
                    "cannot resolve \(path): \(String(cString: strerror(errno))) (a broken symbolic link?)")
            }
            defer { free(resolved) }
            return String(cString: resolved)
        }
    }

    private static func walk(_ directory: URL, relative: [String], scope: LinkScope?, into files: inout [LocalFile])
        throws
    {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw RegistryError(
                .invalidRequest, "cannot read directory \(directory.path): \(error.localizedDescription)")
        }
        for entry in entries.sorted() {
            let url = directory.appendingPathComponent(entry)
            if relative.isEmpty, entry.hasPrefix(ManifestPath.reservedPrefix) {
                throw RegistryError(
                    .invalidPath,
                    "\(url.path): names starting with '\(ManifestPath.reservedPrefix)' are pull's and fetch's own (this looks like a fetched directory's marker or staging): push a directory without it"
                )
            }
            var info = stat()
            guard stat(url.path, &info) == 0 else {
                throw RegistryError(
                    .invalidRequest,
                    "cannot read \(url.path): \(String(cString: strerror(errno))) (a broken symbolic link?)")
            }
            var link = stat()
            if let scope, lstat(url.path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK {
                let target = try LinkScope.realPath(url.path)
                guard scope.contains(target) else {
                    throw RegistryError(
                        .invalidRequest,
                        "\(url.path) is a symbolic link to \(target), outside the directory being pushed: copy the file in, or pass --follow-external-symlinks to push what it points to"
                    )
                }
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                if skippedDirectories.contains(entry) { continue }
                try walk(url, relative: relative + [entry], scope: scope, into: &files)
            case S_IFREG:
                let path = try ManifestPath((relative + [entry]).joined(separator: "/"))
                files.append(
                    LocalFile(
                        path: path, url: url, size: Int64(info.st_size), executable: info.st_mode & 0o100 != 0,
                        identity: FileIdentity(info)
                    ))
            default:
                throw RegistryError(
                    .invalidRequest, "\(url.path) is not a regular file or directory: only regular files can be pushed")
            }
        }
    }

    /// One regular file on its own (named by its last path component), or nil when `url` is not one.
    static func single(_ url: URL) throws -> LocalFile? {
        var info = stat()
        guard stat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return LocalFile(
            path: try ManifestPath(url.lastPathComponent), url: url, size: Int64(info.st_size), executable: false,
            identity: FileIdentity(info)
        )
    }

    /// The sha256 of each file, `jobs` files at once.
    public static func digests(of urls: [URL], jobs: Int) async throws -> [Digest] {
        try await forEach(urls, jobs: max(1, jobs)) { url in
            guard try POSIXFile.regularFileSize(url.path) != nil else {
                throw RegistryError(.invalidRequest, "\(url.path) is not a regular file")
            }
            return try digest(of: url)
        }
    }

    /// The sha256 of a file, read in large chunks.
    public static func digest(of url: URL, onChunk: (Int) -> Void = { _ in }) throws -> Digest {
        let file = try POSIXFile.openForReading(url.path)
        defer { try? file.close() }
        return try file.hashContents(chunkSize: FileChunks.chunkSize, onChunk: onChunk).hasher.finalize()
    }
}

/// The bytes of a file from an offset on, as a stream of buffers for a request body.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    static let chunkSize = 1 << 20

    let file: POSIXFile
    let start: Int64
    let end: Int64
    /// Hears the size of every chunk handed to the request (for progress).
    let onChunk: @Sendable (Int) -> Void
    /// Hashes every chunk as it is handed over, when the digest is computed while sending.
    let hasher: SharedHasher?

    init(
        url: URL, from start: Int64, hashingInto hasher: SharedHasher? = nil,
        onChunk: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws {
        file = try POSIXFile.openForReading(url.path)
        self.start = start
        self.onChunk = onChunk
        self.hasher = hasher
        end = try file.size()
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let file: POSIXFile
        var offset: Int64
        let end: Int64
        let onChunk: @Sendable (Int) -> Void
        let hasher: SharedHasher?
        /// Chunks come from memory the socket gave back: a new 1 MiB buffer for every chunk cost a page fault
        /// every 4 KiB, a third of a push's CPU.
        let window = ReadWindow()

        mutating func next() async throws -> ByteBuffer? {
            guard offset < end else { return nil }
            await window.waitForRoom()
            let length = Int(Swift.min(Int64(window.chunkSize(limit: FileChunks.chunkSize)), end - offset))
            var buffer = window.chunk(capacity: length)
            try file.read(into: &buffer, at: offset, length: length)
            guard buffer.readableBytes > 0 else {
                throw RegistryError(.invalidRequest, "\(file.path) shrank while it was being read")
            }
            offset += Int64(buffer.readableBytes)
            hasher?.update(buffer)
            onChunk(buffer.readableBytes)
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(file: file, offset: start, end: end, onChunk: onChunk, hasher: hasher)
    }
}

/// A hash fed by a request body's chunks as they are sent, read once the body is through.
final class SharedHasher: Sendable {
    private let hasher: Mutex<ContentHasher>

    /// Starts with the file's first `count` bytes, read from the file (those the server already holds).
    init(prefixOf url: URL, count: Int64) throws {
        var hasher = ContentHasher()
        if count > 0 {
            let file = try POSIXFile.openForReading(url.path)
            defer { try? file.close() }
            while hasher.count < count {
                let buffer = try file.readBuffer(
                    at: hasher.count, length: Int(min(Int64(FileChunks.chunkSize), count - hasher.count)))
                guard buffer.readableBytes > 0 else {
                    throw RegistryError(.invalidRequest, "\(url.path) shrank while it was being read")
                }
                buffer.withUnsafeReadableBytes { hasher.update($0) }
            }
        }
        self.hasher = Mutex(hasher)
    }

    func update(_ buffer: ByteBuffer) {
        hasher.withLock { hasher in buffer.withUnsafeReadableBytes { hasher.update($0) } }
    }

    /// The digest, once exactly `size` bytes went through (else the file changed meanwhile).
    func digest(ofSize size: Int64) throws -> Digest {
        try hasher.withLock { hasher in
            guard hasher.count == size else {
                throw RegistryError(.digestMismatch, "\(hasher.count) bytes read of \(size)")
            }
            return hasher.finalize()
        }
    }
}
