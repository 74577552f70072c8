import ModelFormats
import ModelRegistryCore

extension ModelRoutes {
    /// Re-reads the stored weight files' headers (never their data): declared metadata and quantization must
    /// match what the files contain, and the files must be well-formed. On the header-check threads, so
    /// parsing large headers never holds the threads that answer requests (the readiness probe among them).
    func verifyModelFiles(of manifest: Manifest) async throws {
        let blobs = registry.blobs
        try await HeaderCheckThreads.run {
            try ManifestVerification.verify(manifest) { file throws(RegistryError) in
                BlobByteSource(try blobs.reader(file.digest))
            }
        }
    }
}
