import Foundation
import ModelRegistryCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `modelreg pull`: resolves a reference and downloads every file into a work directory beside the
/// destination, verifying each against its digest; only when all verified is the tree renamed into place.
///
/// The work directory is named after the destination and the variant's digest
/// (`.<dest>.modelreg-<12 hex>/`: `tree/` becomes the destination, `parts/<n>` are partial files), so a
/// pull that was killed or lost its network finds it again and downloads only the missing bytes. A lock
/// file in it keeps two pulls from writing the same tree at once.
public struct Puller: Sendable {
    public let connection: RegistryConnection
    public var jobs: Int
    public var progress: TransferProgress

    public init(connection: RegistryConnection, jobs: Int = Puller.defaultJobs, progress: TransferProgress? = nil) {
        self.connection = connection
        self.jobs = max(1, jobs)
        self.progress = progress ?? TransferProgress(style: .none, verb: "pulling") { _ in }
    }

    /// Files downloaded at once unless `--jobs` says otherwise.
    public static let defaultJobs = 4

    public func pull(
        _ reference: ModelReference, variant: VariantName?, destination: URL, replace: Bool,
        warn: @Sendable (String) -> Void = { _ in }
    ) async throws -> PullReport {
        let start = ContinuousClock.now
        let destination = destination.standardizedFileURL
        let fileManager = FileManager.default
        let replacing = try Self.checkDestination(destination, replace: replace)
        let resolved = try await connection.resolve(reference, variant: variant)
        let files = resolved.manifest.files
        if let reason = resolved.deprecation { warn(Presentation.deprecationWarning(resolved, reason: reason)) }
        let parent = destination.deletingLastPathComponent()
        try fileManager.createDirectory(at: parent, withIntermediateDirectories: true)
        let work = parent.appendingPathComponent(".\(destination.lastPathComponent).modelreg-\(resolved.digest.hex.prefix(12))")
        let tree = work.appendingPathComponent("tree"), parts = work.appendingPathComponent("parts")
        try fileManager.createDirectory(at: parts, withIntermediateDirectories: true)
        let lock = try Self.lock(work.appendingPathComponent("lock"), destination: destination)
        defer { try? lock.close() }
        do {
            try fileManager.createDirectory(at: tree, withIntermediateDirectories: true)
            for directory in Set(files.map { $0.path.components.dropLast().joined(separator: "/") }) where !directory.isEmpty {
                try fileManager.createDirectory(at: tree.appendingPathComponent(directory), withIntermediateDirectories: true)
            }
            progress.begin(total: resolved.manifest.totalSize, files: files.count)
            let outcomes = try await progress.reporting {
                try await forEach(Array(files.enumerated()), jobs: jobs) { index, file in
                    let target = tree.appendingPathComponent(file.path.value)
                    // Renamed into the tree only after it verified: a file there of the right size is done.
                    if try POSIXFile.regularFileSize(target.path) == file.size {
                        progress.skip(size: file.size)
                        return DownloadedBytes(received: 0, resumed: file.size)
                    }
                    return try await connection.downloadBlob(
                        file.digest, size: file.size, partial: parts.appendingPathComponent(String(index)), to: target,
                        executable: file.executable, label: file.path.value, progress: progress
                    )
                }
            }
            try POSIXFile.syncDirectory(tree.path)
            if replacing {
                let old = parent.appendingPathComponent(".\(destination.lastPathComponent).modelreg-old-\(UUID().uuidString.prefix(8))")
                try POSIXFile.rename(destination.path, to: old.path)
                try POSIXFile.rename(tree.path, to: destination.path)
                try? fileManager.removeItem(at: old)
            } else {
                try POSIXFile.rename(tree.path, to: destination.path)
            }
            try POSIXFile.syncDirectory(parent.path)
            try? fileManager.removeItem(at: work)
            return PullReport(
                model: resolved.model, version: resolved.version, variant: resolved.variant, digest: resolved.digest,
                destination: destination.path, files: files.count, bytes: resolved.manifest.totalSize,
                bytesReceived: outcomes.reduce(0) { $0 + $1.received }, bytesResumed: outcomes.reduce(0) { $0 + $1.resumed },
                seconds: (ContinuousClock.now - start).seconds, deprecation: resolved.deprecation
            )
        } catch ClientError.network(let message) {
            // Kept for the next run, which continues where this one stopped.
            throw ClientError.network("\(message); the \(ByteCount.format(Self.bytes(under: work))) received are kept in \(work.path): pull again to resume")
        } catch {
            try? fileManager.removeItem(at: work)
            throw error
        }
    }

    /// Takes the work directory's lock, held until the returned file is closed (or the process dies).
    private static func lock(_ url: URL, destination: URL) throws -> POSIXFile {
        let file = try POSIXFile.open(url.path, flags: O_RDWR | O_CREAT, mode: 0o600)
        guard flock(file.descriptor, LOCK_EX | LOCK_NB) == 0 else {
            throw RegistryError(.conflict, "another pull into \(destination.path) is running: wait for it to finish")
        }
        return file
    }

    private static func bytes(under directory: URL) -> Int64 {
        let enumerator = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.fileSizeKey])
        var total: Int64 = 0
        while let url = enumerator?.nextObject() as? URL {
            total += Int64((try? url.resourceValues(forKeys: [.fileSizeKey]).fileSize) ?? 0)
        }
        return total
    }

    /// True when an existing destination is to be replaced. An empty directory is simply taken over.
    private static func checkDestination(_ destination: URL, replace: Bool) throws -> Bool {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: destination.path, isDirectory: &isDirectory) else { return false }
        guard isDirectory.boolValue else {
            throw RegistryError(.conflict, "\(destination.path) exists and is not a directory")
        }
        if try fileManager.contentsOfDirectory(atPath: destination.path).isEmpty {
            try fileManager.removeItem(at: destination)
            return false
        }
        guard replace else {
            throw RegistryError(.conflict, "\(destination.path) is not empty: choose another --dest or pass --force to replace it")
        }
        return true
    }
}

public struct PullReport: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var digest: Digest
    public var destination: String
    public var files: Int
    public var bytes: Int64
    /// Bytes downloaded by this run.
    public var bytesReceived: Int64
    /// Bytes an earlier, interrupted pull had already downloaded and verified or kept.
    public var bytesResumed: Int64
    public var seconds: Double
    public var deprecation: String?
}

/// Human-readable byte counts in binary units.
public enum ByteCount {
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
    }
}
