import ModelFormats
import ModelRegistryCore

extension ModelRoutes {
    /// Re-reads the stored weight files' headers (never their data): declared metadata and quantization must
    /// match what the files contain, and the files must be well-formed. On the header-check threads, so
    /// parsing large headers never holds the threads that answer requests (the readiness probe among them).
    ///
    /// A blob that garbage collection took after the publish checked it (a collection with no grace period) is
    /// told as any missing blob is: the manifest references blobs the registry does not have.
    func verifyModelFiles(of manifest: Manifest) async throws {
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
