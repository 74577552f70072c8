import ModelRegistryCore

/// The Hugging Face hub cache layout of one variant, as `huggingface_hub` writes it:
///
///     models--ORG--NAME/blobs/<sha256 hex>                   one file per distinct content
///     models--ORG--NAME/snapshots/<revision>/<path>          relative symlinks into blobs/
///     models--ORG--NAME/refs/main                            the revision
///
/// The revision is the first 40 hex digits of the variant's manifest digest: it names exactly this content.
public enum HuggingFaceCache {
    public static func repositoryDirectory(_ model: ModelName) -> String {
        "models--" + model.value.replacingOccurrences(of: "/", with: "--")
    }

    public static func revision(_ manifestDigest: Digest) -> String {
        String(manifestDigest.hex.prefix(40))
    }

    static func entries(model: ModelName, manifestDigest: Digest, manifest: Manifest) -> [PlannedEntry] {
        let root = repositoryDirectory(model)
        let revision = revision(manifestDigest)
        let snapshot = "\(root)/snapshots/\(revision)"
        var planned = ["", "/blobs", "/refs", "/snapshots", "/snapshots/\(revision)"].map {
            PlannedEntry(path: root + $0, kind: .directory)
        }
        let reference = Array(revision.utf8)
        planned.append(
            PlannedEntry(
                path: "\(root)/refs/main",
                kind: .file(Digest.of(reference), size: Int64(reference.count), executable: false),
                inline: reference))
        // A blob is executable when any file with its content is.
        var blobs: [Digest: (size: Int64, executable: Bool)] = [:]
        var directories = Set<String>()
        for file in manifest.files {
            let previous = blobs[file.digest]
            blobs[file.digest] = (file.size, (previous?.executable ?? false) || file.executable)
            let components = file.path.components
            for depth in 1..<max(components.count, 1) {
                directories.insert(components.prefix(depth).joined(separator: "/"))
            }
            let up = String(repeating: "../", count: components.count + 1)
            planned.append(
                PlannedEntry(path: "\(snapshot)/\(file.path)", kind: .symlink(target: "\(up)blobs/\(file.digest.hex)")))
        }
        planned += directories.map { PlannedEntry(path: "\(snapshot)/\($0)", kind: .directory) }
        planned += blobs.map { digest, blob in
            PlannedEntry(
                path: "\(root)/blobs/\(digest.hex)", kind: .file(digest, size: blob.size, executable: blob.executable))
        }
        return planned
    }
}
