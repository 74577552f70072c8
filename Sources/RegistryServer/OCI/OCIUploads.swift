import HTTPTypes
import Hummingbird
import ModelRegistryCore

/// Blob uploads of the OCI Distribution API, on the registry's own resumable uploads: a blob in one POST
/// (`?digest=`), a cross-repository mount (`?mount=&from=`; every stored blob mounts), or a session of chunks
/// (`PATCH` with `Content-Range`, each starting where the last ended, else 416) or of one stream (`PATCH`
/// without it), finished by `PUT ?digest=`. The bytes are hashed as they arrive and kept across restarts and
/// replicas, as every upload is.
struct OCIUploads {
    let registry: Registry

    /// `POST /v2/<name>/blobs/uploads/`.
    func start(_ request: Request, _ model: ModelName) async throws -> Response {
        let query = request.uri.queryParameters
        // Both are checked before either is used: a malformed one is the client's mistake even when unused.
        let mount = try query.get("mount").map { try Digest(parsing: $0) }
        let expected = try query.get("digest").map { try Digest(parsing: $0) }
        if let mount {
            // Blobs are the registry's, not a repository's: a stored one mounts anywhere; else a session starts.
            if try await registry.blobs.info(mount) != nil { return Self.created(model, mount) }
        } else if let expected {
            let info = try await BlobIntake(registry: registry).store(request.body, expecting: expected)
            return Self.created(model, info.digest)
        }
        let started = try await registry.blobs.startUpload(expecting: nil)
        return Self.session(model, started.id, offset: started.offset, status: .accepted)
    }

    /// `GET /v2/<name>/blobs/uploads/<id>`: where the upload stands.
    func status(_ model: ModelName, _ id: UploadID) async throws -> Response {
        Self.session(model, id, offset: try await offset(id), status: .noContent)
    }

    /// `PATCH /v2/<name>/blobs/uploads/<id>`: a chunk at the offset its `Content-Range` names, or a stream.
    func append(_ request: Request, _ model: ModelName, _ id: UploadID) async throws -> Response {
        let offset = try await offset(id)
        try Self.checkRange(request, at: offset, id: id, model: model)
        let reached = try await receiving(model, id) {
            try await BlobIntake(registry: registry).append(id, at: offset, request.body)
        }
        return Self.session(model, id, offset: reached, status: .accepted)
    }

    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the last bytes, if any, then the blob.
    func finish(_ request: Request, _ model: ModelName, _ id: UploadID) async throws -> Response {
        guard let text = request.uri.queryParameters.get("digest") else {
            throw OCIError(
                .badRequest, .digestInvalid, "finishing an upload needs ?digest=sha256:<hex> of all its bytes")
        }
        let digest = try Digest(parsing: text)
        let intake = BlobIntake(registry: registry)
        let offset = try await offset(id)
        try Self.checkRange(request, at: offset, id: id, model: model)
        _ = try await receiving(model, id) { try await intake.append(id, at: offset, request.body) }
        let info = try await receiving(model, id) { try await intake.commit(id, expecting: digest) }
        return Self.created(model, info.digest)
    }

    /// `DELETE /v2/<name>/blobs/uploads/<id>`.
    func cancel(_ model: ModelName, _ id: UploadID) async throws -> Response {
        try await receiving(model, id) { try await registry.blobs.cancelUpload(id) }
        return Response(status: .noContent, headers: [.dockerDistributionAPIVersion: "registry/2.0"])
    }

    private func offset(_ id: UploadID) async throws -> Int64 {
        do {
            return try await registry.blobs.uploadOffset(id)
        } catch {
            guard error.code == .notFound else { throw error }
            throw OCIError(
                .notFound, .blobUploadUnknown,
                "upload \(id) is unknown: it was finished or cancelled, or removed after a day without bytes")
        }
    }

    /// Runs a step of an upload, telling an upload that is gone or taken by another request in the spec's terms.
    private func receiving<T>(_ model: ModelName, _ id: UploadID, _ step: () async throws -> T) async throws -> T {
        do {
            return try await step()
        } catch let error as RegistryError where error.code == .notFound {
            throw OCIError(.notFound, .blobUploadUnknown, error.message)
        } catch let error as RegistryError where error.code == .uploadOffsetMismatch || error.code == .uploadBusy {
            var answer = OCIError(.rangeNotSatisfiable, .blobUploadInvalid, error.message)
            let offset = (try? await registry.blobs.uploadOffset(id)) ?? 0
            answer.headers = Self.sessionHeaders(model, id, offset: offset)
            throw answer
        } catch let error as RegistryError where error.code == .digestMismatch {
            throw OCIError(.badRequest, .digestInvalid, error.message)
        }
    }

    /// A chunk's `Content-Range` (`START-END`, inclusive) must start where the upload stands and agree with its
    /// `Content-Length`: chunks arrive in order.
    private static func checkRange(_ request: Request, at offset: Int64, id: UploadID, model: ModelName) throws {
        guard let text = request.headers[.contentRange] else { return }
        let bounds = text.replacingOccurrences(of: "bytes ", with: "").split(separator: "-", maxSplits: 1)
        guard bounds.count == 2, let start = Int64(bounds[0]), let end = Int64(bounds[1].split(separator: "/")[0]),
            start >= 0, end >= start - 1
        else {
            throw OCIError(.badRequest, .blobUploadInvalid, "Content-Range '\(text.prefix(60))' is not START-END")
        }
        var refusal: String?
        if start != offset {
            refusal =
                "the chunk starts at \(start) but the upload holds \(offset) bytes: send the chunk that starts there"
        } else if let length = request.headers[.contentLength].flatMap({ Int64($0) }), length != end - start + 1 {
            refusal = "Content-Range \(start)-\(end) is \(end - start + 1) bytes but Content-Length is \(length)"
        }
        if let refusal {
            var error = OCIError(.rangeNotSatisfiable, .blobUploadInvalid, refusal)
            error.headers = sessionHeaders(model, id, offset: offset)
            throw error
        }
    }

    /// Where a session goes on, and the bytes it holds (`Range: 0-LAST`, `0-0` when it holds none).
    private static func sessionHeaders(_ model: ModelName, _ id: UploadID, offset: Int64) -> HTTPFields {
        [
            .location: "/v2/\(model)/blobs/uploads/\(id)", .range: "0-\(max(offset - 1, 0))",
            .dockerUploadUUID: id.value, .dockerDistributionAPIVersion: "registry/2.0",
        ]
    }

    private static func session(_ model: ModelName, _ id: UploadID, offset: Int64, status: HTTPResponse.Status)
        -> Response
    {
        var headers = sessionHeaders(model, id, offset: offset)
        headers[.contentLength] = "0"
        return Response(status: status, headers: headers)
    }

    private static func created(_ model: ModelName, _ digest: Digest) -> Response {
        Response(
            status: .created,
            headers: [
                .location: "/v2/\(model)/blobs/\(digest)", .dockerContentDigest: digest.description,
                .contentLength: "0", .dockerDistributionAPIVersion: "registry/2.0",
            ])
    }
}

extension HTTPField.Name {
    static let dockerUploadUUID = Self("Docker-Upload-UUID")!
}
