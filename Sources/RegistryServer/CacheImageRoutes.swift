import CacheImage
import Hummingbird
import ModelRegistryCore
import NIOCore
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

    func image(
        _ request: Request, _ context: RegistryRequestContext, _ name: ModelName, _ manifest: Digest,
        _ layout: CacheImageLayout, sendBody: Bool
    ) async throws -> Response {
        let (stored, decoded) = try await storedManifest(name, manifest)
        let image = CacheImage(model: name, manifestDigest: stored.digest, manifest: decoded, layout: layout)
        var headers: HTTPFields = [
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
        do {
            return try await CacheImageDownload(registry: registry, channel: context.channel).response(
                image, of: decoded, request: request, headers: headers, sendBody: sendBody)
        } catch let outside as RangeOutsideImage {
            var response = ErrorMiddleware.errorResponse(outside.registryError)
            response.headers[.contentRange] = "bytes */\(outside.size)"
            return response
        }
    }

    private func storedManifest(_ name: ModelName, _ manifest: Digest) async throws -> (StoredManifest, Manifest) {
        guard let stored = try await registry.metadata.manifest(name, digest: manifest) else {
            throw RegistryError(.notFound, "manifest \(name)@\(manifest) not found")
        }
        return (stored, try stored.decoded())
    }
}

/// A cache image's bytes as the answer to a download, for every route that serves one (`/v1/.../images`, the
/// OCI runnable image's layer): whole or the single range asked for, streamed from the blobs behind it.
struct CacheImageDownload {
    let registry: Registry
    /// The request's connection: the blobs' bytes go to its socket with `sendfile` when it can.
    let channel: any Channel

    func response(
        _ image: CacheImage, of manifest: Manifest, request: Request, headers routeHeaders: HTTPFields, sendBody: Bool
    ) async throws -> Response {
        for file in manifest.files where try await registry.blobs.info(file.digest) == nil {
            throw RegistryError(
                .integrity,
                "the registry lacks blob \(file.digest) of \(file.path): the image cannot be served; run `modelreg verify`"
            )
        }
        var headers = routeHeaders
        headers[.acceptRanges] = "bytes"
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
            throw RangeOutsideImage(range: request.headers[.range] ?? "", size: image.size)
        }
        headers[.contentLength] = String(range.count)
        guard sendBody, !range.isEmpty else { return Response(status: status, headers: headers, body: ResponseBody()) }
        let blobs = registry.blobs
        let metrics = registry.metrics
        let parts = image.parts(in: range)
        let files = await FileRegionBodies(of: channel)
        let body = ResponseBody(contentLength: range.count) { writer in
            for part in parts {
                switch part {
                case .bytes(let bytes):
                    try await writer.write(ByteBuffer(bytes: bytes))
                    metrics.blobBytesSent(bytes.count)
                case .blob(let digest, let range):
                    if let files, let region = try await FileRegionBodies.region(digest, range, in: blobs) {
                        try await files.send(region, through: &writer)
                    } else {
                        for try await chunk in try await blobs.read(digest, range: range) {
                            try await writer.write(chunk)
                        }
                    }
                    metrics.blobBytesSent(Int(range.count))
                }
            }
            try await writer.finish(nil)
        }
        return Response(status: status, headers: headers, body: body)
    }
}

/// A `Range` outside an image: each route answers it in its own error form, with `Content-Range: bytes */SIZE`.
struct RangeOutsideImage: Error {
    let range: String
    let size: Int64

    var registryError: RegistryError {
        RegistryError(.rangeNotSatisfiable, "range \(range.prefix(100)) is outside the image's \(size) bytes")
    }
}
