import CacheImage
import Foundation
import HTTPTypes
import Hummingbird
import ModelRegistryCore
import OCIArtifacts

/// The OCI Distribution API under `/v2/`: every variant as a CNCF ModelPack artifact and as a runnable image,
/// tagged by its versions, aliases and `VERSION__VARIANT` (see `OCITags`), for skopeo, oras, container
/// runtimes (Kubernetes image volumes, KServe modelcars) and registry replication. Tokens and scopes are the
/// registry's, sent as a bearer token, as the password of `Basic` credentials, or through the token service
/// the `Bearer` challenge names.
struct OCIRoutes {
    let registry: Registry

    /// Tags a page of the tag listing when the client sets no `n`.
    static let defaultPageSize = 1000
    /// The most tags a page may ask for.
    static let maxPageSize = 100_000

    var routes: [Route] {
        [
            Route(.get, RouteTable.ociBase) { request, context in await answer(request, context, sendBody: true) },
            Route(.head, RouteTable.ociBase) { request, context in await answer(request, context, sendBody: false) },
            Route(.get, RouteTable.ociPaths) { request, context in await answer(request, context, sendBody: true) },
            Route(.head, RouteTable.ociPaths) { request, context in await answer(request, context, sendBody: false) },
            Route(.post, RouteTable.ociPaths) { request, context in await answerWrite(request, context) },
            Route(.patch, RouteTable.ociPaths) { request, context in await answerWrite(request, context) },
            Route(.put, RouteTable.ociPaths) { request, context in await answerWrite(request, context) },
            Route(.delete, RouteTable.ociPaths) { request, context in await answerWrite(request, context) },
        ]
    }

    private func answer(_ request: Request, _ context: RegistryRequestContext, sendBody: Bool) async -> Response {
        let response = await answering(request) {
            let ociRequest = try OCIRequest(segments: try Self.segments(context))
            if case .token = ociRequest { return try await TokenService(registry: registry).issue(request) }
            try authorize(request, context, ociRequest)
            switch ociRequest {
            case .base, .token:
                return JSONBody.response([String: String]()).withOCIHeaders(sendBody: sendBody)
            case .manifest(let model, let reference):
                return try await manifest(model, reference).response(sendBody: sendBody)
            case .blob(let model, let digest):
                return try await blob(request, context, model, digest, sendBody: sendBody)
            case .tags(let model):
                return try await tags(request, model).withOCIHeaders(sendBody: sendBody)
            case .referrers(let model, let digest):
                return try await referrers(request, model, digest).response(sendBody: sendBody)
            case .upload(let model, let id):
                try authorize(request, context, ociRequest, .write)
                return try await OCIUploads(registry: registry).status(model, id)
            case .uploads:
                var error = OCIError(.methodNotAllowed, .unsupported, "start an upload with POST")
                error.headers[.allow] = "POST"
                throw error
            }
        }
        return sendBody ? response : response.withOCIHeaders(sendBody: false)
    }

    /// Tokens (POST of the OAuth2 form), uploads, and anything else a path does not answer (405 with `Allow`).
    private func answerWrite(_ request: Request, _ context: RegistryRequestContext) async -> Response {
        await answering(request) {
            let ociRequest = try OCIRequest(segments: try Self.segments(context))
            switch (request.method, ociRequest) {
            case (.post, .token):
                return try await TokenService(registry: registry).issue(oauth: request, context: context)
            case (.put, .manifest(let model, let reference)):
                try authorize(request, context, ociRequest, .write)
                return try await OCIManifestPush(registry: registry).put(request, context, model, reference)
            case (.post, .uploads(let model)):
                try authorize(request, context, ociRequest, .write)
                return try await OCIUploads(registry: registry).start(request, model)
            case (.patch, .upload(let model, let id)):
                try authorize(request, context, ociRequest, .write)
                return try await OCIUploads(registry: registry).append(request, model, id)
            case (.put, .upload(let model, let id)):
                try authorize(request, context, ociRequest, .write)
                return try await OCIUploads(registry: registry).finish(request, model, id)
            case (.delete, .upload(let model, let id)):
                try authorize(request, context, ociRequest, .write)
                return try await OCIUploads(registry: registry).cancel(model, id)
            default:
                var error = OCIError(
                    .methodNotAllowed, .unsupported,
                    "\(request.method) \(request.uri.path.prefix(200)) is not served: it answers \(ociRequest.methods.map(\.rawValue).joined(separator: ", "))"
                )
                error.headers[.allow] = ociRequest.methods.map(\.rawValue).joined(separator: ", ")
                throw error
            }
        }
    }

    /// Runs a handler, answering every error in the spec's form.
    private func answering(_ request: Request, _ handler: () async throws -> Response) async -> Response {
        do {
            return try await handler()
        } catch let error as OCIError {
            return error.response
        } catch let error as RegistryError {
            return OCIError(error).response
        } catch let outside as RangeOutsideImage {
            var error = OCIError(.rangeNotSatisfiable, .rangeInvalid, outside.registryError.message)
            error.headers[.contentRange] = "bytes */\(outside.size)"
            return error.response
        } catch {
            if let full = RegistryError.insufficientStorage(from: error) { return OCIError(full).response }
            return OCIError(.internalServerError, .unknown, "internal error: \(error)").response
        }
    }

    /// The path below `/v2/`, each part percent-decoded.
    private static func segments(_ context: RegistryRequestContext) throws(OCIError) -> [String] {
        var segments: [String] = []
        for segment in context.parameters.getCatchAll() {
            guard let decoded = String(segment).removingPercentEncoding else {
                throw OCIError(.badRequest, .unsupported, "malformed percent-encoding in \(segment.prefix(200))")
            }
            segments.append(decoded)
        }
        return segments
    }

    /// Reads need a `read` token (none with `--anonymous-read`). A client without one is told where the token
    /// service is, as CNCF distribution's token authentication tells it.
    private func authorize(
        _ request: Request, _ context: RegistryRequestContext, _ ociRequest: OCIRequest, _ scope: TokenScope = .read
    ) throws(OCIError) {
        do {
            try registry.authorize(context, scope)
        } catch {
            let actions = scope == .read ? "pull" : "pull,push"
            throw challenge(error, request, scope: ociRequest.model.map { "repository:\($0):\(actions)" })
        }
    }

    /// An authorization error; an unauthorized one names the token service and the scope to ask it for.
    private func challenge(_ error: RegistryError, _ request: Request, scope: String?) -> OCIError {
        var answer = OCIError(error)
        guard error.code == .unauthorized else { return answer }
        var value = "Bearer realm=\"\(registry.origin(of: request))/v2/token\",service=\"\(TokenService.name)\""
        if let scope { value += ",scope=\"\(scope)\"" }
        answer.headers[.wwwAuthenticate] = value
        return answer
    }

    /// The repository of a model, kept until the model changes.
    func repository(_ model: ModelName) async throws -> OCIRepository {
        try await registry.ociRepositories.value(
            for: model, at: try await registry.metadata.changeCount(of: model), cost: \.cost
        ) {
            try await OCIRepository.read(model, from: registry.metadata)
        }
    }

    /// The repository of a model; nil when there is no such model.
    private func existingRepository(_ model: ModelName) async throws -> OCIRepository? {
        do {
            return try await repository(model)
        } catch let error as OCIError where error.code == .nameUnknown {
            return nil
        }
    }

    /// A manifest by tag or digest: a variant's ModelPack artifact, or the image index of its runnable image
    /// (a tag followed by `__modelcar`) and that index's manifests.
    private func manifest(_ model: ModelName, _ reference: String) async throws -> RenderedResponse {
        let repository = try await repository(model)
        if reference.hasPrefix(Digest.prefix) {
            let digest = try Digest(parsing: reference)
            if let variant = repository.variants.first(where: { $0.artifact.manifest.digest == digest }) {
                return Self.rendered(variant.artifact.manifest)
            }
            if let referrer = repository.referrers.first(where: { $0.document.digest == digest }) {
                return Self.rendered(referrer.document)
            }
            for (_, image) in try await runnableImages(repository) {
                if let document = ([image.index] + image.manifests).first(where: { $0.digest == digest }) {
                    return Self.rendered(document)
                }
            }
            throw OCIError.manifestUnknown(model, reference)
        }
        guard OCITags.isValid(reference) else {
            throw OCIError(
                .notFound, .manifestUnknown,
                "'\(reference.prefix(140))' is neither a tag ([A-Za-z0-9_][A-Za-z0-9._-]{0,127}) nor a digest")
        }
        if let variant = repository.variant(tagged: reference) {
            return Self.rendered(variant.artifact.manifest)
        }
        if reference.hasSuffix(OCITags.runnableImageSuffix),
            let variant = repository.variant(tagged: String(reference.dropLast(OCITags.runnableImageSuffix.count)))
        {
            guard let layer = try await registry.images.digest(model, variant.manifestDigest, .models) else {
                await registry.images.enqueue(model, variant.manifestDigest)
                throw OCIError(
                    .notFound, .manifestUnknown,
                    "the runnable image of \(model):\(reference) is being built (its \(variant.layerImage.size)-byte layer is hashed once): retry in a minute"
                )
            }
            return Self.rendered(variant.runnableImage(layer: layer).index)
        }
        throw OCIError.manifestUnknown(model, reference)
    }

    /// The runnable images whose layer is hashed, by variant.
    func runnableImages(_ repository: OCIRepository) async throws -> [(
        OCIRepository.Variant, RunnableModelImage
    )] {
        var images: [(OCIRepository.Variant, RunnableModelImage)] = []
        for variant in repository.variants {
            if let layer = try await registry.images.digest(repository.model, variant.manifestDigest, .models) {
                images.append((variant, variant.runnableImage(layer: layer)))
            }
        }
        return images
    }

    private static func rendered(_ document: ManifestDocument) -> RenderedResponse {
        RenderedResponse(
            status: .ok,
            headers: [
                .contentType: document.mediaType, .dockerContentDigest: document.digest.description,
                .eTag: "\"\(document.digest)\"", .dockerDistributionAPIVersion: "registry/2.0",
            ],
            body: ByteBuffer(bytes: document.bytes))
    }

    /// A blob: a stored file (a raw layer), a generated config, or a runnable image's layer, streamed from the
    /// blobs behind it.
    private func blob(
        _ request: Request, _ context: RegistryRequestContext, _ model: ModelName, _ digest: Digest, sendBody: Bool
    ) async throws
        -> Response
    {
        let headers: HTTPFields = [
            .dockerContentDigest: digest.description, .eTag: "\"\(digest)\"",
            .dockerDistributionAPIVersion: "registry/2.0",
        ]
        if let info = try await registry.blobs.info(digest) {
            return try await BlobDownload(registry: registry, channel: context.channel).response(
                digest, size: info.size, request: request, headers: headers, sendBody: sendBody)
        }
        guard let repository = try await existingRepository(model) else { throw OCIError.blobUnknown(model, digest) }
        if let variant = repository.variants.first(where: { $0.artifact.config.digest == digest }) {
            return Self.rendered(variant.artifact.config).response(sendBody: sendBody)
        }
        for (variant, image) in try await runnableImages(repository) {
            if let config = image.configs.first(where: { $0.digest == digest }) {
                return Self.rendered(config).response(sendBody: sendBody)
            }
            if image.layer == digest {
                var layerHeaders = headers
                layerHeaders[.contentType] = "application/octet-stream"
                return try await CacheImageDownload(registry: registry, channel: context.channel).response(
                    variant.layerImage, of: variant.manifest, request: request, headers: layerHeaders,
                    sendBody: sendBody)
            }
        }
        throw OCIError.blobUnknown(model, digest)
    }

    /// The model's tags in byte order, `n` at a time after `last`, with a `Link` to the next page.
    private func tags(_ request: Request, _ model: ModelName) async throws -> RenderedResponse {
        let repository = try await repository(model)
        let query = request.uri.queryParameters
        var pageSize = Self.defaultPageSize
        if let n = query.get("n") {
            guard let value = Int(n), (0...Self.maxPageSize).contains(value) else {
                throw OCIError(
                    .badRequest, .unsupported, "n=\(n.prefix(40)) is not a number of tags from 0 to \(Self.maxPageSize)"
                )
            }
            pageSize = value
        }
        var tags = repository.tags.sorted[...]
        if let last = query.get("last") {
            guard last.unicodeScalars.count <= OCITags.maxLength else {
                throw OCIError(
                    .badRequest, .unsupported, "last= is longer than a tag (\(OCITags.maxLength) characters)")
            }
            tags = tags.drop { !last.utf8.lexicographicallyPrecedes($0.utf8) }
        }
        let page = Array(tags.prefix(pageSize))
        var headers: HTTPFields = [:]
        if page.count < tags.count, let end = page.last {
            var components = URLComponents()
            components.queryItems = [
                URLQueryItem(name: "n", value: String(pageSize)), URLQueryItem(name: "last", value: end),
            ]
            headers[.link] = "</v2/\(model)/tags/list?\(components.percentEncodedQuery ?? "")>; rel=\"next\""
        }
        return JSONBody.rendered(TagList(name: model.value, tags: page), headers: headers)
    }

    struct TagList: Encodable {
        let name: String
        let tags: [String]
    }

    /// The manifests that name `digest` as their subject, as an image index, filtered by `artifactType` when
    /// asked (then `OCI-Filters-Applied` says so).
    private func referrers(_ request: Request, _ model: ModelName, _ digest: Digest) async throws -> RenderedResponse {
        let repository = try await repository(model)
        let types = request.uri.queryParameters.getAll("artifactType").map { String($0) }
        if let invalid = types.first(where: { !OCIMediaType.isValid($0) }) {
            throw OCIError(
                .badRequest, .unsupported,
                "artifactType '\(invalid.prefix(140))' is not a media type: give type/subtype, as \(OCIMediaType.modelManifest)"
            )
        }
        let descriptors = repository.referrers.filter { referrer in
            referrer.subject == digest && (types.isEmpty || types.contains(referrer.artifactType ?? ""))
        }.map { referrer in
            let manifest = try? JSONDecoder().decode(OCIImageManifest.self, from: Data(referrer.document.bytes))
            var descriptor = OCIDescriptor(referrer.document, artifactType: referrer.artifactType)
            descriptor.annotations = manifest?.annotations
            return descriptor
        }
        let index = ManifestDocument(
            encoding: OCIImageIndex(manifests: descriptors), mediaType: OCIMediaType.imageIndex)
        var headers: HTTPFields = [.contentType: OCIMediaType.imageIndex]
        if !types.isEmpty { headers[.ociFiltersApplied] = "artifactType" }
        return RenderedResponse(status: .ok, headers: headers, body: ByteBuffer(bytes: index.bytes))
    }
}

extension OCIRequest {
    /// The repository the request is about, if any.
    var model: ModelName? {
        switch self {
        case .base, .token: nil
        case .manifest(let model, _), .blob(let model, _), .tags(let model), .referrers(let model, _),
            .uploads(let model), .upload(let model, _):
            model
        }
    }
}

extension Response {
    /// With the header every answer of the OCI API carries; without the body for a HEAD.
    fileprivate func withOCIHeaders(sendBody: Bool) -> Response {
        var response = self
        response.headers[.dockerDistributionAPIVersion] = "registry/2.0"
        if !sendBody {
            if response.headers[.contentLength] == nil, let length = response.body.contentLength {
                response.headers[.contentLength] = String(length)
            }
            response.body = ResponseBody()
        }
        return response
    }
}

extension RenderedResponse {
    fileprivate func withOCIHeaders(sendBody: Bool) -> Response {
        var response = self.response(sendBody: sendBody)
        response.headers[.dockerDistributionAPIVersion] = "registry/2.0"
        return response
    }
}
