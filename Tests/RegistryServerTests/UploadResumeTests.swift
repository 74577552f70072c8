import FileSystemBlobs
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import ModelRegistryCore
import NIOCore
import Testing

@testable import RegistryServer

@Suite struct UploadResumeTests {
    @Test func anUploadStartedForADigestIsHandedBackWithItsOffset() async throws {
        try await TestRegistry.with { registry, client in
            let bytes = Array("resumable upload bytes".utf8)
            let digest = Digest.of(bytes)
            let first = try await client.execute(
                uri: "/v1/uploads?digest=\(digest)", method: .post, headers: auth(registry.write))
            #expect(first.status == .accepted && first.headers[.uploadOffset] == "0")
            let location = try #require(first.headers[.location])
            let patched = try await client.execute(
                uri: location, method: .patch, headers: auth(registry.write, [.uploadOffset: "0"]),
                body: ByteBuffer(bytes: bytes[..<5])
            )
            #expect(patched.headers[.uploadOffset] == "5")

            let again = try await client.execute(
                uri: "/v1/uploads?digest=\(digest)", method: .post, headers: auth(registry.write))
            #expect(
                again.status == .accepted && again.headers[.location] == location && again.headers[.uploadOffset] == "5"
            )
            let other = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.write))
            #expect(other.headers[.location] != location)

            let finished = try await client.execute(
                uri: "\(location)?digest=\(digest)", method: .put, headers: auth(registry.write),
                body: ByteBuffer(bytes: bytes[5...])
            )
            #expect(finished.status == .created)
            let bad = try await client.execute(
                uri: "/v1/uploads?digest=sha256:nothex", method: .post, headers: auth(registry.write))
            #expect(bad.status == .badRequest && bad.errorCode == "INVALID_DIGEST")
        }
    }

    /// A server killed after storing a blob and before recording it: the next one records it at start, so the
    /// client that finds the blob stored and skips its upload can publish.
    @Test func aBlobStoredButNotRecordedIsRecordedAtStart() async throws {
        let bytes = Array("stored, then the server was killed".utf8)
        let prepare: (DataDirectory) async throws -> Void = { directory in
            try directory.create()
            _ = try await FileSystemBlobStore(directory: directory).put(
                [ByteBuffer(bytes: bytes)].async, expecting: Digest.of(bytes))
        }
        try await TestRegistry.with(.embedded, prepare: prepare) { registry, client in
            let manifest = Manifest(
                format: .other,
                files: [
                    ManifestFile(path: try ManifestPath("w.bin"), digest: Digest.of(bytes), size: Int64(bytes.count))
                ])
            let published = try await client.execute(
                uri: "/v1/models/m/versions/1/variants/default", method: .put, headers: auth(registry.write),
                body: ByteBuffer(bytes: manifest.canonicalJSON()))
            #expect(published.status == .created, "\(published.text)")
        }
    }

    @Test func uploadTTLsArePositiveWholeDurations() throws {
        #expect(try DurationText.positive("90s") == .seconds(90))
        #expect(try DurationText.positive("30m") == .seconds(1800))
        #expect(try DurationText.positive("24h") == .seconds(86400))
        #expect(try DurationText.positive("7d") == .seconds(7 * 86400))
        for text in ["", "h", "-1h", "0s", "0", "1.5h", "99999999999999999d"] {
            #expect(throws: RegistryError.self, "\(text)") { try DurationText.positive(text) }
        }
    }

    @Test func theSweeperRemovesUploadsPastTheirTTL() async throws {
        try await TestRegistry.with(.embedded) { registry, client in
            let created = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.write))
            #expect(created.status == .accepted)
            let sweeper = UploadSweeper(
                blobs: registry.registry.blobs, ttl: .seconds(3600), logger: Logger(label: "test"))
            await sweeper.sweep(now: Date())
            #expect(registry.uploadFiles().count == 1, "a fresh upload stays")
            await sweeper.sweep(now: Date().addingTimeInterval(7200))
            #expect(registry.uploadFiles().isEmpty, "an upload untouched for longer than the TTL goes")
            #expect(sweeper.interval == .seconds(900))
        }
    }
}
