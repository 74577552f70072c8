import CArchive
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore

/// Reads a cache image (or its tail from some entry on) with libarchive and writes it under a directory,
/// accepting only the entries the image is expected to hold: the same paths, kinds, link targets and sizes,
/// each at most once, every file hashing to its digest while it is written. Anything else (an absolute path,
/// `..`, a hardlink, a device, a link elsewhere, an extra or altered file) stops the extraction with an
/// integrity error; the caller discards the directory.
public final class CacheImageExtractor {
    private let root: String
    private var expected: [String: CacheImage.Entry]
    private let onData: (CacheImage.Entry, Int) -> Void
    private let onEntry: (CacheImage.Entry) -> Void

    /// `entries` are the ones the stream holds, in order; `onData` is called with the bytes of each block
    /// written into a file, `onEntry` as each entry is complete on disk.
    public init(
        directory: URL, expecting entries: some Sequence<CacheImage.Entry>,
        onData: @escaping (CacheImage.Entry, Int) -> Void = { _, _ in },
        onEntry: @escaping (CacheImage.Entry) -> Void = { _ in }
    ) {
        root = directory.path
        expected = Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        self.onData = onData
        self.onEntry = onEntry
    }

    /// Extracts until the archive's end. `read` blocks for the next chunk and returns nil at the end; an
    /// error it throws (a dropped connection) is rethrown as is.
    public func extract(_ read: @escaping () throws -> (any ArchiveBytes)?) throws {
        try readTarArchive(read, failure: Self.archiveError) { archive, entry in try extractEntry(archive, entry) }
        if let missing = expected.keys.sorted().first {
            throw RegistryError(.integrity, "the image ended without '\(missing)' (\(expected.count) entries missing)")
        }
    }

    private func extractEntry(_ archive: OpaquePointer, _ entry: OpaquePointer) throws {
        guard let raw = archive_entry_pathname_utf8(entry) ?? archive_entry_pathname(entry) else {
            throw refused("an entry without a path")
        }
        var path = String(cString: raw)
        while path.hasSuffix("/") { path.removeLast() }
        let shown = String(path.prefix(300))
        guard !path.hasPrefix("/") else { throw refused("'\(shown)', an absolute path") }
        // Bytes, not Characters, as in ManifestPath: "../\u{301}x" is one Character component, yet '..' to the file system.
        let components = path.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        guard !components.contains(where: { $0.isEmpty || $0.elementsEqual([0x2e]) || $0.elementsEqual([0x2e, 0x2e]) })
        else {
            throw refused("'\(shown)', a path with '..', '.' or an empty part")
        }
        guard archive_entry_hardlink(entry) == nil else { throw refused("'\(shown)', a hardlink") }
        guard let wanted = expected.removeValue(forKey: path) else {
            throw refused("'\(shown)', which is not part of the variant (or appears twice)")
        }
        // Strings compare by canonical equivalence; the file system by bytes: an NFD spelling of an NFC name
        // would be found above, then written under a name nobody asked for.
        guard wanted.path.utf8.elementsEqual(path.utf8) else {
            throw refused(
                "'\(shown)', spelled (in Unicode normalization) differently from the variant's '\(wanted.path)'")
        }
        let type = archive_entry_filetype(entry) & S_IFMT
        let target = root + "/" + path
        // Its directory must be there already, and be a directory, not a link to one: an image lists a
        // directory before what it holds.
        if let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) {
            let parent = String(path[..<slash])
            var status = stat()
            guard lstat(root + "/" + parent, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                throw refused("'\(shown)' before its directory '\(parent.prefix(300))'")
            }
        }
        switch wanted.kind {
        case .directory:
            guard type == S_IFDIR else {
                throw refused("'\(shown)' as something other than the directory it should be")
            }
            if mkdir(target, 0o755) != 0 {
                var status = stat()
                guard errno == EEXIST, lstat(target, &status) == 0, status.st_mode & S_IFMT == S_IFDIR else {
                    throw RegistryError(
                        .storageFailure, "cannot create directory \(target): \(String(cString: strerror(errno)))")
                }
            }
        case .symlink(let link):
            guard type == S_IFLNK, let raw = archive_entry_symlink_utf8(entry) ?? archive_entry_symlink(entry),
                String(cString: raw) == link
            else {
                throw refused("'\(shown)' as something other than a link to \(link)")
            }
            unlink(target)
            guard symlink(link, target) == 0 else {
                throw RegistryError(
                    .storageFailure, "cannot create link \(target): \(String(cString: strerror(errno)))")
            }
        case .file(let digest, let size, let executable):
            guard type == S_IFREG else { throw refused("'\(shown)' as a device, link or other non-file") }
            guard archive_entry_size_is_set(entry) != 0, archive_entry_size(entry) == size else {
                throw refused("'\(shown)' with \(archive_entry_size(entry)) bytes, not \(size)")
            }
            try writeFile(
                archive, wanted, to: target, shown: shown, digest: digest, size: size, mode: executable ? 0o755 : 0o644)
        }
        onEntry(wanted)
    }

    private func writeFile(
        _ archive: OpaquePointer, _ wanted: CacheImage.Entry, to target: String, shown: String, digest: Digest,
        size: Int64, mode: mode_t
    ) throws {
        let file = try POSIXFile.open(target, flags: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode: mode)
        defer { try? file.close() }
        var hasher = ContentHasher()
        var written: Int64 = 0
        var pacer = WritebackPacer(from: 0)
        try readEntryData(
            archive, failure: Self.archiveError(archive, "reading '\(shown)'"),
            sparse: refused("'\(shown)', a sparse file")
        ) { bytes in
            hasher.update(bytes)
            try file.write(bytes, at: written)
            written += Int64(bytes.count)
            pacer.wrote(upTo: written, in: file)
            onData(wanted, bytes.count)
        }
        guard written == size else { throw refused("'\(shown)' with \(written) bytes, not \(size)") }
        let actual = hasher.finalize()
        guard actual == digest else {
            throw RegistryError(
                .integrity,
                "'\(shown)' hashes to \(actual), not \(digest) as the manifest says: the registry's copy is damaged")
        }
        try file.sync()
    }

    private func refused(_ what: String) -> RegistryError {
        RegistryError(.integrity, "refused to extract the image: it holds \(what)")
    }

    private static func archiveError(_ archive: OpaquePointer, _ what: String) -> RegistryError {
        let message = archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
        return RegistryError(.integrity, "the image is not a valid archive (\(what)): \(message)")
    }
}

/// Reads the tar archive `read` streams (plain, or gzip or zstd with `decompressing`) in a UTF-8 locale, calling
/// `entry` with each entry's header in order. `failure` words libarchive's own errors, given what failed; an error
/// `read` threw (a dropped connection) is rethrown as is, whatever it caused. With `acceptingWarnings`, an entry
/// libarchive read with a warning (an unknown pax keyword) is taken.
func readTarArchive(
    _ read: @escaping () throws -> (any ArchiveBytes)?, decompressing: Bool = false, acceptingWarnings: Bool = false,
    failure: (OpaquePointer, String) -> RegistryError, _ entry: (OpaquePointer, OpaquePointer) throws -> Void
) throws {
    try withUTF8Locale {
        let source = ArchiveSource(read)
        guard let archive = archive_read_new() else {
            throw RegistryError(.internalError, "libarchive could not start a reader")
        }
        defer { archive_read_free(archive) }
        archive_read_support_format_tar(archive)
        if decompressing {
            archive_read_support_filter_gzip(archive)
            archive_read_support_filter_zstd(archive)
        }
        let context = Unmanaged.passRetained(source)
        defer { context.release() }
        guard archive_read_open(archive, context.toOpaque(), nil, archiveRead, nil) == ARCHIVE_OK else {
            throw source.failure ?? failure(archive, "cannot open it")
        }
        do {
            var header: OpaquePointer?
            while true {
                let status = archive_read_next_header(archive, &header)
                if status == ARCHIVE_EOF { break }
                guard status == ARCHIVE_OK || (acceptingWarnings && status == ARCHIVE_WARN), let header else {
                    throw failure(archive, "an unreadable entry header")
                }
                try entry(archive, header)
            }
        } catch {
            throw source.failure ?? error
        }
    }
}

/// Hands the current entry's bytes to `body` block by block, in order: `failure` when libarchive cannot read
/// them, `sparse` for a file with holes (a block that skips ahead).
func readEntryData(
    _ archive: OpaquePointer, failure: @autoclosure () -> RegistryError, sparse: @autoclosure () -> RegistryError,
    _ body: (UnsafeRawBufferPointer) throws -> Void
) throws {
    var read: Int64 = 0
    while true {
        var buffer: UnsafeRawPointer?
        var length = 0
        var offset: la_int64_t = 0
        let status = archive_read_data_block(archive, &buffer, &length, &offset)
        if status == ARCHIVE_EOF { return }
        guard status == ARCHIVE_OK else { throw failure() }
        guard offset == read else { throw sparse() }
        try body(UnsafeRawBufferPointer(start: buffer, count: length))
        read += Int64(length)
    }
}

/// libarchive turns a pax path (UTF-8, by the standard) into the thread's locale, and a Swift process stays in
/// the "C" locale, where that fails for any non-ASCII name: `body` reads in a UTF-8 locale, on this thread only.
func withUTF8Locale<T>(_ body: () throws -> T) rethrows -> T {
    let utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nil)
    let previous = utf8.map { uselocale($0) }
    defer {
        if let previous { uselocale(previous) }
        if let utf8 { freelocale(utf8) }
    }
    return try body()
}

/// A chunk of an archive as its reader is handed it: a network buffer, or bytes a test or fuzzer cut.
public protocol ArchiveBytes {
    func withUnsafeReadableBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T
}

extension ByteBuffer: ArchiveBytes {}

extension Array: ArchiveBytes where Element == UInt8 {
    public func withUnsafeReadableBytes<T>(_ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeBytes(body)
    }
}

/// libarchive's read callback state: the chunk handed out last stays alive until the next call, and libarchive
/// reads it where it is (a copy of every chunk cost as much CPU as writing it to the file).
final class ArchiveSource {
    let read: () throws -> (any ArchiveBytes)?
    var current: (any ArchiveBytes)?
    var failure: (any Error)?

    init(_ read: @escaping () throws -> (any ArchiveBytes)?) {
        self.read = read
    }

    func next() -> UnsafeRawBufferPointer? {
        current = nil
        do {
            while let chunk = try read() {
                // `current` keeps the chunk's storage alive and unchanged while libarchive reads it.
                let bytes = chunk.withUnsafeReadableBytes { $0 }
                guard !bytes.isEmpty else { continue }
                current = chunk
                return bytes
            }
            return UnsafeRawBufferPointer(start: nil, count: 0)
        } catch {
            failure = error
            return nil
        }
    }
}

func archiveRead(
    _ archive: OpaquePointer?, _ clientData: UnsafeMutableRawPointer?,
    _ buffer: UnsafeMutablePointer<UnsafeRawPointer?>?
) -> la_ssize_t {
    let source = Unmanaged<ArchiveSource>.fromOpaque(clientData!).takeUnretainedValue()
    guard let chunk = source.next() else { return -1 }
    buffer?.pointee = chunk.baseAddress
    return chunk.count
}
