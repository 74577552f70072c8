import Hummingbird
import ModelRegistryCore
import RegistryMaintenance

/// Health, metrics, the API document, and token management.
struct AdminRoutes {
    let registry: Registry

    var routes: [Route] {
        [
            Route(.get, "/health/live") { _, _ in JSONBody.response(HealthStatus(status: "ok")) },
            Route(.get, "/health/ready") { _, context in
                do {
                    try await registry.checkReady()
                    return JSONBody.response(HealthStatus(status: "ready"))
                } catch {
                    context.logger.warning("not ready", metadata: ["error": .string(String(describing: error))])
                    let message = (error as? RegistryError)?.message ?? String(describing: error)
                    return ErrorMiddleware.errorResponse(RegistryError(.notReady, "not ready: \(message)"))
                }
            },
            Route(.get, "/metrics") { _, _ in
                registry.metrics.quarantinedBlobs(try Scrubber.quarantinedCount(registry.directory))
                return Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.metrics.exposition()))
                )
            },
            Route(.get, "/openapi.json") { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: PackageResources.openapi_json))
                )
            },
            Route(.get, "/v1/tokens") { _, context in
                try registry.authorize(context, .admin)
                return JSONBody.response(TokenList(tokens: try await registry.metadata.tokens()))
            },
            Route(.post, "/v1/tokens") { request, context in
                try registry.authorize(context, .admin)
                let body = try await JSONBody.decode(TokenRequest.self, from: request, context: context)
                let secret = TokenSecret.generate()
                let record = try await registry.metadata.createToken(name: body.name, scope: body.scope, secret: secret)
                context.logger.notice("token created", metadata: ["name": .string(record.name.value), "by": .string(context.identity.actor)])
                return JSONBody.response(CreatedToken(record: record, secret: secret), status: .created)
            },
            Route(.delete, "/v1/tokens/:name") { _, context in
                try registry.authorize(context, .admin)
                let name = try TokenLabel(context.pathParameter("name"))
                let record = try await registry.metadata.revokeToken(name: name)
                context.logger.notice("token revoked", metadata: ["name": .string(name.value), "by": .string(context.identity.actor)])
                return JSONBody.response(record)
            },
        ]
    }
}
