import HTTPTypes
import ModelRegistryCore

/// What a path under `/v2/` asks for. The repository name is what precedes the last resource word, read
/// from the right as CNCF distribution reads it, so a model name may end in any of those words.
enum OCIRequest: Equatable {
    /// `/v2/`: the API's base, which tells a client whether it may go on and how to authenticate.
    case base
    /// `/v2/token`: the token service of the `Bearer` challenge.
    case token
    case manifest(ModelName, reference: String)
    case blob(ModelName, Digest)
    case tags(ModelName)
    case referrers(ModelName, Digest)
    /// `/v2/<name>/blobs/uploads/`: starts an upload, or stores a blob in one request.
    case uploads(ModelName)
    /// `/v2/<name>/blobs/uploads/<id>`: an upload in progress.
    case upload(ModelName, UploadID)

    /// What a path asks for by its words alone, before its name, digest or upload id are read: a path whose id
    /// is malformed still answers its resource's methods, with a 404.
    enum Shape {
        case base, token, manifest, blob, tags, referrers, uploads, upload

        init?(_ segments: [String]) {
            let count = segments.count
            if count == 0 {
                self = .base
            } else if segments == ["token"] {
                self = .token
            } else if count >= 4, segments[count - 3] == "blobs", segments[count - 2] == "uploads" {
                self = .upload
            } else if count >= 3, segments[count - 2] == "blobs", segments[count - 1] == "uploads" {
                self = .uploads
            } else if count >= 3, segments[count - 2] == "tags", segments[count - 1] == "list" {
                self = .tags
            } else if count >= 3, segments[count - 2] == "manifests" {
                self = .manifest
            } else if count >= 3, segments[count - 2] == "blobs" {
                self = .blob
            } else if count >= 3, segments[count - 2] == "referrers" {
                self = .referrers
            } else {
                return nil
            }
        }

        /// The path's template, as metrics label requests.
        var template: String {
            switch self {
            case .base: "/v2/"
            case .token: "/v2/token"
            case .manifest: "/v2/{name}/manifests/{reference}"
            case .blob: "/v2/{name}/blobs/{digest}"
            case .tags: "/v2/{name}/tags/list"
            case .referrers: "/v2/{name}/referrers/{digest}"
            case .uploads: "/v2/{name}/blobs/uploads/"
            case .upload: "/v2/{name}/blobs/uploads/{id}"
            }
        }

        /// The methods the path answers.
        var methods: [HTTPRequest.Method] {
            switch self {
            case .token: [.get, .head, .post]
            case .manifest: [.get, .head, .put]
            case .base, .blob, .tags, .referrers: [.get, .head]
            case .uploads: [.post]
            case .upload: [.get, .head, .patch, .put, .delete]
            }
        }
    }

    var shape: Shape {
        switch self {
        case .base: .base
        case .token: .token
        case .manifest: .manifest
        case .blob: .blob
        case .tags: .tags
        case .referrers: .referrers
        case .uploads: .uploads
        case .upload: .upload
        }
    }

    var template: String { shape.template }
    var methods: [HTTPRequest.Method] { shape.methods }

    /// A malformed name or digest is the registry's error (NAME_INVALID, DIGEST_INVALID in the spec's terms).
    init(segments: [String]) throws {
        guard let shape = Shape(segments) else {
            throw OCIError(
                .notFound, .unsupported,
                "/v2/\(segments.joined(separator: "/").prefix(200)) is no path of the OCI Distribution API")
        }
        let count = segments.count
        switch shape {
        case .base: self = .base
        case .token: self = .token
        case .upload:
            let id: UploadID
            do {
                id = try UploadID(segments[count - 1])
            } catch {
                throw OCIError(.notFound, .blobUploadUnknown, error.message)
            }
            self = .upload(try Self.name(segments[..<(count - 3)]), id)
        case .uploads: self = .uploads(try Self.name(segments[..<(count - 2)]))
        case .tags: self = .tags(try Self.name(segments[..<(count - 2)]))
        case .manifest: self = .manifest(try Self.name(segments[..<(count - 2)]), reference: segments[count - 1])
        case .blob: self = .blob(try Self.name(segments[..<(count - 2)]), try Digest(parsing: segments[count - 1]))
        case .referrers:
            self = .referrers(try Self.name(segments[..<(count - 2)]), try Digest(parsing: segments[count - 1]))
        }
    }

    private static func name(_ parts: ArraySlice<String>) throws -> ModelName {
        try ModelName(parts.joined(separator: "/"))
    }
}
