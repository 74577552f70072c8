import AsyncHTTPClient
import CacheImage
import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore

/// `modelreg fetch`, the init container's command: places a variant's cache image under a directory.
///
/// The image is streamed and extracted by `CacheImageExtractor` into a staging directory inside the
/// destination (`StagedDestination`: the destination is usually an `emptyDir` mount point under a
/// read-only root), every file verified while it is written; then the files are moved into the destination
/// and a marker naming the manifest digest is written last: the marker is the commit point. A destination
/// whose marker and files already match is left alone. A staging directory left by a killed run is resumed:
/// finished entries (listed in a journal) are kept, a half-written file is continued from its last byte, and
/// the rest is requested with `Range`. Files found in a node-level cache directory are hard-linked (or, on
/// another mount, copied and checked) instead of downloaded.
public struct Fetcher: Sendable {
    public static let markerName = ".modelreg-fetch.json"
    static let journalName = ".modelreg-fetch-journal"

    let connection: RegistryConnection

    public init(connection: RegistryConnection) {
        self.connection = connection
    }

    public struct Options: Sendable {
        public var layout: CacheImageLayout
        public var cache: URL?
        public var verify: Bool
        /// How long the whole fetch may take, stalls and retries of network failures included.
        public var timeout: Duration
        /// Replace a destination that holds files of another origin than an earlier fetch.
        public var force: Bool

        public init(layout: CacheImageLayout, cache: URL?, verify: Bool, timeout: Duration, force: Bool = false) {
            self.layout = layout
            self.cache = cache
            self.verify = verify
            self.timeout = timeout
            self.force = force
        }
    }

    /// Fetches within `options.timeout`: once it passes, the transfer in flight is cancelled and the fetch
    /// fails as a network failure, keeping what it staged for the next run. `progress` counts the file bytes
    /// placed and carries the log lines.
    public func fetch(
        _ reference: ModelReference, variant: VariantName?, destination: URL, options: Options,
        progress: TransferProgress = TransferProgress(style: .none, verb: "fetching") { _ in },
        warn: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> FetchReport {
        let start = ContinuousClock.now
        let deadline = start + options.timeout
        return try await Deadline(deadline).run(
            expired: {
                ClientError.network(
                    "fetch of \(reference) did not finish within --timeout (\(String(format: "%.0f", options.timeout.seconds)) s): run it again to continue where it stopped"
                )
            },
            {
                try await fetch(
                    reference, variant: variant, destination: destination, options: options, start: start,
                    deadline: deadline,
                    progress: progress, warn: warn
                )
            }
        )
    }

    private func fetch(
        _ reference: ModelReference, variant: VariantName?, destination: URL, options: Options,
        start: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
        progress: TransferProgress, warn: @Sendable (String) -> Void
    ) async throws -> FetchReport {
        let log: @Sendable (String) -> Void = { progress.note($0) }
        let destination = destination.standardizedFileURL
        let resolved = try await retrying(until: deadline, log: log) {
            try await connection.resolve(reference, variant: variant)
        }
        if let reason = resolved.deprecation { warn(Presentation.deprecationWarning(resolved, reason: reason)) }
        let image = CacheImage(
            model: resolved.model, manifestDigest: resolved.digest, manifest: resolved.manifest, layout: options.layout)
        let marker = FetchMarker(resolved, layout: options.layout)
        var report = FetchReport(
            model: resolved.model, version: resolved.version, variant: resolved.variant, digest: resolved.digest,
            layout: options.layout.rawValue, destination: destination.path, files: resolved.manifest.files.count,
            bytes: resolved.manifest.totalSize, alreadyInPlace: false, bytesDownloaded: 0, bytesFromCache: 0,
            bytesResumed: 0,
            seconds: 0, deprecation: resolved.deprecation
        )
        let target = StagedDestination(destination, run: "\(resolved.digest.hex.prefix(16))-\(options.layout)")
        let earlier = FetchMarker.read(destination)
        let mismatch =
            earlier == marker ? try Self.firstMismatch(image, under: destination, verify: options.verify) : nil
        if earlier == marker, mismatch == nil {
            target.removeStaging()
            log(
                "\(resolved.model):\(resolved.version) variant \(resolved.variant) (\(resolved.digest)) is already in \(destination.path)"
            )
            report.alreadyInPlace = true
            report.seconds = (ContinuousClock.now - start).seconds
            return report
        }
        // A warning, not a progress line: it says a file changed after it was placed, also under --json.
        if let mismatch { warn("warning: \(destination.path) holds this fetch, but \(mismatch): replacing it") }
        try target.checkReplaceable(replace: options.force, earlierRun: earlier != nil, command: "fetch")
        let created = try target.prepare()
        log(
            "fetching \(reference) -> \(resolved.model):\(resolved.version) variant \(resolved.variant) (\(resolved.digest)), "
                + "\(options.layout) layout, \(resolved.manifest.files.count) files, \(ByteCount.format(resolved.manifest.totalSize))"
        )
        do {
            let placement = ImagePlacement(
                image: image, manifest: resolved.digest, staging: target.staging, cache: options.cache,
                progress: progress)
            progress.begin(total: resolved.manifest.totalSize, files: image.files.count)
            let counts = try await progress.reporting {
                try await retrying(until: deadline, log: log) {
                    try await placement.complete(using: connection, name: resolved.model)
                }
            }
            (report.bytesDownloaded, report.bytesFromCache, report.bytesResumed) = (
                counts.downloaded, counts.fromCache, counts.resumed
            )
            if options.verify, try !Self.inPlace(image, under: target.staging, verify: true) {
                throw RegistryError(
                    .integrity, "a file changed on disk while it was being fetched into \(target.staging.path)")
            }
            try placement.finish()
            try target.commit(commitPoint: (Self.markerName, try JSONEncoder().encode(marker)))
        } catch let error as RegistryError where error.code == .integrity {
            // Bytes that failed verification are never kept, not even for a resume.
            target.abandon(createdDestination: created)
            throw error
        }
        report.seconds = (ContinuousClock.now - start).seconds
        log(
            "placed \(resolved.model):\(resolved.version) variant \(resolved.variant) in \(destination.path): "
                + "\(ByteCount.format(report.bytesDownloaded)) downloaded, \(ByteCount.format(report.bytesFromCache)) from the node cache, "
                + "in \(String(format: "%.2f", report.seconds)) s")
        return report
    }

    /// Whether every entry of the image is under `root` with the right kind and size (and, verifying,
    /// content). A destination that is not is fetched again and replaced.
    static func inPlace(_ image: CacheImage, under root: URL, verify: Bool) throws -> Bool {
        try firstMismatch(image, under: root, verify: verify) == nil
    }

    /// The first entry that is not as the image has it, and how, for the log.
    static func firstMismatch(_ image: CacheImage, under root: URL, verify: Bool) throws -> String? {
        for entry in image.entries {
            let path = root.appendingPathComponent(entry.path).path
            var status = stat()
            guard lstat(path, &status) == 0 else { return "\(entry.path) is missing" }
            switch entry.kind {
            case .directory:
                guard status.st_mode & S_IFMT == S_IFDIR else { return "\(entry.path) is not a directory" }
            case .symlink(let target):
                guard status.st_mode & S_IFMT == S_IFLNK,
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) == target
                else {
                    return "\(entry.path) is not a link to \(target)"
                }
            case .file(let digest, let size, _):
                guard status.st_mode & S_IFMT == S_IFREG, Int64(status.st_size) == size else {
                    return "\(entry.path) is not a file of \(size) bytes"
                }
                if verify {
                    let file = try POSIXFile.openForReading(path)
                    defer { try? file.close() }
                    let actual = try file.hashContents().hasher.finalize()
                    guard actual == digest else { return "\(entry.path) hashes to \(actual), not \(digest)" }
                }
            }
        }
        return nil
    }

    /// Runs `body`, retrying network failures with exponential backoff (1 s to 30 s) until the deadline.
    private func retrying<T>(
        until deadline: ContinuousClock.Instant, log: @Sendable (String) -> Void, _ body: () async throws -> T
    ) async throws -> T {
        var delay = Duration.seconds(1)
        while true {
            do {
                return try await body()
            } catch let error where Self.isNetworkFailure(error) {
                guard ContinuousClock.now + delay < deadline else { throw error }
                log("network failure, retrying in \(delay.seconds) s: \(error)")
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    static func isNetworkFailure(_ error: any Error) -> Bool {
        // An untrusted certificate does not fix itself: waiting for it would only hide the error.
        if case .tls = error as? ClientError { return false }
        if error is ClientError || ClientError(transportFailure: error) != nil { return true }
        if let error = error as? RegistryError { return error.code == .notReady }
        return false
    }
}

/// What a finished fetch left behind, written last into the destination.
struct FetchMarker: Codable, Equatable {
    var model: ModelName
    var version: VersionName
    var variant: VariantName
    var manifest: Digest
    var layout: String

    init(_ resolved: ResolvedManifest, layout: CacheImageLayout) {
        model = resolved.model
        version = resolved.version
        variant = resolved.variant
        manifest = resolved.digest
        self.layout = layout.rawValue
    }

    static func read(_ directory: URL) -> FetchMarker? {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(Fetcher.markerName).path)
        else { return nil }
        return try? JSONDecoder().decode(FetchMarker.self, from: data)
    }
}

public struct FetchReport: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var digest: Digest
    public var layout: String
    public var destination: String
    public var files: Int
    public var bytes: Int64
    /// The destination already held this variant: nothing was transferred.
    public var alreadyInPlace: Bool
    public var bytesDownloaded: Int64
    /// Taken from the node cache (`--cache`): hard-linked, or copied and checked across mounts.
    public var bytesFromCache: Int64
    /// Bytes kept from an interrupted run.
    public var bytesResumed: Int64
    public var seconds: Double
    public var deprecation: String?
}
