import Hummingbird
import ModelRegistryCore
import RegistryAPI

/// `HEAD|GET|PUT /v1/blobs/{digest}` and the resumable uploads under `/v1/uploads`.
struct BlobRoutes {
    let registry: Registry

    var routes: [Route] {
        [
            Route(.head, "/v1/blobs/:digest") { request, context in try await blob(request, context, sendBody: false) },
            Route(.get, "/v1/blobs/:digest") { request, context in try await blob(request, context, sendBody: true) },
            Route(.put, "/v1/blobs/:digest") { request, context in try await putBlob(request, context) },
            Route(.post, "/v1/uploads") { request, context in try await createUpload(request, context) },
            Route(.head, "/v1/uploads/:id") { request, context in
                try await uploadStatus(request, context, sendBody: false)
            },
            Route(.get, "/v1/uploads/:id") { request, context in
                try await uploadStatus(request, context, sendBody: true)
            },
            Route(.patch, "/v1/uploads/:id") { request, context in try await appendUpload(request, context) },
            Route(.put, "/v1/uploads/:id") { request, context in try await finishUpload(request, context) },
            Route(.delete, "/v1/uploads/:id") { request, context in try await cancelUpload(request, context) },
        ]
    }

    private func digest(_ context: RegistryRequestContext) throws -> Digest {
        try Digest(parsing: context.pathParameter("digest"))
    }

    private func uploadID(_ context: RegistryRequestContext) throws -> UploadID {
        try UploadID(context.pathParameter("id"))
    }

    private func blob(_ request: Request, _ context: RegistryRequestContext, sendBody: Bool) async throws -> Response {
        try registry.authorize(context, .read)
        let digest = try digest(context)
        guard let size = try await registry.blobs.info(digest)?.size else { throw RegistryError.notFoundBlob(digest) }
        let headers: HTTPFields = [.eTag: "\"\(digest)\"", .modelregDigest: digest.description]
        return try await BlobDownload(registry: registry, channel: context.channel).response(
            digest, size: size, request: request, headers: headers, sendBody: sendBody)
    }

    /// One-request upload: the body must hash to the digest in the path.
    private func putBlob(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try registry.authorize(context, .write)
        let digest = try digest(context)
        return committed(try await BlobIntake(registry: registry).store(request.body, expecting: digest))
    }

    private func createUpload(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try registry.authorize(context, .write)
        let expected = try request.uri.queryParameters.get("digest").map { text throws(RegistryError) in
            try Digest(parsing: text)
        }
        let started = try await registry.blobs.startUpload(expecting: expected)
        let digestFirst = expected == nil && registry.blobs.copiesUploadsWithoutDigest
        return JSONBody.response(
            UploadStatus(id: started.id.value, offset: started.offset, digestFirst: digestFirst ? true : nil),
            status: .accepted,
            headers: [.location: "/v1/uploads/\(started.id)", .uploadOffset: String(started.offset)]
        )
    }

    private func uploadStatus(_ request: Request, _ context: RegistryRequestContext, sendBody: Bool) async throws
        -> Response
    {
        try registry.authorize(context, .write)
        let id = try uploadID(context)
        let offset = try await registry.blobs.uploadOffset(id)
        let headers: HTTPFields = [.location: "/v1/uploads/\(id)", .uploadOffset: String(offset)]
        guard sendBody else { return Response(status: .noContent, headers: headers) }
        return JSONBody.response(UploadStatus(id: id.value, offset: offset), headers: headers)
    }

    private func appendUpload(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try registry.authorize(context, .write)
        let id = try uploadID(context)
        guard let text = request.headers[.uploadOffset] else {
            throw RegistryError(
                .invalidRequest, "PATCH needs an Upload-Offset header: the offset GET /v1/uploads/\(id) reports")
        }
        guard let offset = Int64(text), offset >= 0 else {
            throw RegistryError(.invalidRequest, "Upload-Offset '\(text.prefix(40))' is not a non-negative integer")
        }
        let newOffset = try await BlobIntake(registry: registry).append(id, at: offset, request.body)
        return JSONBody.response(
            UploadStatus(id: id.value, offset: newOffset),
            status: .accepted,
            headers: [.location: "/v1/uploads/\(id)", .uploadOffset: String(newOffset)]
        )
    }

    /// `PUT /v1/uploads/{id}?digest=…`: appends any final bytes in the body, then commits.
    private func finishUpload(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try registry.authorize(context, .write)
        let id = try uploadID(context)
        guard let text = request.uri.queryParameters.get("digest") else {
            throw RegistryError(.invalidRequest, "finishing an upload needs ?digest=sha256:<hex> of all its bytes")
        }
        let digest = try Digest(parsing: text)
        let intake = BlobIntake(registry: registry)
        let offset = try await registry.blobs.uploadOffset(id)
        _ = try await intake.append(id, at: offset, request.body)
        return committed(try await intake.commit(id, expecting: digest))
    }

    private func cancelUpload(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        try registry.authorize(context, .write)
        try await registry.blobs.cancelUpload(try uploadID(context))
        return Response(status: .noContent)
    }

    private func committed(_ info: BlobInfo) -> Response {
        JSONBody.response(
            CommittedBlob(digest: info.digest, size: info.size),
            status: .created,
            headers: [.location: "/v1/blobs/\(info.digest)", .modelregDigest: info.digest.description]
        )
    }
}

/// Blob bytes arriving in requests, for every API that takes them (`/v1/blobs`, `/v1/uploads`, the OCI API's
/// uploads): streamed into the blob store, counted, and recorded in the metadata store once whole.
struct BlobIntake {
    let registry: Registry

    /// One request's body as a whole blob that must hash to `digest`.
    func store(_ body: RequestBody, expecting digest: Digest) async throws -> BlobInfo {
        let existed = try await registry.blobs.info(digest) != nil
        return try await recorded(existed: existed) {
            try await registry.blobs.put(counted(body), expecting: digest)
        }
    }

    /// Appends a body to an upload at `offset`; the new offset.
    func append(_ id: UploadID, at offset: Int64, _ body: RequestBody) async throws -> Int64 {
        try await registry.blobs.append(id, at: offset, counted(body))
    }

    /// Commits an upload whose bytes must hash to `digest`.
    func commit(_ id: UploadID, expecting digest: Digest) async throws -> BlobInfo {
        let existed = try await registry.blobs.info(digest) != nil
        return try await recorded(existed: existed) {
            try await registry.blobs.commitUpload(id, expecting: digest)
        }
    }

    /// The request body, counted into the received-bytes metric as it streams by.
    private func counted(_ body: RequestBody) -> some AsyncSequence<ByteBuffer, any Error> & Sendable {
        let metrics = registry.metrics
        return body.map { buffer in
            metrics.blobBytesReceived(buffer.readableBytes)
            return buffer
        }
    }

    /// Runs a store or commit, counting a digest mismatch, and records the blob it stored.
    private func recorded(existed: Bool, _ store: () async throws -> BlobInfo) async throws -> BlobInfo {
        let info: BlobInfo
        do {
            info = try await store()
        } catch let error as RegistryError where error.code == .digestMismatch {
            registry.metrics.digestMismatch()
            throw error
        }
        try await registry.metadata.recordBlob(info)
        registry.metrics.blobCommitted(deduplicated: existed)
        return info
    }
}

extension RegistryError {
    static func notFoundBlob(_ digest: Digest) -> RegistryError {
        RegistryError(.notFound, "blob \(digest) not found")
    }
}
