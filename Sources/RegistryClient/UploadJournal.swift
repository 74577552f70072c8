import Foundation
import ModelRegistryCore
import Synchronization

/// The uploads a push started for files whose digest it had not finished computing (those are hashed as they
/// are sent), by local file, so a push killed halfway continues them from the bytes the server kept. One JSON
/// file beside the hash cache (`uploads.json`), written when an upload starts and when it ends; a missing or
/// unreadable journal is simply empty. Upload ids are random: one another server (or a proxy's other name for
/// the same one) does not know is answered 404, and the push starts a new upload.
public final class UploadJournal: Sendable {
    struct Entry: Codable {
        var identity: FileIdentity
        var upload: String
    }

    public let url: URL
    private let lock = Mutex(())

    public init(url: URL) { self.url = url }

    /// The journal beside a hash cache.
    public convenience init(besides cache: HashCache) {
        self.init(url: cache.url.deletingLastPathComponent().appendingPathComponent("uploads.json"))
    }

    /// The upload started for this version of the file, if one was.
    func upload(of file: LocalFile) -> String? {
        lock.withLock { _ in
            guard let entry = read()[file.url.path], entry.identity == file.identity else {
                return nil
            }
            return entry.upload
        }
    }

    func record(_ upload: String, of file: LocalFile) throws {
        try update { $0[file.url.path] = Entry(identity: file.identity, upload: upload) }
    }

    func remove(_ file: LocalFile) throws {
        try update { $0.removeValue(forKey: file.url.path) }
    }

    /// Read, change and write back atomically (temp + rename); another push's entries written meanwhile stay.
    private func update(_ change: (inout [String: Entry]) -> Void) throws {
        try lock.withLock { _ in
            var entries = read()
            change(&entries)
            try HashCache.write(entries, to: url, naming: "the upload journal")
        }
    }

    private func read() -> [String: Entry] {
        guard let data = try? Data(contentsOf: url) else { return [:] }
        return (try? JSONDecoder().decode([String: Entry].self, from: data)) ?? [:]
    }
}
