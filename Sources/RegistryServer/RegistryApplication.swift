import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import ModelRegistryCore
import NIOCore
import NIOHTTPTypes
import NIOSSL
import ServiceLifecycle

/// Builds the HTTP application around an open registry.
public enum RegistryApplication {
    /// Every route of the API (what the OpenAPI document describes): HEAD wherever GET is answered. The web pages
    /// (`WebRoutes`) are served beside them.
    static func routes(_ registry: Registry) -> [Route] {
        let routes =
            AdminRoutes(registry: registry).routes + BlobRoutes(registry: registry).routes
            + ModelRoutes(registry: registry).routes + MaintenanceRoutes(registry: registry).routes
            + HubRoutes(registry: registry).routes + OCIRoutes(registry: registry).routes
        return routes + Route.heads(for: routes)
    }

    public static func make(
        registry: Registry,
        configuration: ServerConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
    ) throws -> some ApplicationProtocol {
        let web = WebRoutes(registry: registry).routes
        let routes = routes(registry) + web + Route.heads(for: web)
        let router = Router(context: RegistryRequestContext.self)
        router.add(middleware: ErrorMiddleware(metrics: registry.metrics, routes: RouteTable(routes)))
        router.add(middleware: LogRequestsMiddleware(.info))
        router.add(middleware: DrainMiddleware(shutdown: registry.shutdown))
        router.add(middleware: AuthenticationMiddleware(tokens: registry.metadata))
        for route in routes {
            router.on(RouterPath(route.path), method: route.method, use: route.handler)
        }
        let host = configuration.host
        return Application(
            router: router,
            server: try server(configuration, shutdown: registry.shutdown),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "modelreg"),
            services: [UploadSweeper(blobs: registry.blobs, ttl: configuration.uploadTTL, logger: logger)],
            onServerRunning: { channel in
                await onServerRunning(host, channel.localAddress?.port ?? configuration.port)
            },
            logger: logger
        )
    }

    /// Serves until SIGTERM or SIGINT, then drains (see `Drainer`) and returns. Requests still in flight
    /// when the drain timeout expires are cancelled shortly after it (they answer 503), and it returns
    /// normally then too: that is the documented outcome of a timeout, not a failure of the server.
    public static func run(
        registry: Registry,
        configuration: ServerConfiguration,
        logger: Logger,
        onServerRunning: @escaping @Sendable (_ host: String, _ port: Int) async -> Void = { _, _ in }
    ) async throws {
        let app = try make(
            registry: registry, configuration: configuration, logger: logger, onServerRunning: onServerRunning)
        let drainer = Drainer(shutdown: registry.shutdown, timeout: configuration.drainTimeout, logger: logger)
        var group = ServiceGroupConfiguration(
            services: [app, drainer], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // The drain has had its time; the server then gets a moment to close its connections before the
        // requests still in flight are cancelled.
        group.maximumGracefulShutdownDuration = configuration.drainTimeout + .seconds(2)
        try await ServiceGroup(configuration: group).run()
    }

    /// Plain HTTP/1.1, or HTTPS with the loaded certificate and key. A connection closed with response bytes
    /// still queued waits for them until the drain ends, or for one more idle timeout outside a drain.
    static func server(_ configuration: ServerConfiguration, shutdown: ShutdownState) throws -> HTTPServerBuilder {
        let idleTimeout = configuration.idleTimeout
        // Blob files go to the socket with sendfile on plain HTTP; TLS encrypts every byte in memory.
        let sendsFiles = configuration.tls == nil
        let http1 = HTTPServerBuilder.http1(
            configuration: .init(
                additionalChannelHandlers: [
                    FlushBeforeCloseHandler<HTTPResponsePart>(patience: {
                        TimeAmount(shutdown.remainingDrainTime ?? idleTimeout)
                    })
                ] + (sendsFiles ? [FileRegionSenderInstaller()] : []),
                idleTimeout: TimeAmount(idleTimeout)
            ))
        guard let tls = configuration.tls else { return http1 }
        return try .tls(http1, tlsConfiguration: tls)
    }
}
