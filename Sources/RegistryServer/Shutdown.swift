import Hummingbird
import Logging
import ModelRegistryCore
import ServiceLifecycle
import Synchronization

/// Whether the server is draining for shutdown, and how many API requests are still being handled.
///
/// On SIGTERM the readiness probe answers 503 at once, so that the Service takes the pod out of its
/// endpoints, and new API requests are refused; requests already in flight (an upload of a large shard)
/// may finish within the drain timeout before the listener closes.
public final class ShutdownState: Sendable {
    private struct State {
        var draining = false
        var drainDeadline: ContinuousClock.Instant?
        var inFlight = 0
        var idle: [CheckedContinuation<Void, Never>] = []
        var released = false
    }

    private let state = Mutex(State())

    public init() {}

    public var isDraining: Bool { state.withLock { $0.draining } }

    /// How long is left of the drain; nil while the server is not draining.
    var remainingDrainTime: Duration? {
        state.withLock { $0.drainDeadline }.map { max(.zero, $0 - .now) }
    }

    public var inFlight: Int { state.withLock { $0.inFlight } }

    /// Counts a request in; false once draining, when the request must be refused.
    func enter() -> Bool {
        state.withLock { state in
            guard !state.draining else { return false }
            state.inFlight += 1
            return true
        }
    }

    func leave() {
        let resumed = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.inFlight -= 1
            guard state.inFlight == 0 else { return [] }
            defer { state.idle.removeAll() }
            return state.idle
        }
        for continuation in resumed { continuation.resume() }
    }

    func startDraining(timeout: Duration) {
        state.withLock { state in
            state.draining = true
            state.drainDeadline = .now + timeout
        }
    }

    /// Returns when no request is in flight, or when `timeout` has passed; true when none is left.
    func awaitIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.idle()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let drained = await group.next() ?? false
            releaseWaiters()
            group.cancelAll()
            return drained
        }
    }

    private func idle() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.inFlight == 0 || state.released { return true }
                state.idle.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Lets every waiter go (the timeout won), including one that has not registered yet.
    private func releaseWaiters() {
        let waiting = state.withLock { state in
            state.released = true
            defer { state.idle.removeAll() }
            return state.idle
        }
        for continuation in waiting { continuation.resume() }
    }
}

/// Waits for graceful shutdown, then drains: readiness turns 503, new API requests are refused, and the
/// requests in flight get up to `timeout` to finish. The server itself is shut down after this service
/// returns (services stop in reverse order), which closes the listener and idle connections.
struct Drainer: Service {
    let shutdown: ShutdownState
    let timeout: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        shutdown.startDraining(timeout: timeout)
        let inFlight = shutdown.inFlight
        logger.notice(
            "shutting down: draining requests in flight",
            metadata: ["inFlight": "\(inFlight)", "timeout": "\(timeout)"])
        if await shutdown.awaitIdle(timeout: timeout) {
            logger.notice("drained: no request in flight")
        } else {
            logger.warning(
                "drain timeout expired: cutting off the requests still in flight; interrupted uploads resume when their clients retry",
                metadata: ["inFlight": "\(shutdown.inFlight)"]
            )
        }
    }
}

/// Refuses new API requests while the server drains, and counts the ones in flight. Health, metrics and
/// the API document keep answering, so that probes see the readiness change.
struct DrainMiddleware: RouterMiddleware {
    typealias Context = RegistryRequestContext
    let shutdown: ShutdownState

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard request.uri.path.hasPrefix("/v1/") else { return try await next(request, context) }
        guard shutdown.enter() else {
            throw RegistryError(
                .notReady, "the registry is shutting down: retry against another replica or once it is back")
        }
        let inFlight = InFlightRequest(shutdown)
        var response = try await next(request, context)
        // A download is in flight until its body is written, long after the handler returned.
        let body = response.body
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            defer { inFlight.leave() }
            try await body.write(writer)
        }
        return response
    }
}

/// One API request counted in flight: it leaves when its body has been written, or when its response is
/// dropped unwritten (a handler that threw, a client that went away first).
private final class InFlightRequest: Sendable {
    private let shutdown: ShutdownState
    private let left = Atomic(false)

    init(_ shutdown: ShutdownState) {
        self.shutdown = shutdown
    }

    deinit { leave() }

    func leave() {
        if !left.exchange(true, ordering: .relaxed) { shutdown.leave() }
    }
}
