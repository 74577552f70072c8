import CacheImage
import Hummingbird
import ModelRegistryCore
import RegistryAPI

/// Cache images under `/v1/models/{name}/images/{manifest digest}[/{layout}]`: the archive streamed from
/// the blobs with `Range`, and the build state of each layout.
extension ModelRoutes {
    func imageStatus(_ name: ModelName, _ manifest: Digest) async throws -> CacheImageStatusList {
        let (stored, _) = try await storedManifest(name, manifest)
        let decoded = try stored.decoded()
        let statuses = try await registry.images.status(name, manifest) { layout in
            CacheImage(model: name, manifestDigest: manifest, manifest: decoded, layout: layout).size
        }
        return CacheImageStatusList(model: name, manifest: manifest, images: statuses)
    }

    func image(_ request: Request, _ name: ModelName, _ manifest: Digest, _ layout: CacheImageLayout, sendBody: Bool)
        async throws -> Response
    {
        let (stored, decoded) = try await storedManifest(name, manifest)
        let image = CacheImage(model: name, manifestDigest: stored.digest, manifest: decoded, layout: layout)
        var headers: HTTPFields = [
            .acceptRanges: "bytes",
            .contentType: "application/x-tar",
            .modelregDigest: stored.digest.description,
        ]
        // Served whether or not the image is built yet: the bytes are the same; only the ETag waits.
        if let digest = try await registry.images.digest(name, manifest, layout) {
            headers[.eTag] = "\"\(digest)\""
            headers[.modelregImageState] = CacheImageStatus.State.ready.rawValue
        } else {
            headers[.modelregImageState] = CacheImageStatus.State.pending.rawValue
            await registry.images.enqueue(name, manifest)
        }
        for file in decoded.files where try await registry.blobs.info(file.digest) == nil {
            throw RegistryError(
                .integrity,
                "the registry lacks blob \(file.digest) of \(file.path): the image cannot be served; run `modelreg verify`"
            )
        }
        var status = HTTPResponse.Status.ok
        var range = 0..<image.size
        switch ByteRange.parse(request.headers[.range], size: image.size) {
        case .whole:
            break
        case .partial(let partial):
            status = .partialContent
            range = partial.start..<(partial.end + 1)
            headers[.contentRange] = "bytes \(partial.start)-\(partial.end)/\(image.size)"
        case .unsatisfiable:
            var response = ErrorMiddleware.errorResponse(
                RegistryError(
                    .rangeNotSatisfiable,
                    "range \(request.headers[.range] ?? "") is outside the image's \(image.size) bytes")
            )
            response.headers[.contentRange] = "bytes */\(image.size)"
            return response
        }
        headers[.contentLength] = String(range.count)
        guard sendBody, !range.isEmpty else { return Response(status: status, headers: headers, body: ResponseBody()) }
        let blobs = registry.blobs
        let metrics = registry.metrics
        let served = range
        let body = ResponseBody(contentLength: served.count) { writer in
            var chunks = CacheImageChunks(image, range: served, blobs: blobs)
            while let chunk = try await chunks.next() {
                try await writer.write(chunk)
                metrics.blobBytesSent(chunk.readableBytes)
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }

    private func storedManifest(_ name: ModelName, _ manifest: Digest) async throws -> (StoredManifest, Manifest) {
        guard let stored = try await registry.metadata.manifest(name, digest: manifest) else {
            throw RegistryError(.notFound, "manifest \(name)@\(manifest) not found")
        }
        return (stored, try stored.decoded())
    }
}
