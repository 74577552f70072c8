import Hummingbird
import Logging
import ModelRegistryCore

/// Builds the HTTP application around an open registry.
public enum RegistryApplication {
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
        AdminRoutes(registry: registry).register(on: router)
        BlobRoutes(registry: registry).register(on: router)
        ModelRoutes(registry: registry).register(on: router)
        let host = configuration.host
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "modelreg"),
            onServerRunning: { channel in
                await onServerRunning(host, channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }
}
