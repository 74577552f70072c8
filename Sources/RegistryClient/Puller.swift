import FileSystemIO
import Foundation
import ModelRegistryCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `modelreg pull`: resolves a reference and downloads every file into a staging directory inside the
/// destination (`StagedDestination`, so a mount point under a read-only parent works), verifying each
/// against its digest; only when all verified are the files moved into the destination.
///
/// The staging directory is named after the variant's digest (`.modelreg-staging-pull-<12 hex>/`, with
/// `.modelreg-parts/<n>` partial files), so a pull that was killed or lost its network finds it again and
/// downloads only the missing bytes. A lock file in it keeps two pulls from writing the same tree at once.
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
        try StagedDestination(destination, run: "").checkReplaceable(
            replace: replace, earlierRun: false, command: "pull")
        let resolved = try await connection.resolve(reference, variant: variant)
        let files = resolved.manifest.files
        if let reason = resolved.deprecation { warn(Presentation.deprecationWarning(resolved, reason: reason)) }
        let target = StagedDestination(destination, run: "pull-\(resolved.digest.hex.prefix(12))")
        let created = try target.prepare()
        let tree = target.staging
        let parts = tree.appendingPathComponent(StagedDestination.reservedPrefix + "parts")
        try LocalFileError.mapping("create", parts.path) {
            try fileManager.createDirectory(at: parts, withIntermediateDirectories: true)
        }
        let lock = try Self.lock(
            tree.appendingPathComponent(StagedDestination.reservedPrefix + "lock"), destination: destination)
        defer { try? lock.close() }
        do {
            for directory in Set(files.map { $0.path.components.dropLast().joined(separator: "/") })
            where !directory.isEmpty {
                let url = tree.appendingPathComponent(directory)
                try LocalFileError.mapping("create", url.path) {
                    try fileManager.createDirectory(at: url, withIntermediateDirectories: true)
                }
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
            try target.commit()
            return PullReport(
                model: resolved.model, version: resolved.version, variant: resolved.variant, digest: resolved.digest,
                destination: destination.path, files: files.count, bytes: resolved.manifest.totalSize,
                bytesReceived: outcomes.reduce(0) { $0 + $1.received },
                bytesResumed: outcomes.reduce(0) { $0 + $1.resumed },
                seconds: (ContinuousClock.now - start).seconds, deprecation: resolved.deprecation
            )
        } catch ClientError.network(let message) {
            // Kept for the next run, which continues where this one stopped.
            throw ClientError.network(
                "\(message); the \(ByteCount.format(Self.bytes(under: tree))) received are kept in \(tree.path): pull again to resume"
            )
        } catch {
            target.abandon(createdDestination: created)
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
