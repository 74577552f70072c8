import CWriteback
import Foundation
import ModelRegistryCore
import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A thin owner of a file descriptor. Used where the registry needs exact control over writes, fsync and
/// rename ordering; errors carry the path and the system's reason, and ENOSPC becomes 507.
public final class POSIXFile: @unchecked Sendable {
    public let path: String
    public let descriptor: Int32
    private var closed = false

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    deinit {
        if !closed { _ = systemClose(descriptor) }
    }

    public static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(RegistryError) -> POSIXFile {
        let fd = systemOpen(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw error("open", path) }
        return POSIXFile(path: path, descriptor: fd)
    }

    public static func openForReading(_ path: String) throws(RegistryError) -> POSIXFile {
        try open(path, flags: O_RDONLY)
    }

    public func size() throws(RegistryError) -> Int64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw Self.error("stat", path) }
        return Int64(info.st_size)
    }

    /// Writes every byte at `offset`, retrying short writes.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int64) throws(RegistryError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.error("write", path)
            }
            done += n
        }
    }

    /// Linux's `IOV_MAX` (which Glibc's module does not bring in): the most buffers one `pwritev` takes.
    static let mostVectors = 1024

    /// Writes the buffers' readable bytes one after another at `offset`, as many buffers a system call as the
    /// kernel takes, retrying short writes.
    public func write(_ buffers: [ByteBuffer], at offset: Int64) throws(RegistryError) {
        try withExtendedLifetime(buffers) { () throws(RegistryError) in
            // The array keeps every buffer's storage alive and unchanged while the vectors point into it.
            var vectors = buffers.map { buffer in
                buffer.withUnsafeReadableBytes { bytes in
                    iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
                }
            }[...]
            var position = offset
            while let first = vectors.first {
                guard first.iov_len > 0 else {
                    vectors = vectors.dropFirst()
                    continue
                }
                let count = Int32(min(vectors.count, Self.mostVectors))
                let written = vectors.withUnsafeBufferPointer {
                    pwritev(descriptor, $0.baseAddress, count, off_t(position))
                }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw Self.error("write", path)
                }
                position += Int64(written)
                var left = written
                while left > 0, let head = vectors.first {
                    if head.iov_len <= left {
                        left -= head.iov_len
                        vectors = vectors.dropFirst()
                    } else {
                        vectors[vectors.startIndex].iov_base = head.iov_base.map { $0 + left }
                        vectors[vectors.startIndex].iov_len -= left
                        left = 0
                    }
                }
            }
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at end of file.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws(RegistryError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw Self.error("read", path)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Exactly `length` bytes at `offset` as a buffer; fewer only at end of file.
    public func readBuffer(at offset: Int64, length: Int) throws(RegistryError) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: length)
        try read(into: &buffer, at: offset, length: length)
        return buffer
    }

    /// Appends exactly `length` bytes at `offset` to `buffer`; fewer only at end of file.
    public func read(into buffer: inout ByteBuffer, at offset: Int64, length: Int) throws(RegistryError) {
        var failure: RegistryError?
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: length) { raw in
            do {
                return try read(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<length]), at: offset)
            } catch {
                failure = error as? RegistryError ?? RegistryError(.storageFailure, "\(error)")
                return 0
            }
        }
        if let failure { throw failure }
    }

    /// The hash and size of the whole file, read in large chunks; `onChunk` hears how many bytes each added.
    /// With `hasher`, a hash of the file's first `hasher.count` bytes, only the bytes after those are read.
    public func hashContents(
        continuing hasher: ContentHasher = ContentHasher(), chunkSize: Int = 1 << 20, onChunk: (Int) -> Void = { _ in }
    ) throws(RegistryError) -> (hasher: ContentHasher, size: Int64) {
        var hasher = hasher
        var offset = hasher.count
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try read(into: buffer, at: offset)
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            offset += Int64(n)
            onChunk(n)
        }
        return (hasher, offset)
    }

    /// Takes an exclusive flock without waiting; false when another open file description holds one (another
    /// process, or another open of the same file in this one). Closing the file releases it.
    public func tryLock() throws(RegistryError) -> Bool {
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { return false }
            throw Self.error("lock", path)
        }
        return true
    }

    public func truncate(to length: Int64) throws(RegistryError) {
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw Self.error("truncate", path) }
    }

    /// Starts writing `range` to the disk without waiting for it, so that a later `sync` finds little left to
    /// wait for. Only a hint: a failure to write shows at `sync`.
    public func startWriteback(_ range: Range<Int64>) {
        _ = modelreg_start_writeback(descriptor, range.lowerBound, Int64(range.count))
    }

    public func sync() throws(RegistryError) {
        guard fsync(descriptor) == 0 else { throw Self.error("fsync", path) }
    }

    public func close() throws(RegistryError) {
        guard !closed else { return }
        closed = true
        guard systemClose(descriptor) == 0 else { throw Self.error("close", path) }
    }

    /// Hands the descriptor to a new owner, which closes it; this file no longer does.
    public func releaseDescriptor() -> Int32 {
        closed = true
        return descriptor
    }

    /// Makes a completed rename or unlink inside `directory` durable.
    public static func syncDirectory(_ directory: String) throws(RegistryError) {
        let file = try open(directory, flags: O_RDONLY | O_DIRECTORY)
        try file.sync()
        try file.close()
    }

    public static func rename(_ from: String, to: String) throws(RegistryError) {
        guard systemRename(from, to) == 0 else { throw error("rename", from) }
    }

    /// Removes a file; a file that is already gone is not an error.
    public static func remove(_ path: String) throws(RegistryError) {
        guard unlink(path) == 0 || errno == ENOENT else { throw error("remove", path) }
    }

    /// Sets a file's access and modification times to now.
    public static func touch(_ path: String) throws(RegistryError) {
        guard utimensat(AT_FDCWD, path, nil, 0) == 0 else { throw error("update the time of", path) }
    }

    /// Creates `path` (which must not exist), lets `body` fill it, syncs and closes it; removes it on failure.
    public static func create<T>(
        _ path: String, mode: mode_t = 0o644, _ body: (POSIXFile) throws(RegistryError) -> T
    ) throws(RegistryError) -> T {
        let file = try open(path, flags: O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode: mode)
        do {
            let result = try body(file)
            try file.sync()
            try file.close()
            return result
        } catch {
            try? file.close()
            try? remove(path)
            throw error
        }
    }

    /// Copies a file into a new one (which must not exist) while hashing it, and syncs the copy: a copy
    /// that is checked costs no second read.
    public static func copy(
        from source: String, to destination: String, mode: mode_t = 0o644, chunkSize: Int = 4 << 20
    ) throws(RegistryError) -> (digest: Digest, size: Int64) {
        let input = try openForReading(source)
        defer { try? input.close() }
        return try create(destination, mode: mode) { output throws(RegistryError) in
            var hasher = ContentHasher()
            var offset: Int64 = 0
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let count = try input.read(into: buffer, at: offset)
                if count == 0 { break }
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                hasher.update(chunk)
                try output.write(chunk, at: offset)
                offset += Int64(count)
            }
            return (hasher.finalize(), offset)
        }
    }

    /// The size of a regular file, or nil when there is none.
    public static func regularFileSize(_ path: String) throws(RegistryError) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw error("stat", path)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(info.st_size)
    }

    /// A failed system call on `path` as one line naming the cause; a full disk is its own code.
    public static func error(_ operation: String, _ path: String, errno code: Int32 = errno) -> RegistryError {
        let reason = String(cString: strerror(code))
        if code == ENOSPC || code == EDQUOT {
            return RegistryError(
                .insufficientStorage, "no space left to \(operation) \(path): free disk space and retry")
        }
        return RegistryError(.storageFailure, "cannot \(operation) \(path): \(reason)")
    }
}

private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }

/// The size and modification time of a regular file.
public struct FileStatus: Sendable, Hashable {
    public var size: Int64
    public var modified: Date
}

extension POSIXFile {
    /// Creates a directory and any missing parents, syncing the parent of each one created.
    public static func createDirectory(_ path: String) throws(RegistryError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return }
        let parent = (path as NSString).deletingLastPathComponent
        if parent != path, !parent.isEmpty { try createDirectory(parent) }
        guard mkdir(path, 0o755) == 0 || errno == EEXIST else { throw error("create directory", path) }
        try syncDirectory(parent.isEmpty ? "." : parent)
    }

    /// The names in a directory; none when it does not exist.
    public static func entries(_ path: String) throws(RegistryError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch let error as CocoaError where error.code == .fileReadNoSuchFile {
            return []
        } catch {
            throw RegistryError(.storageFailure, "cannot list \(path): \(error.localizedDescription)")
        }
    }

    /// Size and modification time of a regular file, or nil when there is none.
    public static func status(_ path: String) throws(RegistryError) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw RegistryError(.storageFailure, "cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
        return FileStatus(size: Int64(info.st_size), modified: modified)
    }
}

/// Starts the disk writing a file's bytes while more are still being written, a step at a time: the `fsync`
/// that makes the file durable at the end then waits for the last step, not for the whole file.
public struct WritebackPacer {
    public static let step: Int64 = 32 << 20
    private var started: Int64

    /// For a file written in order from `offset` on.
    public init(from offset: Int64) { started = offset }

    /// The file now holds every byte before `end`.
    public mutating func wrote(upTo end: Int64, in file: POSIXFile) {
        guard end - started >= Self.step else { return }
        file.startWriteback(started..<end)
        started = end
    }
}
