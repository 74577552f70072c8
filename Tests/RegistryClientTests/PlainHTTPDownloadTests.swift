import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import Synchronization
import TestServers
import Testing

@testable import RegistryClient

#if canImport(Glibc)
    import Glibc
#endif

/// `PlainHTTPDownload` against a loopback server that answers each connection with scripted bytes: what it
/// sends, what it reads back, and how it fails when the server stalls, talks nonsense or never lets go.
@Suite struct PlainHTTPDownloadTests {
    /// A server that reads one request's head, then sends `parts` with `pause` between them and holds the
    /// connection open for `hold` before it closes it.
    final class ScriptedServer: Sendable {
        let listener: LoopbackListener
        /// The head of the request the server read.
        let received = Received()

        final class Received: Sendable {
            let head = Mutex<String?>(nil)
            /// Every connection's request head, in order.
            let heads = Mutex<[String]>([])
        }

        convenience init(_ parts: [[UInt8]], pause: Duration = .zero, hold: Duration = .zero) throws {
            try self.init(scripts: [parts], pause: pause, hold: hold)
        }

        /// One script a connection, for connections accepted one after another.
        init(scripts: [[[UInt8]]], pause: Duration = .zero, hold: Duration = .zero) throws {
            listener = try LoopbackListener()
            Thread { [listener, received] in
                for parts in scripts {
                    guard let socket = listener.accept() else { return }
                    guard listener.track([socket]) else { return }
                    var head: [UInt8] = []
                    var byte: UInt8 = 0
                    while !head.ends(with: Array("\r\n\r\n".utf8)), recv(socket, &byte, 1, 0) == 1 {
                        head.append(byte)
                    }
                    received.head.withLock { $0 = String(decoding: head, as: UTF8.self) }
                    received.heads.withLock { $0.append(String(decoding: head, as: UTF8.self)) }
                    for (index, part) in parts.enumerated() {
                        if index > 0 { Thread.sleep(forTimeInterval: pause.seconds) }
                        _ = part.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                    Thread.sleep(forTimeInterval: hold.seconds)
                    listener.release([socket])
                }
            }.start()
        }

        var url: URL { URL(string: listener.url + "/v1/blobs/sha256:ab?x=1")! }

        deinit { listener.close() }
    }

    static func head(_ lines: String...) -> [UInt8] { Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) }

    static func open(_ server: ScriptedServer, stallLimit: Int = 5) throws -> PlainHTTPDownload {
        var headers = HTTPHeaders()
        headers.add(name: "Authorization", value: "Bearer secret")
        headers.add(name: "Range", value: "bytes=10-")
        return try PlainHTTPDownload(server.url, headers: headers, stallLimit: stallLimit)
    }

    /// The body's bytes, chunk by chunk, each no larger than `PlainHTTPDownload.chunkSize`.
    static func readAll(_ download: PlainHTTPDownload) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try download.nextChunk() {
            #expect(chunk.readableBytes > 0 && chunk.readableBytes <= PlainHTTPDownload.chunkSize)
            bytes += chunk.readableBytesView
        }
        return bytes
    }

    @Test func theBodyArrivesWhole() throws {
        let body = (0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        // The head and the body's first bytes in one segment, the rest in pieces.
        let first = Self.head(
            "HTTP/1.1 206 Partial Content", "content-length: \(body.count)", "Content-Length: \(body.count)",
            "Content-Range: bytes 10-\(body.count + 9)/\(body.count + 10)")
        let server = try ScriptedServer(
            [first + body[..<100], Array(body[100..<(1 << 20)]), Array(body[(1 << 20)...])],
            pause: .milliseconds(50))
        let download = try Self.open(server)
        let answer = try #require(try download.answer())
        #expect(answer.status == 206)
        #expect(answer.length == Int64(body.count))
        #expect(answer.rangeStart == 10)
        #expect(try Self.readAll(download) == body)
        let request = try #require(server.received.head.withLock { $0 })
        #expect(request.hasPrefix("GET /v1/blobs/sha256:ab?x=1 HTTP/1.1\r\n"), "\(request)")
        for line in ["Host: 127.0.0.1:\(server.listener.port)", "Authorization: Bearer secret", "Range: bytes=10-"] {
            #expect(request.contains("\r\n\(line)\r\n"), "\(request)")
        }
    }

    @Test(arguments: [
        ["HTTP/1.1 404 Not Found", "Content-Length: 2"],
        ["HTTP/1.1 307 Temporary Redirect", "Location: http://127.0.0.1:1/x", "Content-Length: 0"],
        ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"],
        ["HTTP/1.1 200 OK"],
        ["HTTP/1.1 200 OK", "Content-Length: 2", "Content-Length: 3"],
    ])
    func answersWithoutABodyOfKnownLengthAreLeftToAsyncHTTPClient(_ lines: [String]) throws {
        let server = try ScriptedServer([Array((lines.joined(separator: "\r\n") + "\r\n\r\n{}").utf8)])
        #expect(try Self.open(server).answer() == nil)
    }

    @Test func aStalledBodyFailsAfterTheStallLimit() throws {
        let server = try ScriptedServer(
            [Self.head("HTTP/1.1 200 OK", "Content-Length: 5000") + Array(repeating: 1, count: 1000)],
            hold: .seconds(10))
        let download = try Self.open(server, stallLimit: 1)
        _ = try #require(try download.answer())
        let start = ContinuousClock.now
        let failure = #expect(throws: ClientError.self) { _ = try Self.readAll(download) }
        #expect(ContinuousClock.now - start < .seconds(4))
        #expect("\(failure.map { "\($0)" } ?? "")".contains("no byte for 1 s"))
    }

    /// A body that trickles is alive; the stall limit counts from its last byte, not from the read's start.
    @Test func aTricklingBodyFailsOneStallLimitAfterItsLastByte() throws {
        let head = Self.head("HTTP/1.1 200 OK", "Content-Length: 5000")
        let server = try ScriptedServer(
            [head] + Array(repeating: Array(repeating: 7, count: 10), count: 10), pause: .milliseconds(250),
            hold: .seconds(10))
        let download = try Self.open(server, stallLimit: 1)
        _ = try #require(try download.answer())
        let start = ContinuousClock.now
        #expect(throws: ClientError.self) { _ = try Self.readAll(download) }
        // The last byte comes 2.5 s in (ten pauses of 250 ms), so the failure 1 s after that, never before.
        // (Reads that wait for all their bytes at once, `MSG_WAITALL`, spend the limit while bytes still flow:
        // they gave up at 3.05 s here.)
        let elapsed = ContinuousClock.now - start
        #expect(elapsed > .milliseconds(3300) && elapsed < .milliseconds(4500), "\(elapsed)")
    }

    @Test func cancellingEndsABlockedReadAtOnce() async throws {
        let server = try ScriptedServer([Self.head("HTTP/1.1 200 OK", "Content-Length: 5000")], hold: .seconds(10))
        let download = try Self.open(server, stallLimit: 30)
        _ = try #require(try download.answer())
        let start = ContinuousClock.now
        Thread {
            Thread.sleep(forTimeInterval: 0.3)
            download.cancel()
        }.start()
        #expect(throws: CancellationError.self) { _ = try Self.readAll(download) }
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test func aBodyCutShortGivesItsBytesThenFails() throws {
        let server = try ScriptedServer([Self.head("HTTP/1.1 200 OK", "Content-Length: 5000") + [1, 2, 3]])
        let download = try Self.open(server)
        _ = try #require(try download.answer())
        let chunk = try #require(try download.nextChunk())
        #expect(Array(chunk.readableBytesView) == [1, 2, 3])
        let failure = #expect(throws: ClientError.self) { _ = try download.nextChunk() }
        #expect("\(failure.map { "\($0)" } ?? "")".contains("ended after 3 of 5000 bytes"))
    }

    @Test(arguments: [
        (Array("SSH-2.0-OpenSSH_9.2\r\n\r\n".utf8), "is not HTTP/1.1"),
        (Array(repeating: UInt8(ascii: "a"), count: 70_000), "longer than 65536 bytes"),
        (Array("HTTP/1.1 200 OK\r\nContent-Le".utf8), "closed before an answer"),
    ])
    func aBrokenHeadIsRefused(_ bytes: [UInt8], _ reason: String) throws {
        let server = try ScriptedServer([bytes])
        let failure = #expect(throws: ClientError.self) { _ = try Self.open(server).answer() }
        #expect("\(failure.map { "\($0)" } ?? "")".contains(reason), "\(String(describing: failure))")
    }

    @Test func aRefusedConnectionSaysSo() throws {
        let listener = try LoopbackListener()
        let url = URL(string: listener.url + "/v1/blobs/x")!
        listener.close()
        let failure = #expect(throws: ClientError.self) {
            _ = try PlainHTTPDownload(url, headers: HTTPHeaders(), stallLimit: 1)
        }
        #expect("\(failure.map { "\($0)" } ?? "")".contains("connection refused"))
    }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix
    }
}

extension Duration {
    fileprivate var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// `RegistryConnection.plainDownload`: which requests it takes on.
@Suite struct PlainDownloadChoiceTests {
    @Test func aHeaderWithALineBreakIsLeftToAsyncHTTPClient() async throws {
        let server = try PlainHTTPDownloadTests.ScriptedServer([
            PlainHTTPDownloadTests.head("HTTP/1.1 200 OK", "Content-Length: 0")
        ])
        let broken = try RegistryConnection(
            configuration: ClientConfiguration(server: server.listener.url, token: "a\r\nX-Injected: 1"))
        #expect(try await broken.plainDownload(broken.request(.GET, "/v1/blobs/x")) == nil)
        let plain = try RegistryConnection(configuration: ClientConfiguration(server: server.listener.url, token: "t"))
        let (_, answer) = try #require(try await plain.plainDownload(plain.request(.GET, "/v1/blobs/x")))
        #expect(answer.status == 200 && answer.length == 0)
        #expect(server.received.head.withLock { $0 }?.contains("\r\nAuthorization: Bearer t\r\n") == true)
    }
}

/// `RegistryConnection.downloadBlob` continuing a kept prefix: the answer to its `Range` must start where the
/// prefix ends, on either path; one that does not is refused, and the retry asks for the whole blob.
@Suite struct BlobRangeTests {
    /// A 206 for bytes 0-19 of a 30-byte blob when bytes 10- were asked for, as a body of known length (the
    /// plain path) or chunked (AsyncHTTPClient's, after the plain path left it), then the whole blob.
    @Test(arguments: [false, true])
    func aPartialAnswerFromTheWrongPlaceIsRefusedAndTheRetryAsksForAll(chunked: Bool) async throws {
        let blob = (0..<30).map { UInt8($0) }
        let body = Array(blob[0..<20])
        let wrong =
            chunked
            ? PlainHTTPDownloadTests.head(
                "HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-19/30", "Transfer-Encoding: chunked",
                "Connection: close") + Array("14\r\n".utf8) + body + Array("\r\n0\r\n\r\n".utf8)
            : PlainHTTPDownloadTests.head(
                "HTTP/1.1 206 Partial Content", "Content-Range: bytes 0-19/30", "Content-Length: 20",
                "Connection: close") + body
        let whole = PlainHTTPDownloadTests.head("HTTP/1.1 200 OK", "Content-Length: 30", "Connection: close") + blob
        // A chunked answer is read twice: the plain path leaves it, AsyncHTTPClient asks again.
        let server = try PlainHTTPDownloadTests.ScriptedServer(
            scripts: Array(repeating: [wrong], count: chunked ? 2 : 1) + [[whole]])
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("blob-range-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let partial = directory.appendingPathComponent("blob.partial")
        try Data(blob[0..<10]).write(to: partial)
        let connection = try RegistryConnection(
            configuration: ClientConfiguration(server: server.listener.url, token: "t"))
        let destination = directory.appendingPathComponent("blob")
        _ = try await connection.downloadBlob(
            Digest.of(Data(blob)), size: 30, partial: partial, to: destination, executable: false, label: "blob",
            progress: TransferProgress(style: .none, verb: "pulling") { _ in })
        #expect(try Data(contentsOf: destination) == Data(blob))
        let heads = server.received.heads.withLock { $0 }
        #expect(heads.count == (chunked ? 3 : 2), "\(heads)")
        #expect(heads.dropLast().allSatisfy { $0.contains("\r\nRange: bytes=10-\r\n") }, "\(heads)")
        #expect(heads.last?.contains("Range:") == false, "the retry asks for the whole blob: \(heads)")
    }
}
