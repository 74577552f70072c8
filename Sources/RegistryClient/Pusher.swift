import Foundation
import ModelFormats
import ModelRegistryCore
import RegistryAPI

/// `modelreg push`: uploads a directory's files, then publishes the manifest. A file the hash cache knows is
/// uploaded only when the server lacks its blob; another is hashed as it is sent (reading, hashing and sending
/// overlap), unless the variant is published already, when every file is hashed first to compare.
public struct Pusher: Sendable {
    public let connection: RegistryConnection
    public var jobs: Int
    /// Digests of files hashed by earlier pushes; nil hashes every file.
    public var hashCache: HashCache?
    /// Uploads begun for files hashed as they are sent, so a killed push continues them; beside the hash cache.
    public var uploadJournal: UploadJournal?
    public var progress: ProgressStyle
    public var log: @Sendable (String) -> Void

    /// Files hashed and uploaded at once unless `--jobs` says otherwise.
    public static let defaultJobs = 4

    public init(
        connection: RegistryConnection, jobs: Int = Pusher.defaultJobs, hashCache: HashCache? = nil,
        progress: ProgressStyle = .none, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.connection = connection
        self.jobs = max(1, jobs)
        self.hashCache = hashCache
        self.uploadJournal = hashCache.map(UploadJournal.init(besides:))
        self.progress = progress
        self.log = log
    }

    /// With `inspect`, the weight files' headers are read first (a corrupt file is refused before any
    /// hashing or upload) and the manifest carries their metadata; `quantization` and `derivedFrom` are what
    /// the user declares, checked against the files and completed by them.
    public func push(
        directory: URL, name: ModelName, version: VersionName, variant: VariantName,
        inspect: Bool = true, quantization: Quantization? = nil, derivedFrom: VariantName? = nil,
        followExternalLinks: Bool = false
    ) async throws -> PushReport {
        let start = ContinuousClock.now
        let local = try LocalFiles.scan(directory, followExternalLinks: followExternalLinks)
        let inspection = inspect ? try LocalFiles.inspect(local) : nil
        // Checked before any byte is read or sent.
        let merged = try ManifestVerification.merge(
            declared: quantization, derivedFrom: derivedFrom, inspection: inspection)
        func manifest(_ digests: [Digest]) -> Manifest {
            Manifest(
                format: ModelFormat.detect(paths: local.map(\.path)),
                files: zip(local, digests).map {
                    ManifestFile(path: $0.path, digest: $1, size: $0.size, executable: $0.executable)
                },
                quantization: merged, metadata: inspection?.metadata)
        }
        // Published variants never change: hash first to compare, and refuse before sending any bytes.
        if let existing = try await connection.publishedDigest(name, version, variant) {
            let digests = try await hash(local)
            let hashed = manifest(digests.values)
            guard existing == hashed.digest else {
                throw RegistryError.alreadyPublished(name, version, variant, as: existing)
            }
            // Published means every blob is stored: nothing to ask, nothing to send.
            return PushReport(
                reference: "\(name):\(version)", variant: variant, digest: hashed.digest, created: false,
                files: local.count, filesHashed: digests.hashed, blobsUploaded: 0,
                blobsSkipped: Set(digests.values).count, bytesSent: 0,
                bytesSkipped: Self.distinctBytes(local, digests.values), bytesResumed: 0,
                seconds: (ContinuousClock.now - start).seconds)
        }
        // One upload a distinct known blob, whatever the number of files that share it; one a file not known.
        let cached = local.map { hashCache?.digest(of: $0) }
        var known: Set<Digest> = []
        var jobsToRun: [BlobJob] = []
        for (index, file) in local.enumerated() {
            if let digest = cached[index] {
                guard known.insert(digest).inserted else { continue }
                jobsToRun.append(.known(digest, file))
            } else {
                jobsToRun.append(.hashing(index, file))
            }
        }
        let uploads = TransferProgress(style: progress, verb: "pushing", write: log)
        uploads.begin(total: jobsToRun.reduce(0) { $0 + $1.file.size }, files: jobsToRun.count)
        let journal = uploadJournal
        let cache = hashCache
        var outcomes = try await uploads.reporting {
            try await forEach(jobsToRun, jobs: jobs) { job -> BlobOutcome in
                switch job {
                case .known(let digest, let file):
                    if try await connection.blobSize(digest) == file.size {
                        uploads.skip(size: file.size)
                        return BlobOutcome(digest: digest, sent: 0, skipped: file.size, resumed: 0, uploaded: false)
                    }
                    let uploaded = try await connection.upload(
                        file, expecting: digest, journal: nil, progress: uploads)
                    return BlobOutcome(
                        digest: digest, sent: uploaded.bytes.sent, skipped: 0, resumed: uploaded.bytes.resumed,
                        uploaded: true)
                case .hashing(_, let file):
                    let uploaded = try await connection.upload(
                        file, expecting: nil, journal: journal, progress: uploads)
                    // Kept at once: a push killed before the end then finds this blob by a HEAD, not by sending it.
                    cache?.record(uploaded.digest, of: file)
                    try cache?.save()
                    return BlobOutcome(
                        digest: uploaded.digest, sent: uploaded.bytes.sent, skipped: uploaded.stored ? file.size : 0,
                        resumed: uploaded.bytes.resumed, uploaded: !uploaded.stored)
                }
            }
        }
        var digests = cached
        for (job, outcome) in zip(jobsToRun, outcomes) {
            guard case .hashing(let index, _) = job else { continue }
            digests[index] = outcome.digest
        }
        let manifest = manifest(digests.map { $0! })
        let published: PublishedVariant
        do {
            published = try await connection.publish(name, version, variant, manifest)
        } catch let error as RegistryError where error.code == .blobsMissing {
            // A server killed between storing a blob and recording it leaves a blob that is stored, so it was
            // skipped, but unknown to publishes: sending it again records it (and refreshes it against garbage
            // collection). Once, then the publish is asked again.
            let skipped = zip(jobsToRun, outcomes).filter { !$0.1.uploaded }.map { ($0.1.digest, $0.0.file) }
            guard !skipped.isEmpty else { throw error }
            log("the registry lacks the records of \(skipped.count) stored blob(s): sending them again")
            let resent = try await forEach(skipped, jobs: jobs) { digest, file -> BlobOutcome in
                let uploaded = try await connection.upload(file, expecting: digest, journal: nil, progress: uploads)
                return BlobOutcome(
                    digest: digest, sent: uploaded.bytes.sent, skipped: 0, resumed: uploaded.bytes.resumed,
                    uploaded: true)
            }
            outcomes = outcomes.filter(\.uploaded) + resent
            published = try await connection.publish(name, version, variant, manifest)
        }
        return PushReport(
            reference: "\(name):\(version)", variant: variant, digest: published.variant.digest,
            created: published.created, files: local.count,
            filesHashed: jobsToRun.filter { if case .hashing = $0 { true } else { false } }.count,
            blobsUploaded: outcomes.filter(\.uploaded).count, blobsSkipped: outcomes.filter { !$0.uploaded }.count,
            bytesSent: outcomes.reduce(0) { $0 + $1.sent }, bytesSkipped: outcomes.reduce(0) { $0 + $1.skipped },
            bytesResumed: outcomes.reduce(0) { $0 + $1.resumed }, seconds: (ContinuousClock.now - start).seconds)
    }

    /// Every file's digest, from the hash cache where the file is unchanged, else by reading it.
    private func hash(_ files: [LocalFile]) async throws -> (values: [Digest], hashed: Int) {
        let cache = hashCache
        let progress = TransferProgress(style: self.progress, verb: "hashing", write: log)
        let cached = files.map { cache?.digest(of: $0) }
        progress.begin(
            total: zip(files, cached).filter { $1 == nil }.reduce(0) { $0 + $1.0.size },
            files: cached.filter { $0 == nil }.count)
        let digests = try await progress.reporting {
            try await forEach(Array(zip(files, cached)), jobs: jobs) { file, known -> Digest in
                if let known { return known }
                let token = progress.startFile(file.path.value, size: file.size)
                let digest = try LocalFiles.digest(of: file.url) { progress.advance(token, by: Int64($0)) }
                progress.finishFile(token)
                cache?.record(digest, of: file)
                return digest
            }
        }
        try cache?.save()
        return (digests, cached.filter { $0 == nil }.count)
    }

    private static func distinctBytes(_ files: [LocalFile], _ digests: [Digest]) -> Int64 {
        var seen: Set<Digest> = []
        return zip(files, digests).reduce(0) { total, pair in seen.insert(pair.1).inserted ? total + pair.0.size : total
        }
    }

    /// A blob to send: a file whose digest the hash cache knows, or one hashed as it is sent (its index).
    private enum BlobJob: Sendable {
        case known(Digest, LocalFile)
        case hashing(Int, LocalFile)

        var file: LocalFile {
            switch self {
            case .known(_, let file), .hashing(_, let file): file
            }
        }
    }

    private struct BlobOutcome: Sendable {
        var digest: Digest
        var sent: Int64
        var skipped: Int64
        var resumed: Int64
        var uploaded: Bool
    }
}

public struct PushReport: Codable, Sendable {
    public var reference: String
    public var variant: VariantName
    public var digest: Digest
    public var created: Bool
    public var files: Int
    /// Files read and hashed; the others' digests came from the hash cache.
    public var filesHashed: Int
    public var blobsUploaded: Int
    public var blobsSkipped: Int
    /// Bytes put on the wire.
    public var bytesSent: Int64
    /// Bytes of blobs the registry already had.
    public var bytesSkipped: Int64
    /// Bytes earlier, interrupted uploads had already delivered, so not sent again.
    public var bytesResumed: Int64
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
