import Foundation
import TestServers

#if canImport(Glibc)
    import Glibc
#endif

/// A registry that lies: it answers the manifest request with a genuine manifest and every image request
/// with bytes the test chose (a hostile archive, wrong bytes), or stalls or cuts the image body, so the
/// real `fetch` binary can be run against what no honest server sends. HTTP/1.1, one request a connection.
final class FakeRegistry: @unchecked Sendable {
    enum ImageBody {
        /// These bytes, sliced by the request's `Range` as a real server would.
        case bytes([UInt8])
        /// The first `count` bytes of `bytes`, then nothing, the connection held open.
        case stall([UInt8], after: Int)
        /// The first `count` bytes of `bytes`, then the connection closed.
        case cut([UInt8], after: Int)
        /// The bytes `by` past those asked for, with a `Content-Range` saying so; `chunked`: without a length.
        case shifted([UInt8], by: Int, chunked: Bool)
    }

    private let listener: LoopbackListener
    private let manifest: [UInt8]
    private let headers: [String: String]
    private let image: ImageBody

    /// `headers` go with the manifest (its digest, version and variant, as the real server names them).
    init(manifest: [UInt8], headers: [String: String], image: ImageBody) throws {
        self.manifest = manifest
        self.headers = headers
        self.image = image
        listener = try LoopbackListener()
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    var url: String { listener.url }

    func close() { listener.close() }

    deinit { close() }

    private func acceptLoop() {
        while let client = listener.accept() {
            guard listener.track([client]) else {
                Glibc.close(client)
                return
            }
            Thread.detachNewThread { [self] in answer(client) }
        }
    }

    private func answer(_ client: Int32) {
        defer {
            shutdown(client, Int32(SHUT_RDWR))
            listener.release([client])
        }
        var head = [UInt8]()
        var byte: UInt8 = 0
        while !head.suffix(4).elementsEqual(Array("\r\n\r\n".utf8)), head.count < 65536, read(client, &byte, 1) == 1 {
            head.append(byte)
        }
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\r\n")
        let path = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        let range = lines.first { $0.lowercased().hasPrefix("range: bytes=") }.map {
            $0.dropFirst("range: bytes=".count)
        }
        if path.contains("/manifests/") {
            send(
                client, status: "200 OK", headers: headers.merging(["Content-Type": "application/json"]) { $1 },
                body: manifest)
        } else if path.contains("/images/") {
            let (bytes, limit, stall, shift, chunked): ([UInt8], Int?, Bool, Int, Bool) =
                switch image {
                case .bytes(let bytes): (bytes, nil, false, 0, false)
                case .stall(let bytes, let count): (bytes, count, true, 0, false)
                case .cut(let bytes, let count): (bytes, count, false, 0, false)
                case .shifted(let bytes, let shift, let chunked): (bytes, nil, false, shift, chunked)
                }
            let bounds = range.map { $0.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) } } ?? []
            let start = min((bounds.first.flatMap { $0 } ?? 0) + shift, bytes.count)
            let end = min((bounds.count > 1 ? bounds[1] : nil).map { $0 + 1 + shift } ?? bytes.count, bytes.count)
            let slice = Array(bytes[start..<max(start, end)])
            let shown = limit.map { Array(slice.prefix($0)) } ?? slice
            send(
                client, status: "206 Partial Content",
                headers: [
                    "Content-Range": "bytes \(start)-\(max(start, end) - 1)/\(bytes.count)",
                    "Content-Type": "application/x-tar",
                ],
                body: shown, length: slice.count, chunked: chunked
            )
            if stall { while !listener.isClosed { usleep(10_000) } }
        } else {
            send(
                client, status: "404 Not Found", headers: ["Content-Type": "application/json"],
                body: Array(#"{"error":{"code":"NOT_FOUND","message":"not here"}}"#.utf8))
        }
    }

    /// `length` is what Content-Length claims: more than `body` when the body is stalled or cut. `chunked`
    /// sends the body as one chunk, without a length.
    private func send(
        _ client: Int32, status: String, headers: [String: String], body: [UInt8], length: Int? = nil,
        chunked: Bool = false
    ) {
        var text = "HTTP/1.1 \(status)\r\nConnection: close\r\n"
        text += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(length ?? body.count)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        let framed =
            chunked ? Array("\(String(body.count, radix: 16))\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8) : body
        let bytes = Array((text + "\r\n").utf8) + framed
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.send(client, $0.baseAddress! + written, bytes.count - written, Int32(MSG_NOSIGNAL))
            }
            if count <= 0 { return }
            written += count
        }
    }
}
