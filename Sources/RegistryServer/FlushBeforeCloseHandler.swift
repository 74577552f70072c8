import NIOCore

/// Holds a connection's close until every response byte written before it has reached the socket.
///
/// Hummingbird closes a connection right after it writes a response's end when the server shuts down (or
/// the connection idles out), and NIO discards the writes still queued in the channel when it closes: a
/// client reading a download slower than the server writes lost the download's last megabyte. This handler
/// sits below Hummingbird's connection handler and passes a full close on only once the writes before it
/// have completed, or once `patience()` has passed, so a client that stops reading cannot hold the
/// connection open for ever.
final class FlushBeforeCloseHandler<Part>: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = Part
    typealias OutboundOut = Part

    private struct HeldClose {
        var promises: [EventLoopPromise<Void>]
        let deadline: Scheduled<Void>
    }

    private let patience: @Sendable () -> TimeAmount
    private var unwritten = 0
    private var held: HeldClose?

    /// - Parameter patience: how long a close may wait for the queued writes, asked when a close arrives.
    init(patience: @escaping @Sendable () -> TimeAmount) {
        self.patience = patience
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let promise = promise ?? context.eventLoop.makePromise()
        unwritten += 1
        promise.futureResult.assumeIsolated().whenComplete { _ in
            self.unwritten -= 1
            if self.unwritten == 0 { self.releaseClose(context) }
        }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // Closing only the input keeps the queued writes; a close with nothing queued loses nothing.
        guard mode == .all, unwritten > 0 else {
            context.close(mode: mode, promise: promise)
            return
        }
        if held == nil {
            let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: patience()) {
                self.releaseClose(context)
            }
            held = HeldClose(promises: [], deadline: deadline)
            context.flush()
        }
        if let promise { held?.promises.append(promise) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        held?.deadline.cancel()
    }

    private func releaseClose(_ context: ChannelHandlerContext) {
        guard let held else { return }
        self.held = nil
        held.deadline.cancel()
        let closed = context.eventLoop.makePromise(of: Void.self)
        for promise in held.promises { closed.futureResult.cascade(to: promise) }
        context.close(mode: .all, promise: closed)
    }
}
