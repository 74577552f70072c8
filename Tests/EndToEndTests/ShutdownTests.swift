import Foundation
import ModelRegistryCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// SIGTERM drains: readiness turns 503 at once, new API requests are refused, an upload or a download in
/// flight finishes (to its last byte), and the process exits 0; an upload that outlasts `--drain-timeout` is
/// cut off, stores nothing, and the process still exits 0, and so does a download nobody reads.
@Suite(.serialized) struct ShutdownTests {
    static let body = (0..<(64 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    /// The head of a one-request blob upload of `length` bytes.
    static func blobUploadHead(_ server: ServerProcess, _ digest: Digest, length: Int) -> String {
        "PUT /v1/blobs/\(digest) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.adminToken)\r\n"
            + "Content-Type: application/octet-stream\r\nContent-Length: \(length)\r\n\r\n"
    }

    /// Starts `PUT /v1/blobs/{digest}` on a raw connection and sends the first half of the body.
    static func startSlowUpload(to server: ServerProcess) throws -> (RawConnection, Digest) {
        let digest = Digest.of(body)
        let connection = try RawConnection(server.url)
        try #require(connection.send(blobUploadHead(server, digest, length: body.count)))
        try #require(connection.send(Array(body[..<(body.count / 2)])))
        return (connection, digest)
    }

    /// Waits (at most 10 s) until the server is handling the upload: its first bytes are in `uploads/`.
    /// SIGTERM before that would find no request in flight to wait for.
    static func awaitUploadInFlight(_ data: URL) throws {
        let uploads = data.appendingPathComponent("uploads")
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let sizes = regularFiles(uploads).compactMap {
                try? FileManager.default.attributesOfItem(atPath: uploads.appendingPathComponent($0).path)[.size]
                    as? Int
            }
            if sizes.contains(where: { $0 > 0 }) { return }
            usleep(20_000)
        }
        throw ServerError("the server never started receiving the upload")
    }

    /// Polls readiness until it answers `status`, for at most 10 s.
    static func awaitReadiness(_ server: ServerProcess, _ status: Int) throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if try httpStatus(server.url + "/health/ready") == status { return true }
            usleep(50_000)
        }
        return false
    }

    /// How the client of a download in flight reads it around the SIGTERM.
    enum DownloadReader: CustomStringConvertible {
        /// Slower than the server sends, from before the signal to the end.
        case throughout
        /// Nothing until a second after the signal, when the server has handed it all to the socket.
        case onlyAfterTheSignal

        var description: String { self == .throughout ? "read slowly throughout" : "read only after the signal" }
    }

    /// Stores `size` random bytes as a blob through a raw `PUT`.
    static func storeBlob(_ server: ServerProcess, size: Int) throws -> (bytes: [UInt8], digest: Digest) {
        let bytes = try [UInt8](#require(FileHandle(forReadingAtPath: "/dev/urandom")).read(upToCount: size) ?? Data())
        let digest = Digest.of(bytes)
        let response = try RawConnection(server.url).exchange(
            Array(blobUploadHead(server, digest, length: size).utf8) + bytes)
        try #require(response.status == 201, "storing the blob: \(response.head)")
        return (bytes, digest)
    }

    /// Starts `GET /v1/blobs/{digest}` on a connection with a small receive buffer, reading nothing yet.
    static func startDownload(_ digest: Digest, from server: ServerProcess) throws -> RawConnection {
        let connection = try RawConnection(server.url, receiveBuffer: 8192)
        try #require(
            connection.send(
                "GET /v1/blobs/\(digest) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.adminToken)\r\n\r\n"
            ))
        return connection
    }

    /// The server used to close a draining connection with the response's last megabyte still queued in
    /// NIO, which dropped it: the client got a short body. Every byte must arrive.
    @Test(arguments: [DownloadReader.throughout, .onlyAfterTheSignal])
    func aDownloadInFlightAtSigtermArrivesWhole(reader: DownloadReader) throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"), extraArguments: ["--drain-timeout", "30s"])
        defer { server.kill() }
        let blob = try Self.storeBlob(server, size: reader == .throughout ? 16 << 20 : 4 << 20)
        let download = try Self.startDownload(blob.digest, from: server)
        var received = [UInt8]()
        var signalledMidway = false
        switch reader {
        case .throughout:
            let start = ContinuousClock.now
            while case let chunk = download.receive(upTo: 64 << 10), !chunk.isEmpty {
                received += chunk
                if !signalledMidway, ContinuousClock.now - start > .milliseconds(500) {
                    server.terminate()
                    signalledMidway = received.count < blob.bytes.count
                }
                usleep(5_000)
            }
        case .onlyAfterTheSignal:
            sleep(1)
            server.terminate()
            sleep(1)
            signalledMidway = true
            while case let chunk = download.receive(upTo: 1 << 20), !chunk.isEmpty { received += chunk }
        }
        #expect(signalledMidway, "the signal came while the download was in flight")
        let response = RawConnection.parse(received)
        #expect(response.status == 200, "\(response.head)")
        #expect(
            response.body.count == blob.bytes.count,
            "the whole body arrives, not \(response.body.count) of \(blob.bytes.count) bytes")
        #expect(Digest.of(Array(response.body)) == blob.digest)
        #expect(server.waitForExit(timeout: .seconds(15)) == 0, "exit 0 after the drain: \(server.logText)")
    }

    @Test func aDownloadNobodyReadsDoesNotHoldTheShutdownPastTheDrainTimeout() throws {
        let scratch = try Scratch()
        let server = try ServerProcess(data: scratch.url("data"), extraArguments: ["--drain-timeout", "2s"])
        defer { server.kill() }
        let blob = try Self.storeBlob(server, size: 16 << 20)
        let download = try Self.startDownload(blob.digest, from: server)
        defer { download.close() }
        sleep(1)
        let start = ContinuousClock.now
        server.terminate()
        #expect(server.waitForExit(timeout: .seconds(15)) == 0, "exit 0 after the drain: \(server.logText)")
        #expect(ContinuousClock.now - start < .seconds(8), "the drain timeout bounds the shutdown")
        #expect(
            server.logText.contains("drain timeout expired"),
            "the stalled download counts as in flight: \(server.logText)")
    }

    @Test func sigtermLetsAnUploadInFlightFinishThenExitsZero() throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        let server = try ServerProcess(data: data, extraArguments: ["--drain-timeout", "30s"])
        defer { server.kill() }
        #expect(try Self.awaitReadiness(server, 200))
        let (upload, digest) = try Self.startSlowUpload(to: server)
        try Self.awaitUploadInFlight(data)

        server.terminate()
        #expect(try Self.awaitReadiness(server, 503), "readiness turns 503 on SIGTERM")
        #expect(
            try httpStatus(server.url + "/health/live") == 200,
            "liveness stays up: the kubelet must not kill a draining pod")
        let refused = try httpStatus(server.url + "/v1/models", headers: ["Authorization: Bearer \(server.adminToken)"])
        #expect(refused == 503, "a new API request is refused while draining")
        #expect(server.process.isRunning, "the server waits for the upload")

        let response = try upload.exchange(Array(Self.body[(Self.body.count / 2)...]))
        #expect(response.status == 201, "the upload in flight completes: \(response.text)")
        #expect(server.waitForExit(timeout: .seconds(15)) == 0, "exit 0 after the drain: \(server.logText)")

        let restarted = try ServerProcess(data: data)
        defer { restarted.kill() }
        #expect(
            try httpStatus(
                restarted.url + "/v1/blobs/\(digest)", headers: ["Authorization: Bearer \(restarted.adminToken)"])
                == 200)
        restarted.stop()
    }

    @Test func anUploadOutlastingTheDrainTimeoutIsCutOffAndTheServerStillExitsZero() throws {
        let scratch = try Scratch()
        let data = scratch.url("data")
        let server = try ServerProcess(data: data, extraArguments: ["--drain-timeout", "1s"])
        defer { server.kill() }
        let (upload, digest) = try Self.startSlowUpload(to: server)
        try Self.awaitUploadInFlight(data)
        let start = ContinuousClock.now
        server.terminate()
        let status = server.waitForExit(timeout: .seconds(15))
        #expect(status == 0, "a drain that expires still ends cleanly: \(server.logText)")
        #expect(ContinuousClock.now - start < .seconds(8), "the drain timeout bounds the shutdown")
        #expect(
            server.logText.contains("drain timeout expired"), "the log says transfers were cut off: \(server.logText)")
        #expect(
            !server.logText.contains("request failed"),
            "a cut-off request is not logged as a server failure: \(server.logText)")
        upload.close()

        let restarted = try ServerProcess(data: data)
        defer { restarted.kill() }
        #expect(
            try httpStatus(
                restarted.url + "/v1/blobs/\(digest)", headers: ["Authorization: Bearer \(restarted.adminToken)"])
                == 404)
        #expect(regularFiles(data.appendingPathComponent("blobs")).isEmpty, "no partial blob became visible")
        restarted.stop()
    }
}
