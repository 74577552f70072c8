import Foundation
import ModelRegistryCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM drains: readiness turns 503 at once, new API requests are refused, an upload in flight
/// finishes and is stored, and the process exits 0; one that outlasts `--drain-timeout` is cut off,
/// stores nothing, and the process still exits 0.
@Suite(.serialized) struct ShutdownTests {
    static let body = (0..<(64 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }

    /// Starts `PUT /v1/blobs/{digest}` on a raw connection and sends the first half of the body.
    static func startSlowUpload(to server: ServerProcess) throws -> (RawConnection, Digest) {
        let digest = Digest.of(body)
        let connection = try RawConnection(server.url)
        try #require(connection.send(
            "PUT /v1/blobs/\(digest) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(server.adminToken)\r\n"
                + "Content-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n\r\n"
        ))
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
                try? FileManager.default.attributesOfItem(atPath: uploads.appendingPathComponent($0).path)[.size] as? Int
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
        #expect(try httpStatus(server.url + "/health/live") == 200, "liveness stays up: the kubelet must not kill a draining pod")
        let refused = try httpStatus(server.url + "/v1/models", headers: ["Authorization: Bearer \(server.adminToken)"])
        #expect(refused == 503, "a new API request is refused while draining")
        #expect(server.process.isRunning, "the server waits for the upload")

        let response = try upload.exchange(Array(Self.body[(Self.body.count / 2)...]))
        #expect(response.status == 201, "the upload in flight completes: \(response.text)")
        #expect(server.waitForExit(timeout: .seconds(15)) == 0, "exit 0 after the drain: \(server.logText)")

        let restarted = try ServerProcess(data: data)
        defer { restarted.kill() }
        #expect(try httpStatus(restarted.url + "/v1/blobs/\(digest)", headers: ["Authorization: Bearer \(restarted.adminToken)"]) == 200)
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
        #expect(server.logText.contains("drain timeout expired"), "the log says transfers were cut off: \(server.logText)")
        #expect(!server.logText.contains("request failed"), "a cut-off request is not logged as a server failure: \(server.logText)")
        upload.close()

        let restarted = try ServerProcess(data: data)
        defer { restarted.kill() }
        #expect(try httpStatus(restarted.url + "/v1/blobs/\(digest)", headers: ["Authorization: Bearer \(restarted.adminToken)"]) == 404)
        #expect(regularFiles(data.appendingPathComponent("blobs")).isEmpty, "no partial blob became visible")
        restarted.stop()
    }
}
