import Foundation
import ModelFormats
import ModelRegistryCore

/// `modelreg push`: hashes a directory, uploads the blobs the server lacks, then publishes the manifest.
public struct Pusher: Sendable {
    public let connection: RegistryConnection
    public var jobs: Int

    public init(connection: RegistryConnection, jobs: Int = 4) {
        self.connection = connection
        self.jobs = max(1, jobs)
    }

    /// With `inspect`, the weight files' headers are read first (a corrupt file is refused before any
    /// hashing or upload) and the manifest carries their metadata; `quantization` and `derivedFrom` are what
    /// the user declares, checked against the files and completed by them.
    public func push(
        directory: URL, name: ModelName, version: VersionName, variant: VariantName,
        inspect: Bool = true, quantization: Quantization? = nil, derivedFrom: VariantName? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> PushReport {
        let start = ContinuousClock.now
        let local = try LocalFiles.scan(directory)
        let inspection = inspect ? try LocalFiles.inspect(local) : nil
        let hashed = try await forEach(local, jobs: jobs) { file in
            (file, try LocalFiles.digest(of: file.url))
        }
        let manifest = Manifest(
            format: ModelFormat.detect(paths: local.map(\.path)),
            files: hashed.map { ManifestFile(path: $0.0.path, digest: $0.1, size: $0.0.size, executable: $0.0.executable) },
            quantization: try ManifestVerification.merge(declared: quantization, derivedFrom: derivedFrom, inspection: inspection),
            metadata: inspection?.metadata
        )
        // Published variants never change: refuse before sending any bytes rather than after.
        if let existing = try await connection.publishedDigest(name, version, variant), existing != manifest.digest {
            throw RegistryError.alreadyPublished(name, version, variant, as: existing)
        }
        // One upload a distinct blob, whatever the number of files that share it.
        var unique: [Digest: LocalFile] = [:]
        for (file, digest) in hashed where unique[digest] == nil { unique[digest] = file }
        let outcomes = try await forEach(Array(unique), jobs: jobs) { digest, file -> BlobOutcome in
            if try await connection.blobSize(digest) == file.size {
                log("skipped \(file.path) (already stored)")
                return BlobOutcome(sent: 0, skipped: file.size, uploaded: false)
            }
            let uploaded = try await connection.uploadBlob(file, digest: digest)
            log("uploaded \(file.path) (\(ByteCount.format(file.size)))")
            return BlobOutcome(sent: uploaded.sent, skipped: 0, uploaded: true)
        }
        let published = try await connection.publish(name, version, variant, manifest)
        return PushReport(
            reference: "\(name):\(version)",
            variant: variant,
            digest: published.variant.digest,
            created: published.created,
            files: local.count,
            blobsUploaded: outcomes.filter(\.uploaded).count,
            blobsSkipped: outcomes.filter { !$0.uploaded }.count,
            bytesSent: outcomes.reduce(0) { $0 + $1.sent },
            bytesSkipped: outcomes.reduce(0) { $0 + $1.skipped },
            seconds: (ContinuousClock.now - start).seconds
        )
    }

    private struct BlobOutcome: Sendable {
        var sent: Int64
        var skipped: Int64
        var uploaded: Bool
    }
}

public struct PushReport: Codable, Sendable {
    public var reference: String
    public var variant: VariantName
    public var digest: Digest
    public var created: Bool
    public var files: Int
    public var blobsUploaded: Int
    public var blobsSkipped: Int
    public var bytesSent: Int64
    public var bytesSkipped: Int64
    public var seconds: Double
}

/// Runs `body` over `items` with at most `jobs` at once and returns the results in input order.
func forEach<Item: Sendable, Result: Sendable>(
    _ items: [Item], jobs: Int, _ body: @escaping @Sendable (Item) async throws -> Result
) async throws -> [Result] {
    try await withThrowingTaskGroup(of: (Int, Result).self) { group in
        var results = [Result?](repeating: nil, count: items.count)
        var next = 0
        while next < min(jobs, items.count) {
            let index = next
            group.addTask { (index, try await body(items[index])) }
            next += 1
        }
        while let (index, result) = try await group.next() {
            results[index] = result
            if next < items.count {
                let index = next
                group.addTask { (index, try await body(items[index])) }
                next += 1
            }
        }
        return results.map { $0! }
    }
}

extension Duration {
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
