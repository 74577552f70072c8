import NIOCore
import NIOEmbedded
import Testing

@testable import RegistryServer

/// Stands in for a socket whose send buffer is full: writes pass on only when `drain()` is called.
private final class StalledSocket: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer
    private var queued: [(NIOAny, EventLoopPromise<Void>?)] = []
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        queued.append((data, promise))
    }

    func flush(context: ChannelHandlerContext) {}

    func drain() {
        guard let context else { return }
        for (data, promise) in queued { context.write(data, promise: promise) }
        queued.removeAll()
        context.flush()
    }
}

@Suite struct FlushBeforeCloseHandlerTests {
    private static func channel(patience: TimeAmount) throws -> (EmbeddedChannel, StalledSocket) {
        let socket = StalledSocket()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            socket, FlushBeforeCloseHandler<ByteBuffer>(patience: { patience }),
        ])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, socket)
    }

    @Test func aCloseWaitsUntilTheQueuedWritesHaveLeft() throws {
        let (channel, socket) = try Self.channel(patience: .seconds(60))
        channel.writeAndFlush(ByteBuffer(string: "the last megabyte"), promise: nil)
        let closed = channel.close()
        #expect(channel.isActive, "the close is held while a write is queued")
        socket.drain()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == ByteBuffer(string: "the last megabyte"))
        try closed.wait()
        #expect(!channel.isActive)
    }

    @Test func aCloseWaitsNoLongerThanItsPatience() throws {
        let (channel, _) = try Self.channel(patience: .seconds(5))
        channel.writeAndFlush(ByteBuffer(string: "never read"), promise: nil)
        let closed = channel.close()
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        try closed.wait()
        #expect(!channel.isActive, "a client that stops reading cannot hold the connection open")
    }

    @Test func aCloseWithNothingQueuedHappensAtOnce() throws {
        let (channel, socket) = try Self.channel(patience: .seconds(60))
        channel.writeAndFlush(ByteBuffer(string: "sent"), promise: nil)
        socket.drain()
        try channel.close().wait()
        #expect(!channel.isActive)
    }
}
