import Foundation
import ModelRegistryCore
import Testing

/// The OCI distribution-spec's conformance cases (its `conformance/` suite: pull, push, content discovery)
/// that the registry serves, one test a workflow, over curl against a real server.
@Suite struct OCIConformanceTests {
    typealias Fixture = OCIProtocolTests.Fixture

    static let name = "/v2/org/oci"

    static func bytes(_ count: Int, seed: UInt8) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
    }

    /// The blob as served after the push, by HEAD and GET.
    static func expectStored(_ fixture: Fixture, _ data: Data, sourceLocation: SourceLocation = #_sourceLocation) throws
    {
        let digest = Digest.of(data).description
        let head = try fixture.request("\(name)/blobs/\(digest)", method: "HEAD")
        #expect(head.status == 200, "\(head)", sourceLocation: sourceLocation)
        #expect(head.headers["content-length"] == String(data.count), sourceLocation: sourceLocation)
        #expect(head.headers["docker-content-digest"] == digest, sourceLocation: sourceLocation)
        #expect(try fixture.request("\(name)/blobs/\(digest)").body == data, sourceLocation: sourceLocation)
    }

    /// Starts a session: its `Location`.
    static func session(_ fixture: Fixture) throws -> String {
        let started = try fixture.request("\(name)/blobs/uploads/", method: "POST")
        try #require(started.status == 202, "\(started)")
        #expect(started.headers["range"] == "0-0" && started.headers["docker-upload-uuid"] != nil, "\(started)")
        return try #require(started.headers["location"])
    }

    static func finishing(_ location: String, _ digest: String) -> String {
        location + (location.contains("?") ? "&" : "?") + "digest=\(digest)"
    }

    @Test func postThenPutMonolithic() throws {
        let fixture = try Fixture()
        let data = Self.bytes(100_000, seed: 1)
        let location = try Self.session(fixture)
        let put = try fixture.request(
            Self.finishing(location, Digest.of(data).description), method: "PUT", body: data)
        #expect(put.status == 201 && put.headers["location"] == "\(Self.name)/blobs/\(Digest.of(data))", "\(put)")
        #expect(put.headers["docker-content-digest"] == Digest.of(data).description)
        try Self.expectStored(fixture, data)
    }

    @Test func postOnlyMonolithic() throws {
        let fixture = try Fixture()
        let data = Self.bytes(70_000, seed: 2)
        let post = try fixture.request(
            "\(Self.name)/blobs/uploads/?digest=\(Digest.of(data))", method: "POST", body: data)
        #expect(post.status == 201 && post.headers["docker-content-digest"] == Digest.of(data).description, "\(post)")
        try Self.expectStored(fixture, data)
    }

    @Test func chunkedSingleAndMulti() throws {
        let fixture = try Fixture()
        for chunks in [1, 3] {
            let data = Self.bytes(90_001, seed: UInt8(chunks))
            var location = try Self.session(fixture)
            let size = (data.count + chunks - 1) / chunks
            for start in stride(from: 0, to: data.count, by: size) {
                let chunk = data[start..<min(start + size, data.count)]
                let patch = try fixture.request(
                    location, method: "PATCH",
                    headers: ["Content-Range: \(start)-\(start + chunk.count - 1)"], body: Data(chunk))
                #expect(patch.status == 202, "\(patch)")
                #expect(patch.headers["range"] == "0-\(start + chunk.count - 1)", "\(patch)")
                location = try #require(patch.headers["location"])
                let status = try fixture.request(location)
                #expect(status.status == 204 && status.headers["range"] == "0-\(start + chunk.count - 1)", "\(status)")
            }
            let put = try fixture.request(Self.finishing(location, Digest.of(data).description), method: "PUT")
            #expect(put.status == 201, "\(put)")
            try Self.expectStored(fixture, data)
        }
    }

    @Test func outOfOrderChunksAreRefused() throws {
        let fixture = try Fixture()
        let data = Self.bytes(20_000, seed: 9)
        let location = try Self.session(fixture)
        let first = try fixture.request(
            location, method: "PATCH", headers: ["Content-Range: 0-9999"], body: data[0..<10_000])
        #expect(first.status == 202, "\(first)")
        let skipped = try fixture.request(
            location, method: "PATCH", headers: ["Content-Range: 15000-19999"], body: data[15_000..<20_000])
        #expect(skipped.status == 416 && skipped.headers["range"] == "0-9999", "\(skipped)")
        let again = try fixture.request(
            location, method: "PATCH", headers: ["Content-Range: 0-9999"], body: data[0..<10_000])
        #expect(again.status == 416, "a chunk sent twice: \(again)")
        let lying = try fixture.request(
            location, method: "PATCH", headers: ["Content-Range: 10000-10099"], body: data[10_000..<20_000])
        #expect(lying.status == 416, "a range that is not the body's length: \(lying)")
        let rest = try fixture.request(
            location, method: "PATCH", headers: ["Content-Range: 10000-19999"], body: data[10_000..<20_000])
        #expect(rest.status == 202, "\(rest)")
        #expect(try fixture.request(Self.finishing(location, Digest.of(data).description), method: "PUT").status == 201)
        try Self.expectStored(fixture, data)
    }

    @Test func streamedWithoutContentRange() throws {
        let fixture = try Fixture()
        let data = Self.bytes(300_000, seed: 4)
        let location = try Self.session(fixture)
        let patch = try fixture.request(
            location, method: "PATCH", headers: ["Transfer-Encoding: chunked"], body: data)
        #expect(patch.status == 202 && patch.headers["range"] == "0-\(data.count - 1)", "\(patch)")
        let put = try fixture.request(
            Self.finishing(try #require(patch.headers["location"]), Digest.of(data).description), method: "PUT")
        #expect(put.status == 201, "\(put)")
        try Self.expectStored(fixture, data)
    }

    @Test func aWrongDigestStoresNothing() throws {
        let fixture = try Fixture()
        let data = Self.bytes(5_000, seed: 5)
        let wrong = Digest.of(Data("other".utf8)).description
        let location = try Self.session(fixture)
        let put = try fixture.request(Self.finishing(location, wrong), method: "PUT", body: data)
        #expect(put.status == 400 && put.errorCode == "DIGEST_INVALID", "\(put)")
        for digest in [wrong, Digest.of(data).description] {
            #expect(try fixture.request("\(Self.name)/blobs/\(digest)", method: "HEAD").status == 404)
        }
        let post = try fixture.request("\(Self.name)/blobs/uploads/?digest=\(wrong)", method: "POST", body: data)
        #expect(post.status == 400 && post.errorCode == "DIGEST_INVALID", "\(post)")
        let noDigest = try fixture.request(try Self.session(fixture), method: "PUT", body: data)
        #expect(noDigest.status == 400 && noDigest.errorCode == "DIGEST_INVALID", "\(noDigest)")
    }

    @Test func cancelledUploadsAreGone() throws {
        let fixture = try Fixture()
        let location = try Self.session(fixture)
        _ = try fixture.request(location, method: "PATCH", body: Self.bytes(1000, seed: 6))
        let cancel = try fixture.request(location, method: "DELETE")
        #expect(cancel.status == 204, "\(cancel)")
        let status = try fixture.request(location)
        #expect(status.status == 404 && status.errorCode == "BLOB_UPLOAD_UNKNOWN", "\(status)")
        let again = try fixture.request(location, method: "DELETE")
        #expect(again.status == 404 && again.errorCode == "BLOB_UPLOAD_UNKNOWN", "\(again)")
        let bogus = try fixture.request("\(Self.name)/blobs/uploads/not-an-upload", method: "PATCH", body: Data([1]))
        #expect(bogus.status == 404 && bogus.errorCode == "BLOB_UPLOAD_UNKNOWN", "\(bogus)")
    }

    @Test func crossRepositoryMount() throws {
        let fixture = try Fixture()
        let data = Self.bytes(4_000, seed: 7)
        let pushed = try fixture.request(
            "/v2/other/blobs/uploads/?digest=\(Digest.of(data))", method: "POST", body: data)
        try #require(pushed.status == 201, "\(pushed)")
        let mount = try fixture.request(
            "\(Self.name)/blobs/uploads/?mount=\(Digest.of(data))&from=other", method: "POST")
        #expect(mount.status == 201 && mount.headers["location"] == "\(Self.name)/blobs/\(Digest.of(data))", "\(mount)")
        try Self.expectStored(fixture, data)
        // A blob the registry does not hold: an upload session instead, as the spec lets a registry answer.
        let unknown = try fixture.request(
            "\(Self.name)/blobs/uploads/?mount=\(Digest.of(Data("absent".utf8)))&from=other", method: "POST")
        #expect(unknown.status == 202 && unknown.headers["location"] != nil, "\(unknown)")
        // A malformed digest beside a mount is refused, not ignored.
        let malformed = try fixture.request(
            "\(Self.name)/blobs/uploads/?mount=\(Digest.of(data))&from=other&digest=gR", method: "POST")
        #expect(malformed.status == 400 && malformed.errorCode == "DIGEST_INVALID", "\(malformed)")
    }

    @Test func pushingNeedsAWriteToken() throws {
        let fixture = try Fixture()
        let read = try modelreg(
            ["token", "create", "--name", "reader", "--scope", "read"], environment: fixture.server.environment)
        try #require(read.status == 0, "\(read)")
        let token = read.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let denied = try fixture.request("\(Self.name)/blobs/uploads/", method: "POST", token: token)
        #expect(denied.status == 403 && denied.errorCode == "DENIED", "\(denied)")
        let anonymous = try HTTPAnswer.fetch(
            fixture.server.url + "\(Self.name)/blobs/uploads/", method: "POST", headers: [], in: fixture.scratch)
        #expect(anonymous.status == 401, "\(anonymous)")
        #expect(
            anonymous.headers["www-authenticate"]?.hasSuffix(#"scope="repository:org/oci:pull,push""#) == true,
            "\(anonymous)")
    }
}

typealias HTTPAnswer = OCIProtocolTests.HTTPAnswer
