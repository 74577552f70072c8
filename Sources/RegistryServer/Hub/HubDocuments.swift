import ModelRegistryCore

/// `GET /hf/api/models/{repo}[/revision/{rev}]`: what `huggingface_hub`'s `ModelInfo` reads.
struct HubModelInfo: Encodable {
    let id: String
    let modelId: String
    let sha: String
    let lastModified: String
    let createdAt: String
    let `private` = false
    let gated = false
    let disabled = false
    let downloads = 0
    let likes = 0
    let tags: [String]
    let siblings: [HubSibling]
    let cardData: CardValue?

    init(_ snapshot: HubSnapshot) {
        cardData = snapshot.cardData
        id = snapshot.model.value
        modelId = snapshot.model.value
        sha = snapshot.commit
        lastModified = snapshot.publishedAt
        createdAt = snapshot.publishedAt
        var tags = [snapshot.manifest.format == .pytorchBin ? "pytorch" : snapshot.manifest.format.rawValue]
        if let quantization = snapshot.manifest.quantization {
            tags.append(quantization.method)
            if let bits = quantization.bits { tags.append("\(bits)-bit") }
        }
        self.tags = tags
        siblings = snapshot.manifest.files.map { file in
            HubSibling(
                rfilename: file.path.value, size: file.size, blobId: file.digest.hex,
                lfs: snapshot.manifest.isWeightFile(file)
                    ? HubSibling.LFS(sha256: file.digest.hex, size: file.size, pointerSize: HubLFS.pointerSize(file))
                    : nil)
        }
    }
}

struct HubSibling: Encodable {
    struct LFS: Encodable {
        let sha256: String
        let size: Int64
        let pointerSize: Int
    }

    let rfilename: String
    let size: Int64
    let blobId: String
    let lfs: LFS?
}

/// One entry of `GET /hf/api/models/{repo}/tree/{rev}[/{path}]`.
struct HubTreeEntry: Encodable {
    struct LFS: Encodable {
        let oid: String
        let size: Int64
        let pointerSize: Int
    }

    let type: String
    let oid: String
    let size: Int64
    let path: String
    let lfs: LFS?
}

enum HubLFS {
    /// The size of the Git LFS pointer file that would stand for `file` in a Git repository.
    static func pointerSize(_ file: ModelRegistryCore.ManifestFile) -> Int {
        "version https://git-lfs.github.com/spec/v1\noid sha256:\(file.digest.hex)\nsize \(file.size)\n".utf8.count
    }
}
