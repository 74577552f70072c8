import AsyncHTTPClient
import CacheImage
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore

#if canImport(Glibc)
    import Glibc
#endif

/// Brings one cache image into a staging directory, resuming whatever an earlier run left there, then
/// moves it into place. Entries are finished in archive order and each is recorded in a journal once its
/// bytes are synced, so a killed run loses at most the file it was writing, and not even that: the
/// half-written file is continued from its last byte.
struct ImagePlacement: Sendable {
    let image: CacheImage
    let manifest: Digest
    let staging: URL
    let cache: URL?
    /// Counts the file bytes placed; its notes are the log.
    let progress: TransferProgress

    struct Counts {
        var downloaded: Int64 = 0
        /// Hard-linked from the node cache, or copied and checked when the cache is on another mount.
        var fromCache: Int64 = 0
        var resumed: Int64 = 0
    }

    /// The bytes after the last entry: the two zero blocks that end a tar archive.
    private var entriesEnd: Int64 { image.size - 1024 }

    func complete(using connection: RegistryConnection, name: ModelName) async throws -> Counts {
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        let journal = try FetchJournal(staging.appendingPathComponent(Fetcher.journalName).path)
        var done = try journal.entries().intersection(Set(try image.entries.filter { try present($0) }.map(\.path)))
        var counts = Counts()
        progress.restart()
        for entry in image.files where done.contains(entry.path) {
            counts.resumed += Self.size(entry)
            progress.skip(size: Self.size(entry))
        }
        for entry in image.files where !done.contains(entry.path) {
            if try take(fromCache: entry) {
                try journal.record(entry.path)
                done.insert(entry.path)
                counts.fromCache += Self.size(entry)
                progress.skip(size: Self.size(entry))
            } else if let resumed = try await continuePartial(entry, connection: connection, name: name) {
                try journal.record(entry.path)
                done.insert(entry.path)
                counts.resumed += resumed
                counts.downloaded += Self.size(entry) - resumed
            }
        }
        // What is left, as runs of consecutive entries: one ranged request each.
        var index = 0
        while index < image.entries.count {
            guard !done.contains(image.entries[index].path) else {
                index += 1
                continue
            }
            var end = index
            while end + 1 < image.entries.count, !done.contains(image.entries[end + 1].path) { end += 1 }
            let run = image.entries[index...end]
            counts.downloaded += try await download(run, connection: connection, name: name, journal: journal)
            index = end + 1
        }
        return counts
    }

    /// Shares new files with the node cache and makes the staged tree durable, ready to be moved in.
    func finish() throws {
        try? FileManager.default.removeItem(at: staging.appendingPathComponent(Fetcher.journalName))
        if cache != nil { for entry in image.files { shareWithCache(entry) } }
        for directory in Set(image.entries.map { parent(of: $0.path) }) {
            try POSIXFile.syncDirectory(directory.path)
        }
    }

    /// The staging directory that holds a manifest path. Split by "/" (manifest paths are relative and
    /// normalized): no Foundation path-string helpers on names from a manifest.
    private func parent(of path: String) -> URL {
        let directory = path.split(separator: "/").dropLast().joined(separator: "/")
        return directory.isEmpty ? staging : staging.appendingPathComponent(directory, isDirectory: true)
    }

    private static func size(_ entry: CacheImage.Entry) -> Int64 {
        if case .file(_, let size, _) = entry.kind { return size }
        return 0
    }

    /// A journaled entry still on disk as it was written.
    private func present(_ entry: CacheImage.Entry) throws -> Bool {
        var status = stat()
        guard lstat(staging.appendingPathComponent(entry.path).path, &status) == 0 else { return false }
        switch entry.kind {
        case .directory: return status.st_mode & S_IFMT == S_IFDIR
        case .symlink: return status.st_mode & S_IFMT == S_IFLNK
        case .file(_, let size, _): return status.st_mode & S_IFMT == S_IFREG && Int64(status.st_size) == size
        }
    }

    // MARK: Node cache

    private func cachePath(_ digest: Digest) -> String? {
        cache?.appendingPathComponent("sha256/\(digest.hex)").path
    }

    /// Brings a file of the node cache into staging; false when the cache lacks it or its copy is damaged.
    /// A hard link shares the bytes; where the cache is another mount (link(2) answers EXDEV, as between a
    /// hostPath and an emptyDir volume) the file is copied instead. Either way the bytes are hashed before
    /// the file counts as placed: another pod, a disk error or a person may have changed a cached file, and
    /// one that does not match is removed from the cache and downloaded.
    private func take(fromCache entry: CacheImage.Entry) throws -> Bool {
        guard case .file(let digest, let size, let executable) = entry.kind, let source = cachePath(digest),
            (try POSIXFile.regularFileSize(source)) == size
        else { return false }
        let target = staging.appendingPathComponent(entry.path)
        try FileManager.default.createDirectory(at: parent(of: entry.path), withIntermediateDirectories: true)
        try POSIXFile.remove(target.path)
        let actual: Digest
        if Glibc.link(source, target.path) == 0 {
            let file = try POSIXFile.openForReading(target.path)
            defer { try? file.close() }
            actual = try file.hashContents().hasher.finalize()
        } else {
            guard errno == EXDEV else {
                progress.note(
                    "cannot link \(source) into \(target.path) (\(String(cString: strerror(errno)))): downloading it instead"
                )
                return false
            }
            actual = try POSIXFile.copy(from: source, to: target.path, mode: executable ? 0o755 : 0o644).digest
        }
        guard actual == digest else {
            try POSIXFile.remove(target.path)
            try? POSIXFile.remove(source)
            progress.note(
                "the node cache's \(source) hashes to \(actual), not \(digest): removed it from the cache, downloading \(entry.path)"
            )
            return false
        }
        return true
    }

    /// Offers a fetched file to the node cache. Cached files are made read-only, since every pod that links
    /// one shares its bytes. Across mounts the file is copied in under a temporary name, so the cache never
    /// shows a partial file.
    private func shareWithCache(_ entry: CacheImage.Entry) {
        guard case .file(let digest, _, let executable) = entry.kind, let cache, let target = cachePath(digest) else {
            return
        }
        let source = staging.appendingPathComponent(entry.path).path
        let mode: mode_t = executable ? 0o555 : 0o444
        chmod(source, mode)
        try? FileManager.default.createDirectory(
            at: cache.appendingPathComponent("sha256"), withIntermediateDirectories: true)
        if Glibc.link(source, target) == 0 || errno == EEXIST { return }
        guard errno == EXDEV else {
            progress.note("cannot add \(entry.path) to the node cache \(target): \(String(cString: strerror(errno)))")
            return
        }
        let temporary = cache.appendingPathComponent("sha256/.\(digest.hex).\(UUID().uuidString)").path
        do {
            _ = try POSIXFile.copy(from: source, to: temporary, mode: mode)
            try POSIXFile.rename(temporary, to: target)
        } catch {
            try? POSIXFile.remove(temporary)
            progress.note("cannot copy \(entry.path) into the node cache \(target): \(error)")
        }
    }

    // MARK: Transfers

    /// Continues a file a killed run left half-written: hashes what is there and downloads only the rest.
    /// Returns the bytes kept, or nil when there is nothing to continue (or what is there is wrong).
    private func continuePartial(_ entry: CacheImage.Entry, connection: RegistryConnection, name: ModelName)
        async throws -> Int64?
    {
        guard case .file(let digest, let size, _) = entry.kind else { return nil }
        let path = staging.appendingPathComponent(entry.path).path
        guard let have = try POSIXFile.regularFileSize(path), have > 0, have < size else { return nil }
        let file = try POSIXFile.open(path, flags: O_RDWR | O_NOFOLLOW | O_CLOEXEC)
        defer { try? file.close() }
        let (hasher, _) = try file.hashContents()
        let position = DownloadPosition(hasher: hasher, offset: have)
        let asked = entry.dataOffset + have..<entry.dataOffset + size
        let request = rangeRequest(connection, name, asked)
        let token = progress.startFile(entry.path, size: size, at: have)
        let take: @Sendable (ByteBuffer) throws -> Void = { [progress] buffer in
            try buffer.withUnsafeReadableBytes { bytes in
                position.hasher.update(bytes)
                try file.write(bytes, at: position.offset)
            }
            position.offset += Int64(buffer.readableBytes)
            progress.advance(token, by: Int64(buffer.readableBytes))
        }
        // An answer that is not the rest of the file: the run download redoes it, checking its own answer.
        func redo() throws -> Int64? {
            try file.truncate(to: 0)
            progress.dropFile(token)
            return nil
        }
        if let (plain, answer) = try await connection.plainDownload(request) {
            guard (try? Self.checkRange(answer.status, answer.rangeStart, answer.length, asked: asked)) != nil else {
                return try redo()
            }
            try await plain.blocking {
                while let chunk = try plain.nextChunk() { try take(chunk) }
            }
        } else {
            let response = try await connection.download(request)
            guard (try? Self.checkRange(response, asked: asked)) != nil else { return try redo() }
            for try await buffer in response.body {
                guard position.offset + Int64(buffer.readableBytes) <= size else { break }
                try take(buffer)
            }
        }
        // Cut short by the deadline: what was written is still good for the next run.
        try Task.checkCancellation()
        // Kept bytes that do not add up (a crash before they reached the disk): the run download redoes the file.
        guard position.offset == size, position.hasher.finalize() == digest else { return try redo() }
        try file.sync()
        progress.finishFile(
            token, message: "resumed \(entry.path) after \(ByteCount.format(have)) (\(ByteCount.format(size)))")
        return have
    }

    /// Streams one run of entries into the extractor and returns the file bytes it wrote.
    private func download(
        _ run: ArraySlice<CacheImage.Entry>, connection: RegistryConnection, name: ModelName, journal: FetchJournal
    ) async throws -> Int64 {
        let end = run.endIndex < image.entries.count ? image.entries[run.endIndex].offset : entriesEnd
        let start = run.first!.offset
        let request = rangeRequest(connection, name, start..<end)
        let entries = Array(run)
        if let (plain, answer) = try await connection.plainDownload(request) {
            try Self.checkRange(answer.status, answer.rangeStart, answer.length, asked: start..<end)
            // The extractor reads the socket itself: no thread between them.
            try await plain.blocking { [self] in
                var ended = false
                try extract(entries, journal: journal) {
                    if let chunk = try plain.nextChunk() { return chunk }
                    defer { ended = true }
                    return ended ? nil : TarArchive.end
                }
            }
            return entries.reduce(0) { $0 + Self.size($1) }
        }
        let response = try await connection.download(request)
        try Self.checkRange(response, asked: start..<end)
        let channel = ByteChannel<ByteBuffer>()
        let extraction = Task.detached { [self] in
            try await runOnThread {
                // However the extraction ends, the download side must stop waiting for room in the channel.
                defer { channel.close() }
                try extract(entries, journal: journal) { try channel.receive() }
            }
        }
        do {
            for try await buffer in response.body { try await channel.send(buffer) }
            // A body that ended because the deadline cancelled it is not a short archive.
            try Task.checkCancellation()
            try await channel.send(TarArchive.end)
            channel.finish()
        } catch is ByteChannelReaderGone {
            // The extractor stopped early; its own error says why.
        } catch {
            channel.finish(throwing: ClientError.network("the image download broke off: \(error)"))
        }
        try await extraction.value
        return entries.reduce(0) { $0 + Self.size($1) }
    }

    /// Extracts a run of entries from the archive `read` gives, journaling each one placed.
    private func extract(
        _ entries: [CacheImage.Entry], journal: FetchJournal, _ read: @escaping () throws -> (any ArchiveBytes)?
    ) throws {
        // The file being written and its progress token: the extractor writes one file at a time.
        var current: (path: String, token: Int)?
        func token(_ entry: CacheImage.Entry) -> Int {
            if let current, current.path == entry.path { return current.token }
            let token = progress.startFile(entry.path, size: Self.size(entry))
            current = (entry.path, token)
            return token
        }
        try CacheImageExtractor(
            directory: staging, expecting: entries,
            onData: { entry, count in progress.advance(token(entry), by: Int64(count)) }
        ) { entry in
            try? journal.record(entry.path)
            guard case .file(_, let size, _) = entry.kind else { return }
            progress.finishFile(token(entry), message: "fetched \(entry.path) (\(ByteCount.format(size)))")
            current = nil
        }.extract(read)
    }

    private func rangeRequest(_ connection: RegistryConnection, _ name: ModelName, _ range: Range<Int64>)
        -> HTTPClientRequest
    {
        var request = connection.request(.GET, "/v1/models/\(name)/images/\(manifest)/\(image.layout)")
        request.headers.add(name: "Range", value: "bytes=\(range.lowerBound)-\(range.upperBound - 1)")
        return request
    }

    private static func checkRange(_ response: HTTPClientResponse, asked: Range<Int64>) throws {
        try checkRange(
            Int(response.status.code), ContentRange.start(of: response.headers.first(name: "Content-Range")),
            response.headers.first(name: "Content-Length").flatMap { Int64($0) }, asked: asked)
    }

    /// An answer to a `Range` of the image must hold exactly the bytes asked for. A length of nil (a chunked
    /// body) is left to what reads it: the extractor expects the run's entries and nothing else, a continued
    /// file its size and digest.
    private static func checkRange(_ status: Int, _ rangeStart: Int64?, _ length: Int64?, asked: Range<Int64>) throws {
        guard status == 206 else {
            throw RegistryError(.integrity, "the registry answered a ranged image request with HTTP \(status), not 206")
        }
        let count = asked.upperBound - asked.lowerBound
        guard rangeStart == asked.lowerBound, length ?? count == count else {
            throw RegistryError(
                .integrity,
                "the registry answered a request for the image's bytes \(asked.lowerBound)-\(asked.upperBound - 1) with \(length.map { "\($0) bytes" } ?? "a body of unknown length") starting at \(rangeStart.map(String.init) ?? "an unnamed place")"
            )
        }
    }
}

/// The entries a staging directory already holds, one path a line, appended as each is synced.
final class FetchJournal: @unchecked Sendable {
    private let file: POSIXFile
    private let lock = NSLock()

    init(_ path: String) throws {
        file = try POSIXFile.open(path, flags: O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, mode: 0o644)
    }

    func entries() throws -> Set<String> {
        var buffer = try file.readBuffer(at: 0, length: Int(try file.size()))
        let text = buffer.readString(length: buffer.readableBytes) ?? ""
        return Set(text.split(separator: "\n").map(String.init))
    }

    func record(_ path: String) throws {
        lock.lock()
        defer { lock.unlock() }
        try Array((path + "\n").utf8).withUnsafeBytes { try file.write($0, at: try file.size()) }
    }

    deinit { try? file.close() }
}

enum TarArchive {
    /// Two zero blocks: a ranged run of entries becomes a whole archive for the extractor.
    static let end = ByteBuffer(repeating: 0, count: 1024)
}
