import FileSystemIO
import Foundation
import ModelRegistryCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What identifies one version of a local file without reading it: where it is, which inode, and its size,
/// modification and change times in nanoseconds. Rewriting a file changes its mtime and ctime, and
/// replacing it changes its inode, so an unchanged identity means unchanged bytes.
public struct FileIdentity: Hashable, Codable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modified: Int64
    public var changed: Int64

    init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        changed = Int64(info.st_ctim.tv_sec) * 1_000_000_000 + Int64(info.st_ctim.tv_nsec)
    }
}

/// Digests of local files remembered across pushes, so a re-push of an unchanged model directory reads no
/// file at all. One JSON file, by default `$XDG_CACHE_HOME/modelreg/hashes.json` (else
/// `~/.cache/modelreg/hashes.json`); a missing or unreadable cache is simply empty.
public final class HashCache: Sendable {
    struct Entry: Codable {
        var identity: FileIdentity
        var digest: Digest
        /// Seconds since 1970 of the last push that used it; the least recently used go first when full.
        var used: Int64
    }

    static let capacity = 100_000

    public let url: URL
    private let entries: Mutex<[String: Entry]>
    private let changed = Mutex(false)

    public init(url: URL) {
        self.url = url
        entries = Mutex(Self.read(url))
    }

    /// The default location, or nil when there is no home directory to keep it in.
    public static func defaultURL(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") {
            return URL(fileURLWithPath: cache).appendingPathComponent("modelreg/hashes.json")
        }
        guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/modelreg/hashes.json")
    }

    private static func read(_ url: URL) -> [String: Entry] {
        guard let data = try? Data(contentsOf: url) else { return [:] }
        return (try? JSONDecoder().decode([String: Entry].self, from: data)) ?? [:]
    }

    func digest(of file: LocalFile) -> Digest? {
        entries.withLock { entries in
            guard let entry = entries[file.url.path], entry.identity == file.identity else { return nil }
            // Refreshed at most daily, so a push that finds everything cached usually writes nothing.
            if entry.used < Self.now - 86400 {
                entries[file.url.path]?.used = Self.now
                changed.withLock { $0 = true }
            }
            return entry.digest
        }
    }

    func record(_ digest: Digest, of file: LocalFile) {
        entries.withLock { $0[file.url.path] = Entry(identity: file.identity, digest: digest, used: Self.now) }
        changed.withLock { $0 = true }
    }

    /// Writes the cache back, merged with what other pushes wrote meanwhile, atomically (temp + rename).
    public func save() throws {
        guard changed.withLock({ $0 }) else { return }
        var merged = Self.read(url)
        entries.withLock { merged.merge($0) { $0.used >= $1.used ? $0 : $1 } }
        if merged.count > Self.capacity {
            let keep = merged.sorted { $0.value.used > $1.value.used }.prefix(Self.capacity)
            merged = Dictionary(uniqueKeysWithValues: Array(keep))
        }
        try Self.write(merged, to: url, naming: "the hash cache")
    }

    /// Writes `value` as JSON to `url` through a temporary file and a rename, so a reader (another push, or
    /// this one after a kill) finds the old file or the new one, never half of one.
    static func write(_ value: some Encodable, to url: URL, naming what: String) throws {
        let directory = url.deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let temporary = directory.appendingPathComponent(".\(url.lastPathComponent)-\(UUID().uuidString)")
            try JSONEncoder().encode(value).write(to: temporary)
            try POSIXFile.rename(temporary.path, to: url.path)
        } catch {
            throw RegistryError(
                .storageFailure, "cannot write \(what) \(url.path): \(error); pass --no-hash-cache to do without it")
        }
    }

    private static var now: Int64 { Int64(Date().timeIntervalSince1970) }
}
