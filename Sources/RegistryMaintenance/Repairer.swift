import FileSystemBlobs
import FileSystemIO
import Foundation
import ModelRegistryCore

/// A registry that `repair` refills: its data directory, or a running server (`RemoteRepairTarget`).
public protocol RepairTarget: Sendable {
    var description: String { get }
    /// Blobs a manifest references that the registry does not hold (quarantined or lost).
    func missingBlobs() async throws -> [Digest]
    /// Stores the blob whose bytes are in the file `path`; the registry checks them against the digest.
    func store(_ digest: Digest, from path: String) async throws
}

/// A registry's stores, refilled directly: a data directory on this machine (`LocalStores`).
public struct StoreRepairTarget: RepairTarget {
    public let description: String
    let blobs: any BlobStore
    let metadata: any MetadataStore

    public init(description: String, blobs: any BlobStore, metadata: any MetadataStore) {
        self.description = description
        self.blobs = blobs
        self.metadata = metadata
    }

    public init(directory: DataDirectory) throws {
        let stores = try LocalStores(directory)
        self.init(description: directory.root.path, blobs: stores.blobs, metadata: stores.metadata)
    }

    public func missingBlobs() async throws -> [Digest] {
        try await Scrubber(blobs: blobs, references: metadata, sample: 0).run().missing
    }

    /// Put as an upload would be: checked against the digest by the store, then recorded.
    public func store(_ digest: Digest, from path: String) async throws {
        let file = try POSIXFile.openForReading(path)
        defer { try? file.close() }
        do {
            try await metadata.recordBlob(try await blobs.put(file.bytes(0..<file.size()), expecting: digest))
        } catch let error as RegistryError where error.code == .digestMismatch {
            throw RegistryError(.integrity, "the backup's copy of \(digest) is corrupt too (\(error.message))")
        }
    }
}

/// What `repair` brought back.
public struct RepairReport: Codable, Sendable {
    public var repository: String
    public var missing: Int
    public var repaired: [Digest]
    /// Missing blobs the repository does not hold either (or holds corrupt).
    public var unavailable: [Digest]
    /// Referenced blobs the registry still lacks afterwards, by its own account.
    public var stillMissing: [Digest]
}

/// Brings blobs that a registry's manifests reference but it no longer holds back from a backup repository.
public struct Repairer: Sendable {
    public let repository: BackupRepository
    public let target: any RepairTarget

    public init(repository: BackupRepository, target: any RepairTarget) {
        self.repository = repository
        self.target = target
    }

    public func run(log: @Sendable (String) -> Void = { _ in }) async throws -> RepairReport {
        let lock = try repository.lock(exclusive: false)
        defer { lock.unlock() }
        let missing = try await target.missingBlobs()
        var repaired: [Digest] = []
        var unavailable: [Digest] = []
        for digest in missing {
            let path = repository.blob(digest)
            guard try POSIXFile.status(path) != nil else {
                unavailable.append(digest)
                continue
            }
            do {
                try await target.store(digest, from: path)
                repaired.append(digest)
                log("repaired \(digest)")
            } catch let error as RegistryError where error.code == .integrity || error.code == .digestMismatch {
                unavailable.append(digest)
            }
        }
        // Asking again confirms the repair from the registry's side, and clears the repaired blobs' quarantine.
        let stillMissing = try await target.missingBlobs()
        return RepairReport(
            repository: repository.root.path, missing: missing.count, repaired: repaired, unavailable: unavailable,
            stillMissing: stillMissing
        )
    }
}
