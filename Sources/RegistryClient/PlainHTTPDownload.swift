import FileSystemIO
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A GET of a blob's bytes over a plain-HTTP connection of its own, read with blocking system calls on the
/// thread that consumes them, a MiB at a time.
///
/// AsyncHTTPClient hands a body over in reads of at most 64 KiB, each through its channel pipeline, its state
/// machines and an async sequence: for a multi-GiB blob that cost a third of a pull's CPU, as much as hashing
/// the bytes. This reads only what a download needs: a status line, `Content-Length`, then exactly that many
/// bytes. Anything else the server may answer (an error, a redirect to an object store, a body without a
/// length) is left to AsyncHTTPClient, which asks again: `answer()` says so. With TLS it is not used at all.
///
/// The socket blocks, with a time limit: a connection not made within `connectLimit` (name resolution aside),
/// or a body that sends nothing for `stallLimit`, fails as a dropped connection (`ClientError.network`), which
/// the caller retries. `cancel()` (from any thread) shuts the socket down, so a read blocked in the kernel
/// returns at once; a connection being made is not cancelled, but ends within `connectLimit`.
final class PlainHTTPDownload: Sendable {
    /// An answer with a body to read: `length` bytes follow; `status` is 200 or 206.
    struct Body: Sendable {
        var status: Int
        var length: Int64
        /// Where the bytes start in the whole, for a 206 (its `Content-Range`).
        var rangeStart: Int64?
    }

    static let connectLimit = 10
    /// How much of the body `nextChunk` reads at once.
    static let chunkSize = 1 << 20

    private let descriptor: Int32
    private let cancelled = Atomic<Bool>(false)
    private let what: String
    private let stallLimit: Int
    /// Bytes read past the response's head: the body's first bytes. Touched by one thread at a time (the one
    /// that reads the head, then the one that reads the body, started after it).
    private nonisolated(unsafe) var early = ByteBuffer()
    /// The body's length, once `answer()` found one, and how much of it is still to read; touched as `early` is.
    private nonisolated(unsafe) var length: Int64 = 0
    private nonisolated(unsafe) var left: Int64 = 0

    /// Connects to `url`'s host and sends a GET of it with `headers` (blocking, at most `connectLimit`
    /// seconds). `url` must be `http`.
    init(_ url: URL, headers: HTTPHeaders, stallLimit: Int) throws {
        let host = (url.host ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let port = url.port ?? 80
        what = "GET \(url.absoluteString)"
        self.stallLimit = stallLimit
        descriptor = try Self.openConnection(host: host, port: port, stallLimit: stallLimit, what: what)
        var target = URLComponents(url: url, resolvingAgainstBaseURL: false)?.percentEncodedPath ?? "/"
        if target.isEmpty { target = "/" }
        if let query = url.query(percentEncoded: true) { target += "?" + query }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        let authority = url.port.map { "\(bracketed):\($0)" } ?? bracketed
        var head = "GET \(target) HTTP/1.1\r\nHost: \(authority)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Connection: close\r\n\r\n"
        try sendAll(Array(head.utf8))
    }

    deinit { close(descriptor) }

    /// Shuts the connection down: a read blocked on it returns, and the download throws `CancellationError`.
    func cancel() {
        cancelled.store(true, ordering: .releasing)
        shutdown(descriptor, Int32(SHUT_RDWR))
    }

    /// Runs `work` (reads of this connection) on a thread of its own; cancelling the task cancels the
    /// connection, so a read blocked in it returns at once.
    func blocking<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result {
        try await withTaskCancellationHandler {
            try await runOnThread(work)
        } onCancel: {
            cancel()
        }
    }

    /// Reads the response's head: a body to read, or nil for an answer AsyncHTTPClient should read.
    func answer() throws -> Body? {
        var head = ByteBuffer()
        var end: Int?
        while end == nil {
            guard head.readableBytes < Self.longestHead else {
                throw ClientError.network("\(what): the answer's head is longer than \(Self.longestHead) bytes")
            }
            guard try receive(into: &head, atMost: 16 << 10) > 0 else {
                throw ClientError.network("\(what): the connection closed before an answer")
            }
            end = head.readableBytesView.firstRange(of: Self.headEnd)?.upperBound
        }
        let headLength = end! - head.readerIndex
        let text = head.readString(length: headLength) ?? ""
        early = head
        let lines = text.split(separator: "\r\n", omittingEmptySubsequences: true)
        let statusWords = lines.first?.split(separator: " ", maxSplits: 2) ?? []
        guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), let status = Int(statusWords[1]) else {
            throw ClientError.network("\(what): the answer is not HTTP/1.1: '\(lines.first?.prefix(80) ?? "")'")
        }
        var lengths: Set<String> = []
        var chunked = false
        var rangeStart: Int64?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { lengths.insert(value) }
            if name == "transfer-encoding" { chunked = true }
            if name == "content-range" { rangeStart = ContentRange.start(of: value) }
        }
        // Two different lengths are AsyncHTTPClient's to refuse.
        guard status == 200 || status == 206, lengths.count == 1, let length = Int64(lengths.first!), length >= 0,
            !chunked
        else { return nil }
        (self.length, left) = (length, length)
        return Body(status: status, length: length, rangeStart: status == 206 ? rangeStart : nil)
    }

    /// The body's next `chunkSize` bytes (fewer at its end), in memory `ChunkMemory` reuses once it is let go;
    /// nil once the whole body is read. A connection that ends before the body does is a dropped connection.
    func nextChunk() throws -> ByteBuffer? {
        guard left > 0 else { return nil }
        var buffer = ChunkMemory.allocator.buffer(capacity: Self.chunkSize)
        let count = try read(into: &buffer, count: Int(min(left, Int64(Self.chunkSize))))
        guard count > 0 else {
            throw ClientError.network("\(what): the connection ended after \(length - left) of \(length) bytes")
        }
        left -= Int64(count)
        return buffer
    }

    /// Appends `count` bytes of the body to `buffer`, fewer only when the connection ends first; 0 at its end.
    private func read(into buffer: inout ByteBuffer, count: Int) throws -> Int {
        var total = 0
        if early.readableBytes > 0 {
            var part = early.readSlice(length: min(count, early.readableBytes))!
            total = part.readableBytes
            buffer.writeBuffer(&part)
        }
        while total < count {
            let received = try receive(into: &buffer, atMost: count - total)
            guard received > 0 else { break }
            total += received
        }
        return total
    }

    private static let longestHead = 64 << 10
    private static let headEnd = Array("\r\n\r\n".utf8)

    /// One `recv` into `buffer`: what has arrived, up to `count` bytes, once something has; 0 at the end of the
    /// connection. Not `MSG_WAITALL`: the socket's time limit bounds a whole call, so a call that waited for
    /// many bytes would notice a stall only up to twice `stallLimit` after the last byte.
    private func receive(into buffer: inout ByteBuffer, atMost count: Int) throws -> Int {
        var failure: Int32 = 0
        let received = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            while true {
                let n = recv(descriptor, raw.baseAddress, count, 0)
                if n >= 0 { return n }
                if errno == EINTR { continue }
                failure = errno
                return 0
            }
        }
        if cancelled.load(ordering: .acquiring) { throw CancellationError() }
        if failure == EAGAIN || failure == EWOULDBLOCK {
            throw ClientError.network("\(what): no byte for \(stallLimit) s")
        }
        if failure != 0 { throw ClientError.network("\(what): \(String(cString: strerror(failure)).lowercased())") }
        return received
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes {
                send(descriptor, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw ClientError.network("\(what): \(String(cString: strerror(errno)).lowercased())")
            }
            sent += n
        }
    }

    /// A connected, blocking socket to one of `host`'s addresses, whose reads give up after `stallLimit`.
    private static func openConnection(host: String, port: Int, stallLimit: Int, what: String) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw ClientError.network("\(what): cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var lastError: Int32 = ECONNREFUSED
        var next: UnsafeMutablePointer<addrinfo>? = first
        // One limit for all of the host's addresses together, not one each.
        let deadline = ContinuousClock.now + .seconds(connectLimit)
        while let address = next {
            next = address.pointee.ai_next
            let left = deadline - ContinuousClock.now
            guard left > .milliseconds(1) else {
                lastError = EINPROGRESS
                break
            }
            let descriptor = socket(
                address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else {
                lastError = errno
                continue
            }
            // Linux applies the send timeout to `connect` too.
            setTimeout(descriptor, SO_SNDTIMEO, left)
            if connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                setTimeout(descriptor, SO_RCVTIMEO, .seconds(stallLimit))
                return descriptor
            }
            lastError = errno
            close(descriptor)
        }
        if lastError == EINPROGRESS || lastError == EAGAIN {
            throw ClientError.network("\(what): no answer to the connection within \(connectLimit) s")
        }
        throw ClientError.network("\(what): \(String(cString: strerror(lastError)).lowercased())")
    }

    private static func setTimeout(_ descriptor: Int32, _ option: Int32, _ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(descriptor, SOL_SOCKET, option, &limit, socklen_t(MemoryLayout<timeval>.size))
    }
}
