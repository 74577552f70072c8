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

/// One backup: a consistent copy of the registry's metadata and every blob its manifests reference.
public struct Snapshot: Codable, Sendable, Equatable {
    /// `<UTC time>-<8 hex>`: sorts by time, unique.
    public var id: String
    public var time: String
    public var modelregVersion: String
    /// The data directory or server the snapshot was taken from.
    public var source: String
    /// The metadata, stored as a blob of the repository.
    public var metadata: SnapshotMetadata
    public var blobs: [BlobEntry]
    public var models: Int
    public var versions: Int
    public var variants: Int

    public var blobBytes: Int64 { blobs.reduce(0) { $0 + $1.size } }

    public var date: Date {
        (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(time)) ?? Date(timeIntervalSince1970: 0)
    }

    init(
        id: String, time: String, modelregVersion: String, source: String, metadata: SnapshotMetadata,
        blobs: [BlobEntry], models: Int, versions: Int, variants: Int
    ) {
        self.id = id
        self.time = time
        self.modelregVersion = modelregVersion
        self.source = source
        self.metadata = metadata
        self.blobs = blobs
        self.models = models
        self.versions = versions
        self.variants = variants
    }

    private enum CodingKeys: String, CodingKey {
        case id, time, modelregVersion, source, metadata, metadataFormat, database, schemaVersion, blobs, models,
            versions, variants
    }

    /// A snapshot file holds `metadata` and `metadataFormat`; one written before exports existed holds
    /// `database` and `schemaVersion` instead.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        time = try container.decode(String.self, forKey: .time)
        modelregVersion = try container.decode(String.self, forKey: .modelregVersion)
        source = try container.decode(String.self, forKey: .source)
        if let export = try container.decodeIfPresent(BlobEntry.self, forKey: .metadata) {
            metadata = .export(export, format: try container.decode(Int.self, forKey: .metadataFormat))
        } else {
            metadata = .sqliteDatabase(
                try container.decode(BlobEntry.self, forKey: .database),
                schemaVersion: try container.decode(Int.self, forKey: .schemaVersion))
        }
        blobs = try container.decode([BlobEntry].self, forKey: .blobs)
        models = try container.decode(Int.self, forKey: .models)
        versions = try container.decode(Int.self, forKey: .versions)
        variants = try container.decode(Int.self, forKey: .variants)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(time, forKey: .time)
        try container.encode(modelregVersion, forKey: .modelregVersion)
        try container.encode(source, forKey: .source)
        switch metadata {
        case .export(let blob, let format):
            try container.encode(blob, forKey: .metadata)
            try container.encode(format, forKey: .metadataFormat)
        case .sqliteDatabase(let blob, let schemaVersion):
            try container.encode(blob, forKey: .database)
            try container.encode(schemaVersion, forKey: .schemaVersion)
        }
        try container.encode(blobs, forKey: .blobs)
        try container.encode(models, forKey: .models)
        try container.encode(versions, forKey: .versions)
        try container.encode(variants, forKey: .variants)
    }
}

/// How a snapshot holds the registry's metadata.
public enum SnapshotMetadata: Sendable, Equatable {
    /// A `MetadataExport` of this format: what every backup since exports were introduced writes.
    case export(BlobEntry, format: Int)
    /// The SQLite database file at this schema version, as backups of modelreg before exports stored it.
    case sqliteDatabase(BlobEntry, schemaVersion: Int)

    public var blob: BlobEntry {
        switch self {
        case .export(let blob, _), .sqliteDatabase(let blob, _): blob
        }
    }
}

/// A backup repository: a directory that holds blobs by digest and one JSON file per snapshot.
///
///     <root>/modelreg-backup.json       marks the directory as a repository (format version)
///     <root>/blobs/sha256/ab/<hex>      blobs and metadata exports, each written once
///     <root>/snapshots/<id>.json        one per snapshot; written last, so a snapshot names only durable blobs
///     <root>/tmp/                       files being written; emptied by the next writer
///     <root>/lock                       flock: one writer (backup, prune) at a time, readers share
public struct BackupRepository: Sendable {
    /// 2: snapshots hold a metadata export instead of a SQLite database. A repository of format 1 is read as
    /// it is, and marked 2 by the first snapshot this binary writes into it, so an older modelreg, which could
    /// not read that snapshot, refuses the repository as a whole with a message to upgrade.
    public static let formatVersion = 2
    struct Marker: Codable { var format: Int }

    public let root: URL
    /// The format the repository is marked with.
    public let format: Int

    var marker: URL { root.appendingPathComponent("modelreg-backup.json") }
    var blobs: URL { root.appendingPathComponent("blobs/sha256", isDirectory: true) }
    var snapshots: URL { root.appendingPathComponent("snapshots", isDirectory: true) }
    var tmp: URL { root.appendingPathComponent("tmp", isDirectory: true) }
    var lockFile: URL { root.appendingPathComponent("lock") }

    func blob(_ digest: Digest) -> String {
        blobs.appendingPathComponent(String(digest.hex.prefix(2))).appendingPathComponent(digest.hex).path
    }

    func snapshotFile(_ id: String) -> String { snapshots.appendingPathComponent(id + ".json").path }

    func temporaryFile(_ purpose: String) -> String {
        tmp.appendingPathComponent("\(purpose)-\(UUID().uuidString.lowercased())").path
    }

    /// An existing repository.
    public init(opening path: String) throws(RegistryError) {
        let root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
        self.root = root
        let marker = root.appendingPathComponent("modelreg-backup.json")
        guard let data = FileManager.default.contents(atPath: marker.path) else {
            throw RegistryError(
                .notFound, "no backup repository at \(root.path): create one with `modelreg backup --to \(path)`")
        }
        guard let decoded = try? JSONDecoder().decode(Marker.self, from: data), decoded.format <= Self.formatVersion
        else {
            throw RegistryError(
                .storageFailure, "\(marker.path) is not a backup repository this modelreg can read: upgrade modelreg")
        }
        format = decoded.format
    }

    /// A repository, created when the directory is missing or empty.
    public static func openOrCreate(_ path: String) throws(RegistryError) -> BackupRepository {
        let root = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("modelreg-backup.json").path) {
            return try BackupRepository(opening: path)
        }
        guard try POSIXFile.entries(root.path).isEmpty else {
            throw RegistryError(
                .conflict, "\(root.path) is neither empty nor a backup repository: choose another --to directory")
        }
        try POSIXFile.createDirectory(root.path)
        for directory in ["blobs/sha256", "snapshots", "tmp"] {
            try POSIXFile.createDirectory(root.appendingPathComponent(directory).path)
        }
        try writeMarker(in: root)
        return try BackupRepository(opening: path)
    }

    private static func writeMarker(in root: URL) throws(RegistryError) {
        try FileTree.writeAtomically(
            try JSONEncoder().encodeBytes(Marker(format: formatVersion)),
            to: root.appendingPathComponent("modelreg-backup.json").path,
            temporary: root.appendingPathComponent("tmp/marker-\(UUID().uuidString.lowercased())").path)
    }

    /// Takes the repository's lock: exclusive for writers, shared for readers. A lock held by a process that
    /// died (even by kill -9) is released by the kernel, so it never blocks for ever.
    public func lock(exclusive: Bool) throws(RegistryError) -> FileLock {
        try FileLock(path: lockFile.path, exclusive: exclusive) { holder in
            RegistryError(
                .conflict,
                "the backup repository is in use by another modelreg process\(holder.isEmpty ? "" : " (\(holder))"): "
                    + "wait for it to finish; two backups or prunes never run at once on one repository"
            )
        }
    }

    /// Every snapshot, oldest first.
    public func allSnapshots() throws(RegistryError) -> [Snapshot] {
        var result: [Snapshot] = []
        for name in try POSIXFile.entries(snapshots.path) where name.hasSuffix(".json") {
            result.append(try readSnapshot(snapshots.appendingPathComponent(name).path))
        }
        return result.sorted { ($0.time, $0.id) < ($1.time, $1.id) }
    }

    /// The snapshot with this id (or unique id prefix), or the newest one.
    public func snapshot(_ id: String?) throws(RegistryError) -> Snapshot {
        let all = try allSnapshots()
        guard let id else {
            guard let newest = all.last else {
                throw RegistryError(.notFound, "the repository \(root.path) has no snapshot yet")
            }
            return newest
        }
        let matches = all.filter { $0.id.hasPrefix(id) }
        guard matches.count == 1 else {
            throw RegistryError(
                matches.isEmpty ? .notFound : .invalidRequest,
                matches.isEmpty
                    ? "snapshot '\(id)' not found: `modelreg backup ls` lists them"
                    : "snapshot prefix '\(id)' is ambiguous")
        }
        return matches[0]
    }

    func readSnapshot(_ path: String) throws(RegistryError) -> Snapshot {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RegistryError(.storageFailure, "cannot read snapshot file \(path)")
        }
        do {
            return try JSONDecoder().decode(Snapshot.self, from: data)
        } catch {
            throw RegistryError(.integrity, "snapshot file \(path) is damaged: \(error)")
        }
    }

    /// Whether the repository already holds this blob (whole: blobs are renamed into place only when complete).
    func has(_ entry: BlobEntry) throws(RegistryError) -> Bool {
        try POSIXFile.status(blob(entry.digest))?.size == entry.size
    }

    /// Only called while holding the exclusive lock.
    func writeSnapshot(_ snapshot: Snapshot) throws(RegistryError) {
        if format < Self.formatVersion { try Self.writeMarker(in: root) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try FileTree.writeAtomically(
            try encoder.encodeBytes(snapshot), to: snapshotFile(snapshot.id), temporary: temporaryFile("snapshot"))
    }

    /// Leftovers of an interrupted writer; only called while holding the exclusive lock.
    func clearTemporaryFiles() throws(RegistryError) {
        try POSIXFile.createDirectory(tmp.path)
        try FileTree.removeContents(of: tmp.path)
    }

    static func newSnapshotID(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let stamp = String(
            format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
        return stamp + "-" + String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(8))
    }
}

extension JSONEncoder {
    func encodeBytes(_ value: some Encodable) throws(RegistryError) -> [UInt8] {
        do {
            return Array(try encode(value))
        } catch {
            throw RegistryError(.internalError, "cannot encode \(type(of: value)): \(error)")
        }
    }
}
