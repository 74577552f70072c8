import ModelFormats
import ModelRegistryCore

extension ModelRoutes {
    /// Re-reads the stored weight files' headers (never their data): declared metadata and quantization must
    /// match what the files contain, and the files must be well-formed.
    func verifyModelFiles(of manifest: Manifest) throws {
        try ManifestVerification.verify(manifest) { file throws(RegistryError) in
            BlobByteSource(try registry.blobs.reader(file.digest))
        }
    }
}
