import Hummingbird
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// Sends blob files from the page cache to the socket (`sendfile`) as response bodies, instead of reading each
/// chunk into memory and having the socket copy it again: what nginx does, and the most a download costs the
/// server otherwise. Hummingbird's response writer takes buffers only, so a body asks this connection's handler
/// to put a file region in place of the next body part it writes (a one-byte stand-in), then waits until the
/// region has reached the socket before it ends the response: the connection stays busy, not idle, meanwhile.
///
/// Plain HTTP only: TLS encrypts every byte in memory, and NIOSSL takes no file regions.
struct FileRegionBodies: Sendable {
    /// Fewer bytes than this are read and written as a buffer: a region costs two trips to the event loop and a
    /// wait for the socket, more than copying a small file (a config, a tokenizer).
    private static let smallestRegion: Int64 = 256 << 10

    let channel: any Channel

    /// `range` of a blob as a file region to send whole; nil when it is small or the store's blobs are not local
    /// files.
    static func region(_ digest: Digest, _ range: Range<Int64>, in blobs: any BlobStore) async throws
        -> BlobFileRegion?
    {
        guard range.count >= smallestRegion else { return nil }
        return try await blobs.fileRegion(digest, range: range)
    }

    /// The bodies of `channel`, when it has a sender (plain HTTP).
    init?(of channel: any Channel) async {
        let present = try? await channel.eventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: FileRegionSender.self)) != nil
        }.get()
        guard present == true else { return nil }
        self.channel = channel
    }

    /// Writes `region` as the body's next bytes, returning once they are on the socket (the body writes nothing
    /// else meanwhile).
    func send(_ region: BlobFileRegion, through writer: inout any ResponseBodyWriter) async throws {
        let channel = self.channel
        let sent = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: FileRegionSender.self).expect(region, on: channel)
        }.get()
        try await writer.write(ByteBuffer(integer: UInt8(0)))
        // A cancelled response (the drain timeout, a shutdown) closes the connection, which fails the write.
        try await withTaskCancellationHandler {
            try await sent.get()
        } onCancel: {
            channel.close(promise: nil)
        }
    }
}

/// Adds a `FileRegionSender` below Hummingbird's HTTP codec, where body parts may be file regions; Hummingbird
/// places the handlers it is given above it.
final class FileRegionSenderInstaller: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        guard let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) else { return }
        try? pipeline.addHandler(FileRegionSender(), position: .before(codec))
    }
}

/// Puts an expected file region in place of the next response body part, closes its file once written, and
/// tells the body that waits for it; a connection that closes first fails the wait.
final class FileRegionSender: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var expected: (region: BlobFileRegion, sent: EventLoopPromise<Void>)?

    func expect(_ region: BlobFileRegion, on channel: any Channel) -> EventLoopFuture<Void> {
        let sent = channel.eventLoop.makePromise(of: Void.self)
        expected?.sent.fail(ChannelError.inappropriateOperationForState)
        expected = (region, sent)
        return sent.futureResult
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .body = unwrapOutboundIn(data), let expected, let taken = expected.region.take() else {
            context.write(data, promise: promise)
            return
        }
        self.expected = nil
        let (region, file) = taken
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { result in
            try? file.close()
            expected.sent.completeWith(result)
            promise?.completeWith(result)
        }
        context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: written)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        expected?.sent.fail(ChannelError.ioOnClosedChannel)
        expected = nil
    }
}
