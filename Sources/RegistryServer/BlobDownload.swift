import Hummingbird
import ModelRegistryCore
import NIOCore

/// A blob's bytes as the answer to a download, for every route that serves them (`/v1/blobs`, the Hub's
/// `resolve`): a `307` to the object store when the registry redirects downloads, else the bytes, whole or the
/// single range asked for. `headers` are the route's own (its ETag, digest headers); they go on every answer,
/// the redirect and a `416` included.
struct BlobDownload {
    let registry: Registry
    /// The request's connection: a blob file goes to its socket with `sendfile` when the connection can.
    let channel: any Channel

    /// With `redirectHead`, a HEAD is redirected too, as the Hub answers a weight file's HEAD; else a HEAD
    /// answers the status and length a GET from the registry would.
    func response(
        _ digest: Digest, size: Int64, request: Request, headers routeHeaders: HTTPFields, sendBody: Bool,
        redirectHead: Bool = false
    ) async throws -> Response {
        var headers = routeHeaders
        headers[.acceptRanges] = "bytes"
        headers[.contentType] = "application/octet-stream"
        // The bytes come from the object store, not through this replica; the client still checks them.
        if sendBody || redirectHead, let expiry = registry.blobRedirectExpiry,
            let url = try await registry.blobs.directDownloadURL(digest, validFor: expiry)
        {
            headers[.location] = url.absoluteString
            headers[.cacheControl] = "no-store"
            registry.metrics.blobRedirected()
            return Response(status: .temporaryRedirect, headers: headers, body: ResponseBody())
        }
        let parsed = ByteRange.parse(request.headers[.range], size: size)
        if parsed == .unsatisfiable {
            var response = ErrorMiddleware.errorResponse(
                RegistryError(
                    .rangeNotSatisfiable,
                    "range \(request.headers[.range] ?? "") is outside the blob's \(size) bytes")
            )
            response.headers[.contentRange] = "bytes */\(size)"
            for field in routeHeaders { response.headers[field.name] = field.value }
            return response
        }
        var status = HTTPResponse.Status.ok
        var range = ByteRange(start: 0, end: size - 1)
        if case .partial(let partial) = parsed {
            status = .partialContent
            range = partial
            headers[.contentRange] = "bytes \(partial.start)-\(partial.end)/\(size)"
        }
        let length = max(0, range.length)
        headers[.contentLength] = String(length)
        guard sendBody, length > 0 else { return Response(status: status, headers: headers, body: ResponseBody()) }
        let metrics = registry.metrics
        let speeds = registry.downloadSpeeds
        let stored = range.start..<(range.end + 1)
        // The store first: one whose blobs are not local files answers without a trip to the event loop.
        if let region = try await FileRegionBodies.region(digest, stored, in: registry.blobs),
            let files = await FileRegionBodies(of: channel)
        {
            let body = ResponseBody(contentLength: Int(length)) { writer in
                let started = ContinuousClock.now
                try await files.send(region, through: &writer)
                try await writer.finish(nil)
                metrics.blobBytesSent(Int(length))
                speeds.record(bytes: length, duration: ContinuousClock.now - started)
            }
            return Response(status: status, headers: headers, body: body)
        }
        let bytes = try await registry.blobs.read(digest, range: stored)
        let body = ResponseBody(contentLength: Int(length)) { writer in
            let started = ContinuousClock.now
            for try await chunk in bytes {
                try await writer.write(chunk)
                metrics.blobBytesSent(chunk.readableBytes)
            }
            try await writer.finish(nil)
            speeds.record(bytes: length, duration: ContinuousClock.now - started)
        }
        return Response(status: status, headers: headers, body: body)
    }
}
