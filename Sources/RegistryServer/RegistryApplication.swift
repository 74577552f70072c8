import Hummingbird
import Logging
import ModelRegistryCore
import NIOCore

/// Builds the HTTP application around an open registry.
public enum RegistryApplication {
    /// Every route the service answers.
    static func routes(_ registry: Registry) -> [Route] {
        AdminRoutes(registry: registry).routes + BlobRoutes(registry: registry).routes + ModelRoutes(registry: registry).routes
            + MaintenanceRoutes(registry: registry).routes
    }

    public static func make(
        registry: Registry,
        configuration: ServerConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
    ) -> some ApplicationProtocol {
        let router = Router(context: RegistryRequestContext.self)
        router.add(middleware: ErrorMiddleware(metrics: registry.metrics))
        router.add(middleware: LogRequestsMiddleware(.info))
        router.add(middleware: AuthenticationMiddleware(metadata: registry.metadata))
        for route in routes(registry) {
            router.on(RouterPath(route.path), method: route.method, use: route.handler)
        }
        let host = configuration.host
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout))),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "modelreg"),
            services: [UploadSweeper(blobs: registry.blobs, ttl: configuration.uploadTTL, logger: logger)],
            onServerRunning: { channel in
                await onServerRunning(host, channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }
}
