import CacheImage
import DequeModule
import Foundation
import Logging
import ModelRegistryCore
import NIOCore
import NIOPosix
import RegistryAPI

/// Pre-warms cache images: when a variant is published or an alias moves to it, each layout's archive is
/// streamed once from the blobs to learn its digest, which is then served as the image's `ETag`. The
/// archive itself is never stored (it is described by the manifest over the blobs), so a built image
/// costs one small record in the metadata store. Builds run one at a time; the blob store reads off the
/// request threads.
actor CacheImageBuilder {
    private struct Job: Hashable {
        var model: ModelName
        var manifest: Digest
        var layout: CacheImageLayout
    }

    private let blobs: any BlobStore
    private let metadata: any CatalogStore & CacheImageRecordStore
    private let logger: Logger
    /// Jobs waiting, in order, and the same as a set: a registry seeded with thousands of variants queues
    /// thousands of jobs, and each enqueue asks whether its job is already waiting.
    private var queue = Deque<Job>()
    private var queued: Set<Job> = []
    private var building: Job?
    private var worker: Task<Void, Never>?
    /// Records read or written so far: every alias move and image download asks for them, and a record, once
    /// there, changes only by this builder's hand or goes with its variant (`forget`).
    private var known: [Job: CacheImageRecord] = [:]

    init(blobs: any BlobStore, metadata: any CatalogStore & CacheImageRecordStore, logger: Logger) {
        self.blobs = blobs
        self.metadata = metadata
        self.logger = logger
    }

    /// Queues every layout of a variant that has no built image yet.
    func enqueue(_ model: ModelName, _ manifest: Digest) async {
        let records: [String: CacheImageRecord]
        do {
            records = try await self.records(model, manifest)
        } catch {
            logger.warning("could not read cache image records", metadata: ["error": "\(error)"])
            return
        }
        for layout in CacheImageLayout.allCases where records[layout.rawValue] == nil {
            let job = Job(model: model, manifest: manifest, layout: layout)
            guard job != building, !queued.contains(job) else { continue }
            queue.append(job)
            queued.insert(job)
        }
        if worker == nil, !queue.isEmpty {
            worker = Task { await self.drain() }
        }
    }

    /// Queues the targets of every alias: after a restart, builds that were interrupted start again.
    func enqueueAliasTargets() async {
        do {
            for model in try await metadata.listModels() {
                for alias in model.aliases {
                    let stored = try await metadata.resolve(
                        ModelReference(name: model.name, target: .alias(alias.name)), variant: nil)
                    await enqueue(model.name, stored.digest)
                }
            }
        } catch {
            logger.warning("could not queue cache images of alias targets", metadata: ["error": "\(error)"])
        }
    }

    func status(_ model: ModelName, _ manifest: Digest, size: (CacheImageLayout) -> Int64) async throws
        -> [CacheImageStatus]
    {
        let records = try await self.records(model, manifest)
        return CacheImageLayout.allCases.map { layout in
            if let record = records[layout.rawValue] {
                return CacheImageStatus(
                    layout: layout.rawValue, state: record.error == nil ? .ready : .failed, digest: record.digest,
                    size: record.size, builtAt: record.builtAt, error: record.error)
            }
            let job = Job(model: model, manifest: manifest, layout: layout)
            return CacheImageStatus(
                layout: layout.rawValue, state: job == building ? .building : .pending, size: size(layout))
        }
    }

    /// The built image's digest, if it is ready.
    func digest(_ model: ModelName, _ manifest: Digest, _ layout: CacheImageLayout) async throws -> Digest? {
        try await records(model, manifest)[layout.rawValue]?.digest
    }

    /// The manifest's records by layout, from those known when every layout's is, else from the store.
    private func records(_ model: ModelName, _ manifest: Digest) async throws -> [String: CacheImageRecord] {
        let jobs = CacheImageLayout.allCases.map { Job(model: model, manifest: manifest, layout: $0) }
        if jobs.allSatisfy({ known[$0] != nil }) {
            return Dictionary(
                uniqueKeysWithValues: jobs.compactMap { job in known[job].map { (job.layout.rawValue, $0) } })
        }
        let records = try await metadata.cacheImageRecords(model, manifest)
        for job in jobs { known[job] = records[job.layout.rawValue] ?? known[job] }
        return records
    }

    /// Drops the waiting builds and known records of deleted variants (the store drops their records with the
    /// version).
    func forget(_ model: ModelName, _ manifests: [Digest]) {
        for manifest in manifests {
            for layout in CacheImageLayout.allCases {
                let job = Job(model: model, manifest: manifest, layout: layout)
                known[job] = nil
                if queued.remove(job) != nil { queue.removeAll { $0 == job } }
            }
        }
    }

    /// Waits until the queue is empty (tests and shutdown).
    func idle() async {
        while let worker { await worker.value }
    }

    private func drain() async {
        while let job = queue.popFirst() {
            queued.remove(job)
            building = job
            let record = await build(job)
            building = nil
            if let record { await save(record, job) }
        }
        worker = nil
    }

    private func build(_ job: Job) async -> CacheImageRecord? {
        do {
            guard let stored = try await metadata.manifest(job.model, digest: job.manifest) else { return nil }
            let image = CacheImage(
                model: job.model, manifestDigest: job.manifest, manifest: try stored.decoded(), layout: job.layout)
            let digest = try await Self.hash(image, blobs)
            logger.info(
                "cache image built",
                metadata: [
                    "model": "\(job.model)", "manifest": "\(job.manifest)", "layout": "\(job.layout)",
                    "digest": "\(digest)", "size": "\(image.size)",
                ])
            return CacheImageRecord(digest: digest, size: image.size, builtAt: Timestamp.now())
        } catch {
            logger.error(
                "cache image failed",
                metadata: [
                    "model": "\(job.model)", "manifest": "\(job.manifest)", "layout": "\(job.layout)",
                    "error": "\(error)",
                ])
            return CacheImageRecord(digest: nil, size: 0, builtAt: Timestamp.now(), error: "\(error)")
        }
    }

    /// The sha256 of the whole archive, streamed from the blobs.
    private static func hash(_ image: CacheImage, _ blobs: any BlobStore) async throws -> Digest {
        var hasher = ContentHasher()
        var chunks = CacheImageChunks(image, range: 0..<image.size, blobs: blobs)
        while let chunk = try await chunks.next() {
            chunk.withUnsafeReadableBytes { hasher.update($0) }
        }
        return hasher.finalize()
    }

    private func save(_ record: CacheImageRecord, _ job: Job) async {
        do {
            try await metadata.recordCacheImage(record, job.model, job.manifest, layout: job.layout.rawValue)
            known[job] = record
        } catch {
            logger.error(
                "cannot record cache image",
                metadata: ["model": "\(job.model)", "manifest": "\(job.manifest)", "error": "\(error)"])
        }
    }
}

/// The bytes of a range of a cache image, read from the blobs behind it as they are asked for.
struct CacheImageChunks {
    private var parts: ArraySlice<CacheImage.Part>
    private let blobs: any BlobStore
    private var current: BlobBytes.AsyncIterator?

    init(_ image: CacheImage, range: Range<Int64>, blobs: any BlobStore) {
        parts = image.parts(in: range)[...]
        self.blobs = blobs
    }

    /// The next chunk; nil at the end of the range.
    mutating func next() async throws -> ByteBuffer? {
        while true {
            if let chunk = try await current?.next() { return chunk }
            current = nil
            guard let part = parts.popFirst() else { return nil }
            switch part {
            case .bytes(let bytes):
                return ByteBuffer(bytes: bytes)
            case .blob(let digest, let range):
                current = try await blobs.read(digest, range: range).makeAsyncIterator()
            }
        }
    }
}
