import Hummingbird
import ModelRegistryCore
import RegistryAPI
import RegistryMaintenance

/// Health, metrics, the API document, token management and the audit log.
struct AdminRoutes {
    let registry: Registry

    var routes: [Route] {
        [
            Route(.get, "/health/live") { _, _ in JSONBody.response(HealthStatus(status: "ok")) },
            Route(.get, "/health/ready") { _, context in
                if registry.shutdown.isDraining {
                    return ErrorMiddleware.errorResponse(RegistryError(.notReady, "not ready: shutting down"))
                }
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
                registry.metrics.quarantinedBlobs(try await registry.blobs.quarantined().count)
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
            Route(.get, "/v1/stats/downloads") { _, context in
                try registry.authorize(context, .read)
                let median = registry.downloadSpeeds.median
                return JSONBody.response(
                    DownloadSpeed(medianBytesPerSecond: median.bytesPerSecond, samples: median.samples),
                    headers: [.cacheControl: "no-store"])
            },
            Route(.get, "/v1/tokens") { _, context in
                try registry.authorize(context, .admin)
                return JSONBody.response(TokenList(tokens: try await registry.metadata.tokens()))
            },
            Route(.post, "/v1/tokens") { request, context in
                try registry.authorize(context, .admin)
                let body = try await JSONBody.decode(TokenRequest.self, from: request, context: context)
                let secret = TokenSecret.generate()
                let record = try await registry.metadata.createToken(
                    name: body.name, scope: body.scope, secret: secret, actor: context.identity.actor
                )
                context.logger.notice(
                    "token created",
                    metadata: ["name": .string(record.name.value), "by": .string(context.identity.actor)])
                return JSONBody.response(CreatedToken(record: record, secret: secret), status: .created)
            },
            Route(.delete, "/v1/tokens/:name") { _, context in
                try registry.authorize(context, .admin)
                let name = try TokenLabel(context.pathParameter("name"))
                let record = try await registry.metadata.revokeToken(name: name, actor: context.identity.actor)
                context.logger.notice(
                    "token revoked", metadata: ["name": .string(name.value), "by": .string(context.identity.actor)])
                return JSONBody.response(record)
            },
            Route(.get, "/v1/audit") { request, context in
                try registry.authorize(context, .admin)
                let parameters = request.uri.queryParameters
                let query = AuditQuery(
                    model: try parameters.get("model").map { text throws(RegistryError) in try ModelName(text) },
                    before: try parameters.get("before").map { text throws(RegistryError) in
                        try Self.integer(text, "before")
                    },
                    limit: try parameters.get("limit").map { text throws(RegistryError) in
                        Int(try Self.integer(text, "limit", maximum: Int64(AuditQuery.maxLimit)))
                    } ?? 100
                )
                return JSONBody.response(AuditLog(entries: try await registry.metadata.auditLog(query)))
            },
        ]
    }

    private static func integer(_ text: String, _ parameter: String, maximum: Int64 = .max) throws(RegistryError)
        -> Int64
    {
        guard let value = Int64(text), value > 0, value <= maximum else {
            let range = maximum == .max ? "a positive integer" : "an integer from 1 to \(maximum)"
            throw RegistryError(
                .invalidRequest, "query parameter \(parameter) must be \(range), not '\(text.prefix(40))'")
        }
        return value
    }
}
