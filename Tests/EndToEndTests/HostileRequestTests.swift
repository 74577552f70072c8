import Foundation
import ModelRegistryCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Requests no client of ours sends, written byte by byte on raw sockets to the live server: path
/// traversal, oversized and overflowing headers, absurd ranges, and connections that trickle or stall.
/// Each must get a clean 4xx or a closed connection, never a 5xx, a file outside the registry or a crash,
/// and the server must keep serving others and give back every descriptor.
@Suite(.serialized) struct HostileRequestTests {
    /// Short, so that the stalled connections are closed within the test; the default is a minute.
    static let idleTimeout = 2.0

    @Test func traversalInNamesAndPathsReachesNothingOutsideTheRegistry() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let token = "Authorization: Bearer \(server.adminToken)\r\n"
        let targets = [
            "GET /../../../etc/passwd", "GET /v1/blobs/..%2f..%2fregistry.sqlite",
            "GET /v1/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd",
            "GET /v1/blobs/%2e%2e/%2e%2e/registry.sqlite", "GET /v1/models/..%2F..%2Fetc/versions",
            "GET /v1/models/%2e%2e/versions/1",
            "GET /v1/models/m/versions/..%2F..%2Fadmin.token", "GET /v1/models/m/images/sha256:%2e%2e%2f%2e%2e/flat",
            "HEAD /v1/uploads/..%2F..%2Fregistry.sqlite", "PATCH /v1/uploads/%2e%2e%2fadmin.token",
            "DELETE /v1/uploads/..%2f..%2fregistry.sqlite",
            "PUT /v1/models/%2e%2e/versions/1/variants/default",
            "PUT /v1/models/m/versions/..%2f..%2fx/variants/default",
            "GET /v1/models/m%00/versions", "GET /v1/models/m%5c..%5c..%5cetc",
        ]
        for target in targets {
            let response = try RawConnection(server.url).exchange(
                "\(target) HTTP/1.1\r\nHost: x\r\n\(token)Content-Length: 0\r\nConnection: close\r\n\r\n")
            #expect(response.status.map { (400..<500).contains($0) } ?? false, "\(target): \(response.head)")
            #expect(
                !response.text.contains("SQLite format") && !response.text.contains("root:"), "\(target) leaks a file")
        }
        // A manifest naming files outside its tree is refused before anything is published; the same
        // manifest with a plain path is published, so the refusals are for the paths alone.
        let blob = try uploadBlob(Data("weights".utf8), to: server)
        for (version, path, status) in [
            ("1", "../../admin.token", 400), ("2", "/etc/passwd", 400), ("3", "a/../../b", 400),
            ("4", #"..\\..\\b"#, 400), ("5", "weights.bin", 201),
        ] {
            let manifest =
                #"{"files":[{"digest":"\#(blob)","executable":false,"path":"\#(path)","size":7}],"format":"other","schemaVersion":1}"#
            let response = try RawConnection(server.url).exchange(
                "PUT /v1/models/m/versions/\(version)/variants/default HTTP/1.1\r\nHost: x\r\n\(token)Content-Type: application/json\r\nContent-Length: \(manifest.utf8.count)\r\nConnection: close\r\n\r\n\(manifest)"
            )
            #expect(response.status == status, "file path \(path): \(response.text)")
            if status == 400 { #expect(response.text.contains("INVALID_PATH"), "file path \(path): \(response.text)") }
        }
        for (version, status) in [("1", 404), ("4", 404), ("5", 200)] {
            let response = try RawConnection(server.url).exchange(
                "GET /v1/models/m/versions/\(version) HTTP/1.1\r\nHost: x\r\n\(token)Connection: close\r\n\r\n")
            #expect(response.status == status, "m:\(version): \(response.head)")
        }
        server.stop()
    }

    @Test func hugeAndOverflowingHeadersAreRefusedAndTheServerLivesOn() throws {
        let scratch = try Scratch()
        // After refusing a request the HTTP parser rejects, Hummingbird half-closes the connection and waits for
        // the client's close, but stops reading, so it never sees it: only the idle timeout frees those
        // descriptors (without one they were held forever).
        let server = try ServerProcess(
            data: scratch.url("data"), extraArguments: ["--idle-timeout", "\(Int(Self.idleTimeout))s"])
        let baseline = try settledDescriptors(server)
        let huge = String(repeating: "a", count: 1 << 20)
        let requests = [
            "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Huge: \(huge)\r\n\r\n",
            "GET /health/live HTTP/1.1\r\nHost: x\r\n" + String(repeating: "X-Many: 1\r\n", count: 20_000) + "\r\n",
            "GET /\(huge) HTTP/1.1\r\nHost: x\r\n\r\n",
            "PUT /v1/blobs/sha256:\(String(repeating: "0", count: 64)) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
            "PUT /v1/blobs/sha256:\(String(repeating: "0", count: 64)) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: -1\r\n\r\nabc",
            "PUT /v1/blobs/sha256:\(String(repeating: "0", count: 64)) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabc",
            "PATCH /v1/uploads/\(UUID().uuidString.lowercased()) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nUpload-Offset: 99999999999999999999\r\nContent-Length: 0\r\n\r\n",
            "PUT /v1/blobs/sha256:\(String(repeating: "0", count: 64)) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc",
        ]
        for request in requests {
            let response = try RawConnection(server.url).exchange(request)
            let refused = response.status.map { (400..<500).contains($0) } ?? response.closed
            #expect(refused, "\(request.prefix(120)): \(response.head.prefix(300))")
            #expect(try health(server) == 200, "the server answers after \(request.prefix(80))")
        }
        try expectDescriptorsReturn(to: baseline, server)
        server.stop()
    }

    @Test func negativeAndOverflowingRangesGetAWholeBodyAPartOrA416() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let bytes = Data((0..<1000).map { UInt8($0 % 251) })
        let digest = try uploadBlob(bytes, to: server)
        let ranges = [
            "bytes=-1-5", "bytes=99999999999999999999-", "bytes=-99999999999999999999", "bytes=0-99999999999999999999",
            "bytes=5-2", "bytes=-0", "bytes=1000-", "bytes=999-", "bytes=--1", "bytes=0-0,5-6", "bytes= 7 - 9",
            "bits=0-1",
            "bytes=9223372036854775807-", "bytes=0-9223372036854775807", "bytes=-9223372036854775808",
        ]
        for range in ranges {
            let response = try RawConnection(server.url).exchange(
                "GET /v1/blobs/\(digest) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nRange: \(range)\r\nConnection: close\r\n\r\n"
            )
            let status = try #require(response.status, "\(range): no response")
            #expect([200, 206, 416].contains(status), "\(range): \(response.head)")
            if status == 200 { #expect(response.body == bytes, "\(range): the whole blob") }
            if status == 206 {
                let contentRange = try #require(response.header("Content-Range"), "\(range)")
                let numbers = contentRange.dropFirst("bytes ".count).split(whereSeparator: { $0 == "-" || $0 == "/" })
                    .compactMap { Int($0) }
                try #require(
                    numbers.count == 3 && numbers[0] <= numbers[1] && numbers[1] < bytes.count
                        && numbers[2] == bytes.count, "\(range): \(contentRange)")
                #expect(response.body == bytes[numbers[0]...numbers[1]], "\(range): the bytes Content-Range names")
            }
        }
        server.stop()
    }

    /// A blob file goes to the socket in one piece (`sendfile`); the response must still count as in progress
    /// until the last byte has left, or the idle timeout closes a slow reader's connection before it has them.
    @Test func aDownloadReadForLongerThanTheIdleTimeoutArrivesWhole() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"), extraArguments: ["--idle-timeout", "1s"])
        let blob = try ShutdownTests.storeBlob(server, size: 16 << 20)
        let download = try ShutdownTests.startDownload(blob.digest, from: server)
        let started = ContinuousClock.now
        var received = [UInt8]()
        // About 2 MiB a second: several idle timeouts (and the close's patience) pass during the download.
        while case let chunk = download.receive(upTo: 64 << 10), !chunk.isEmpty {
            received += chunk
            usleep(30_000)
        }
        #expect(ContinuousClock.now - started > .seconds(4), "the reader was slow")
        let response = RawConnection.parse(received)
        #expect(response.status == 200, "\(response.head)")
        #expect(response.body.count == blob.bytes.count, "\(response.body.count) of \(blob.bytes.count) bytes")
        #expect(Digest.of(Array(response.body)) == blob.digest)
        server.stop()
    }

    /// Ranges and several answers on one connection, where the bytes go to the socket as file regions.
    @Test func rangesAndKeptAliveConnectionsGetExactlyTheirBytes() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"))
        let blob = try ShutdownTests.storeBlob(server, size: 3 << 20)
        let connection = try RawConnection(server.url)
        let get = "GET /v1/blobs/\(blob.digest) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\n"
        for (range, expected) in [
            ("bytes=1000-2000999", blob.bytes[1000...2_000_999]), ("bytes=-300000", blob.bytes.suffix(300_000)),
            (nil, blob.bytes[...]),
        ] {
            let response = try connection.exchange(get + (range.map { "Range: \($0)\r\n" } ?? "") + "\r\n")
            #expect(response.status == (range == nil ? 200 : 206), "\(range ?? "whole"): \(response.head)")
            #expect(Array(response.body) == Array(expected), "\(range ?? "whole"): \(response.body.count) bytes")
        }
        server.stop()
    }

    @Test func trickledHeadersAndStalledBodiesAreClosedWhileOthersAreServed() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(
            data: scratch.url("data"), extraArguments: ["--idle-timeout", "\(Int(Self.idleTimeout))s"])
        let model = scratch.url("model")
        try TestModel.write(to: model)
        let pushed = try modelreg(["push", model.path, "m:1", "--quiet"], environment: server.environment)
        try #require(pushed.status == 0, "\(pushed)")
        // The same pull before the baseline, so that it counts what serving a pull keeps open.
        let warm = try modelreg(
            ["pull", "m:1", "--dest", scratch.url("warm").path, "--quiet"], environment: server.environment)
        try #require(warm.status == 0, "\(warm)")
        let baseline = try settledDescriptors(server)

        // Slowloris: 40 connections send a request's headers a byte at a time and never finish them; 10
        // more send whole headers and a little of a promised body, then stall.
        let started = Date()
        let trickling = try (0..<40).map { _ in try RawConnection(server.url) }
        let upload = try startUpload(server)
        let stalled = try (0..<10).map { _ in try RawConnection(server.url) }
        for connection in stalled {
            _ = connection.send(
                "PATCH /v1/uploads/\(upload) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nUpload-Offset: 0\r\nContent-Length: 1000\r\n\r\n0123456789"
            )
        }
        let header =
            Array("GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
            + Array(repeating: UInt8(ascii: "s"), count: 10_000)
        var sent = 0
        // Others are served meanwhile: a pull of the whole model while the trickle goes on.
        let pull = try CommandProcess(
            ["pull", "m:1", "--dest", scratch.url("pulled").path, "--quiet"], environment: server.environment)
        while trickling.contains(where: { !$0.closedByPeer }),
            Date().timeIntervalSince(started) < Self.idleTimeout * 10 + 30
        {
            for connection in trickling where !connection.closedByPeer {
                _ = connection.send([header[sent % header.count]])
            }
            sent += 1
            usleep(250_000)
            #expect(try health(server) == 200)
        }
        let elapsed = Date().timeIntervalSince(started)
        let allClosed = trickling.allSatisfy(\.closedByPeer)
        #expect(allClosed, "every trickling connection was closed, after \(Int(elapsed)) s")
        #expect(elapsed >= Self.idleTimeout * 0.9, "not before the idle timeout: \(elapsed) s")
        try waitUntil("the stalled bodies' connections are closed", timeout: 30) { stalled.allSatisfy(\.closedByPeer) }
        let pulled = try pull.wait()
        #expect(pulled.status == 0, "\(pulled)")
        try expectSameTree(model, scratch.url("pulled"))

        // The upload the stalled requests wrote to is free again, and holds only bytes that arrived.
        let resumed = try RawConnection(server.url).exchange(
            "HEAD /v1/uploads/\(upload) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nConnection: close\r\n\r\n"
        )
        #expect(
            resumed.status == 204 && resumed.header("Upload-Offset").flatMap { Int($0) }.map { $0 <= 10 } == true,
            "\(resumed.head)")
        for connection in trickling + stalled { connection.close() }
        try expectDescriptorsReturn(to: baseline, server)
        server.stop()
    }

    // MARK: Helpers

    func health(_ server: ServerProcess) throws -> Int? {
        try RawConnection(server.url).exchange("GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .status
    }

    func uploadBlob(_ bytes: Data, to server: ServerProcess) throws -> Digest {
        let digest = Digest.of(Array(bytes))
        let connection = try RawConnection(server.url)
        let head =
            "PUT /v1/blobs/\(digest) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        let response = try connection.exchange(Array(head.utf8) + Array(bytes))
        try #require(response.status == 201, "\(response.head)")
        return digest
    }

    func startUpload(_ server: ServerProcess) throws -> String {
        let response = try RawConnection(server.url).exchange(
            "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        let location = try #require(response.header("Location"), "\(response.head)")
        return String(location.split(separator: "/").last ?? "")
    }

    /// The descriptor count once the server is idle, after requests that make it open what it opens lazily
    /// and keeps (database readers, threads' descriptors).
    func settledDescriptors(_ server: ServerProcess) throws -> Int {
        for _ in 0..<3 {
            _ = try health(server)
            _ = try RawConnection(server.url).exchange(
                "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(server.adminToken)\r\nConnection: close\r\n\r\n"
            )
        }
        usleep(200_000)
        return try descriptors(server)
    }

    func descriptors(_ server: ServerProcess) throws -> Int {
        try openFiles(server).count
    }

    /// What each of the server's descriptors refers to (`socket:[…]`, a path), for failure messages.
    func openFiles(_ server: ServerProcess) throws -> [String] {
        let directory = "/proc/\(server.process.processIdentifier)/fd"
        return try FileManager.default.contentsOfDirectory(atPath: directory).map { name in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: directory + "/" + name)) ?? name
        }
    }

    /// Waits until the server holds no more descriptors than before the hostile connections (and two more,
    /// for what a busy machine makes it open lazily meanwhile).
    func expectDescriptorsReturn(to baseline: Int, _ server: ServerProcess) throws {
        try? waitUntil("the server's descriptors return to the baseline", timeout: 60) {
            try descriptors(server) <= baseline + 2
        }
        let open = try openFiles(server)
        #expect(open.count <= baseline + 2, "\(open.count) descriptors open, \(baseline) before: \(open.sorted())")
    }
}
