import Foundation
import ModelFormats
import ModelRegistryCore

/// Publishing a variant, for every API that publishes one (`PUT /v1/models/.../variants/{variant}`, an OCI
/// manifest push): the blobs checked, the model files' headers read again, the publish, its cache images queued.
struct VariantPublisher {
    let registry: Registry

    /// Publishes a manifest a client wrote: its blobs checked and its declarations read against the files.
    func publish(_ request: PublishRequest) async throws -> PublishOutcome {
        try await checkBlobs(of: request.manifest)
        try await verifyModelFiles(of: request.manifest)
        return try await record(request)
    }

    /// Publishes a manifest the registry wrote from `inspect` of files whose blobs `checkBlobs` found: what the
    /// manifest declares was read from the files just now, so they are not read again.
    func publishInspected(_ request: PublishRequest) async throws -> PublishOutcome {
        try await record(request)
    }

    private func record(_ request: PublishRequest) async throws -> PublishOutcome {
        let outcome = try await registry.metadata.publish(request)
        await registry.images.enqueue(request.model, outcome.variant.digest)
        return outcome
    }

    /// What the files' headers say (never their data), for a client that sends files without the registry's
    /// manifest (an OCI push). On the header-check threads, as `verifyModelFiles`.
    func inspect(_ files: [ManifestFile]) async throws -> Inspection {
        let blobs = registry.blobs
        let byPath = Dictionary(uniqueKeysWithValues: files.map { ($0.path, $0.digest) })
        return try await HeaderCheckThreads.run {
            try ModelInspector.inspect(paths: files.map(\.path)) { path throws(RegistryError) in
                BlobByteSource(try blobs.reader(byPath[path]!))
            }
        }
    }

    /// Every file's blob must be stored with exactly the size the manifest claims (the metadata store checks
    /// its records of them again inside the publish, against garbage collection; this also finds a blob
    /// taken into quarantine).
    func checkBlobs(of manifest: Manifest) async throws {
        var stored: [Digest: Int64] = [:]
        for digest in Set(manifest.files.map(\.digest)) {
            stored[digest] = try await registry.blobs.info(digest)?.size
        }
        try manifest.requireBlobs { stored[$0] }
    }

    /// Re-reads the stored weight files' headers (never their data): declared metadata and quantization must
    /// match what the files contain, and the files must be well-formed. On the header-check threads, so
    /// parsing large headers never holds the threads that answer requests (the readiness probe among them).
    ///
    /// A blob that garbage collection took after the publish checked it (a collection with no grace period) is
    /// told as any missing blob is: the manifest references blobs the registry does not have.
    private func verifyModelFiles(of manifest: Manifest) async throws {
        let blobs = registry.blobs
        do {
            try await HeaderCheckThreads.run {
                try ManifestVerification.verify(manifest) { file throws(RegistryError) in
                    BlobByteSource(try blobs.reader(file.digest))
                }
            }
        } catch let error as RegistryError where error.code == .notFound {
            var missing: [String] = []
            for file in manifest.files where try await blobs.info(file.digest) == nil {
                missing.append("\(file.path) (\(file.digest))")
            }
            throw missing.isEmpty ? error : RegistryError.blobsMissing(missing)
        }
    }
}
