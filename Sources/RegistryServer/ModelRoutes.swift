import HTTPTypes
import Hummingbird
import ModelRegistryCore
import RegistryAPI

/// A database read of the model routes, as kept in `Registry.renderedReads`.
struct RenderedRead: Hashable, Sendable {
    let route: ModelRoute
    let variant: VariantName?
}

/// Models, versions, variants, manifests and aliases under `/v1/models`.
struct ModelRoutes {
    let registry: Registry

    var routes: [Route] {
        [
            Route(.get, "/v1/models") { _, context in
                try registry.authorize(context, .read)
                return JSONBody.response(ModelList(models: try await registry.metadata.listModels()))
            },
            Route(.get, RouteTable.modelPaths) { request, context in try await get(request, context, sendBody: true) },
            Route(.head, RouteTable.modelPaths) { request, context in try await get(request, context, sendBody: false)
            },
            Route(.put, RouteTable.modelPaths) { request, context in try await put(request, context) },
            Route(.post, RouteTable.modelPaths) { request, context in try await post(request, context) },
            Route(.delete, RouteTable.modelPaths) { request, context in try await delete(request, context) },
        ]
    }

    /// The resource, once the method is known to be one it answers; the token is checked after this, so a
    /// wrong method is told as such whatever the token may do.
    private func route(_ request: Request, _ context: RegistryRequestContext) throws -> ModelRoute {
        let route = try ModelRoute(segments: context.parameters.getCatchAll())
        guard route.methods.contains(request.method) else { throw Self.notAllowed(request, route) }
        return route
    }

    private func get(_ request: Request, _ context: RegistryRequestContext, sendBody: Bool) async throws -> Response {
        let route = try route(request, context)
        try registry.authorize(context, .read)
        if case .image(let name, let manifest, let layout) = route {
            return try await image(request, context, name, manifest, layout, sendBody: sendBody)
        }
        var variant: VariantName?
        if case .manifest = route {
            variant = try request.uri.queryParameters.get("variant").map { text throws(RegistryError) in
                try VariantName(text)
            }
        }
        // A cache image's state is the builder's, not the database's: never kept.
        if case .images = route {
            return try await render(request, route, variant: variant).response(sendBody: sendBody)
        }
        let rendered = try await registry.renderedReads.value(
            for: RenderedRead(route: route, variant: variant),
            at: try await registry.metadata.changeCount(of: route.model), cost: \.cost
        ) {
            try await render(request, route, variant: variant)
        }
        return rendered.response(sendBody: sendBody)
    }

    private func render(_ request: Request, _ route: ModelRoute, variant: VariantName?) async throws -> RenderedResponse
    {
        let metadata = registry.metadata
        switch route {
        case .model(let name):
            guard let detail = try await metadata.model(name) else {
                throw RegistryError(.notFound, "model \(name) not found")
            }
            return JSONBody.rendered(detail)
        case .versions(let name):
            guard let detail = try await metadata.model(name) else {
                throw RegistryError(.notFound, "model \(name) not found")
            }
            return JSONBody.rendered(VersionList(versions: detail.versions))
        case .version(let name, let version):
            guard let summary = try await metadata.version(name, version) else {
                throw RegistryError(.notFound, "version \(name):\(version) not found")
            }
            return JSONBody.rendered(summary)
        case .variant(let name, let version, let variant):
            guard let stored = try await metadata.manifest(name, version, variant) else {
                throw RegistryError(.notFound, "variant '\(variant)' of \(name):\(version) not found")
            }
            return manifestResponse(stored)
        case .manifest(let reference):
            return manifestResponse(try await metadata.resolve(reference, variant: variant))
        case .aliases(let name):
            guard let aliases = try await metadata.aliases(name) else {
                throw RegistryError(.notFound, "model \(name) not found")
            }
            return JSONBody.rendered(AliasList(aliases: aliases))
        case .alias(let name, let alias):
            guard let target = try await metadata.alias(name, alias) else {
                throw RegistryError(.notFound, "alias '\(alias)' of model \(name) not found")
            }
            return JSONBody.rendered(target)
        case .aliasHistory(let name, let alias):
            guard let entries = try await metadata.aliasHistory(name, alias) else {
                throw RegistryError(.notFound, "model \(name) not found")
            }
            return JSONBody.rendered(AliasHistory(model: name, alias: alias, entries: entries))
        case .images(let name, let manifest):
            return JSONBody.rendered(try await imageStatus(name, manifest))
        case .image, .aliasPromotion, .aliasRollback, .deprecation:
            throw Self.notAllowed(request, route)
        }
    }

    /// The stored bytes, so a client can check them against the digest itself.
    private func manifestResponse(_ stored: StoredManifest) -> RenderedResponse {
        var headers: HTTPFields = [
            .contentType: stored.mediaType,
            .eTag: "\"\(stored.digest)\"",
            .modelregDigest: stored.digest.description,
            .modelregVersion: stored.version.value,
            .modelregVariant: stored.variant.value,
        ]
        if let deprecation = stored.deprecation {
            headers[.modelregDeprecated] = DeprecationHeader.value(deprecation)
        }
        return RenderedResponse(status: .ok, headers: headers, body: ByteBuffer(bytes: stored.bytes))
    }

    private func put(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let route = try route(request, context)
        try registry.authorize(context, .write)
        switch route {
        case .variant(let name, let version, let variant):
            return try await publish(request, context, name, version, variant)
        case .alias(let name, let alias):
            let body = try await JSONBody.decode(AliasUpdate.self, from: request, context: context)
            return try await move(name, alias, .set(body.version, variant: body.variant), body, context)
        default:
            throw Self.notAllowed(request, route)
        }
    }

    private func post(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let route = try route(request, context)
        try registry.authorize(context, .write)
        switch route {
        case .aliasPromotion(let name, let alias):
            let body = try await JSONBody.decode(AliasPromotion.self, from: request, context: context)
            return try await move(name, alias, .promote(from: body.from), body, context)
        case .aliasRollback(let name, let alias):
            let body = try await JSONBody.decode(AliasRollback.self, from: request, context: context)
            return try await move(name, alias, .rollback(to: body.to), body, context)
        case .deprecation(let name, let version):
            let body = try await JSONBody.decode(DeprecationRequest.self, from: request, context: context)
            let reason = try DeprecationHeader.validatedReason(body.reason)
            return JSONBody.response(
                try await registry.metadata.deprecate(name, version, reason: reason, actor: context.identity.actor))
        default:
            throw Self.notAllowed(request, route)
        }
    }

    private func move(
        _ name: ModelName, _ alias: AliasName, _ kind: AliasMoveKind, _ body: some AliasMoveBody,
        _ context: RegistryRequestContext
    ) async throws -> Response {
        let move = AliasMove(
            model: name, alias: alias, kind: kind, expectation: try body.expectation, actor: context.identity.actor)
        return JSONBody.response(try await registry.moveAlias(move))
    }

    private func delete(_ request: Request, _ context: RegistryRequestContext) async throws -> Response {
        let route = try route(request, context)
        try registry.authorize(context, .admin)
        guard case .version(let name, let version) = route else { throw Self.notAllowed(request, route) }
        let deleted = try await registry.metadata.deleteVersion(name, version, actor: context.identity.actor)
        await registry.images.forget(name, deleted.manifests)
        context.logger.notice(
            "version deleted", metadata: ["version": "\(name):\(version)", "by": .string(context.identity.actor)])
        return JSONBody.response(deleted)
    }

    private static func notAllowed(_ request: Request, _ route: ModelRoute) -> MethodNotAllowed {
        MethodNotAllowed(method: request.method, path: request.uri.path, allowed: route.methods)
    }

    private func publish(
        _ request: Request, _ context: RegistryRequestContext,
        _ name: ModelName, _ version: VersionName, _ variant: VariantName
    ) async throws -> Response {
        let bytes = try await request.body.collect(upTo: context.maxUploadSize)
        let manifest = try Manifest.decode(Array(buffer: bytes))
        let outcome = try await VariantPublisher(registry: registry).publish(
            PublishRequest(
                model: name, version: version, variant: variant, manifest: manifest, actor: context.identity.actor)
        )
        let summary = outcome.variant
        let created: Bool
        if case .created = outcome { created = true } else { created = false }
        return JSONBody.response(
            PublishedVariant(model: name, version: version, variant: summary, created: created),
            status: created ? .created : .ok,
            headers: [.eTag: "\"\(summary.digest)\"", .modelregDigest: summary.digest.description]
        )
    }
}
