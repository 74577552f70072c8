import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import NIOCore
import RegistryAPI
import Testing

@testable import RegistryServer

@Suite struct HealthAndAuthTests {
    @Test func healthMetricsAndDocumentNeedNoToken() async throws {
        try await TestRegistry.with { _, client in
            #expect(try await client.execute(uri: "/health/live", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/health/ready", method: .get).status == .ok)
            let document = try await client.execute(uri: "/openapi.json", method: .get)
            #expect(document.status == .ok)
            #expect(
                (try JSONSerialization.jsonObject(with: Data(document.body.readableBytesView)) as? [String: Any])?[
                    "openapi"] != nil)
            _ = try await client.execute(uri: "/v1/models", method: .get)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(
                metrics.text.contains(#"modelreg_http_requests_total{method="GET",route="/v1/models",status="401"} 1"#))
        }
    }

    @Test func scopesAreEnforced() async throws {
        try await TestRegistry.with { registry, client in
            let none = try await client.execute(uri: "/v1/models", method: .get)
            #expect(none.status == .unauthorized)
            #expect(none.errorCode == "UNAUTHORIZED")
            #expect(none.headers[.wwwAuthenticate] == "Bearer realm=\"modelreg\"")
            #expect(
                try await client.execute(uri: "/v1/models", method: .get, headers: auth("mrt_wrong")).status
                    == .unauthorized)
            #expect(
                try await client.execute(uri: "/v1/models", method: .get, headers: auth(registry.read)).status == .ok)

            let readPut = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.read))
            #expect(readPut.status == .forbidden)
            #expect(readPut.errorCode == "FORBIDDEN")
            #expect(
                try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.write)).status
                    == .accepted)

            let body = ByteBuffer(string: #"{"name":"ci","scope":"read"}"#)
            #expect(
                try await client.execute(uri: "/v1/tokens", method: .post, headers: auth(registry.write), body: body)
                    .status == .forbidden)
            let created = try await client.execute(
                uri: "/v1/tokens", method: .post, headers: auth(registry.admin), body: body)
            #expect(created.status == .created)
            let token = try created.decode(CreatedToken.self)
            #expect(try await client.execute(uri: "/v1/models", method: .get, headers: auth(token.token)).status == .ok)
            let listed = try await client.execute(uri: "/v1/tokens", method: .get, headers: auth(registry.admin))
            #expect(!listed.text.contains(token.token))
            #expect(
                try await client.execute(uri: "/v1/tokens/ci", method: .delete, headers: auth(registry.admin)).status
                    == .ok)
            #expect(
                try await client.execute(uri: "/v1/models", method: .get, headers: auth(token.token)).status
                    == .unauthorized)
        }
    }

    @Test func anonymousReadAllowsReadsOnly() async throws {
        try await TestRegistry.with(anonymousRead: true) { _, client in
            let read = try await client.execute(uri: "/v1/models", method: .get)
            let write = try await client.execute(uri: "/v1/uploads", method: .post)
            let admin = try await client.execute(uri: "/v1/tokens", method: .get)
            #expect(read.status == .ok)
            #expect(write.status == .unauthorized)
            #expect(admin.status == .unauthorized)
        }
    }

    @Test func unknownRoutesGetAJSONError() async throws {
        try await TestRegistry.with { registry, client in
            let response = try await client.execute(uri: "/v3/nothing", method: .get, headers: auth(registry.read))
            #expect(response.status == .notFound)
            #expect(response.errorCode == "NOT_FOUND")
            let model = try await client.execute(
                uri: "/v1/models/m/versions/1/bogus", method: .get, headers: auth(registry.read))
            #expect(model.status == .notFound)
        }
    }
}

@Suite struct BlobAndUploadTests {
    let bytes: [UInt8] = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }

    @Test func chunkedUploadWithResumeAndFinalize() async throws {
        try await TestRegistry.with { registry, client in
            let created = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.write))
            #expect(created.status == .accepted)
            let location = try #require(created.headers[.location])
            #expect(created.headers[.testUploadOffset] == "0")

            let missingOffset = try await client.execute(
                uri: location, method: .patch, headers: auth(registry.write), body: ByteBuffer(bytes: bytes))
            #expect(missingOffset.status == .badRequest)

            let first = try await client.execute(
                uri: location, method: .patch, headers: auth(registry.write, [.testUploadOffset: "0"]),
                body: ByteBuffer(bytes: bytes[..<4000])
            )
            #expect(first.status == .accepted)
            #expect(first.headers[.testUploadOffset] == "4000")

            let stale = try await client.execute(
                uri: location, method: .patch, headers: auth(registry.write, [.testUploadOffset: "0"]),
                body: ByteBuffer(bytes: bytes)
            )
            #expect(stale.status == .rangeNotSatisfiable)
            #expect(stale.errorCode == "UPLOAD_OFFSET_MISMATCH")

            let head = try await client.execute(uri: location, method: .head, headers: auth(registry.write))
            #expect(head.headers[.testUploadOffset] == "4000")

            let digest = Digest.of(bytes)
            let finished = try await client.execute(
                uri: "\(location)?digest=\(digest)", method: .put, headers: auth(registry.write),
                body: ByteBuffer(bytes: bytes[4000...])
            )
            #expect(finished.status == .created, "\(finished.text)")
            #expect(try finished.decode(CommittedBlob.self).size == Int64(bytes.count))
            #expect(try await registry.leftoverUploads().isEmpty)

            let blob = try await client.execute(uri: "/v1/blobs/\(digest)", method: .get, headers: auth(registry.read))
            #expect(blob.status == .ok)
            #expect(Array(buffer: blob.body) == bytes)
            #expect(blob.headers[.eTag] == "\"\(digest)\"")
        }
    }

    @Test func wrongDigestStoresNothing() async throws {
        try await TestRegistry.with { registry, client in
            let created = try await client.execute(uri: "/v1/uploads", method: .post, headers: auth(registry.write))
            let location = try #require(created.headers[.location])
            _ = try await client.execute(
                uri: location, method: .patch, headers: auth(registry.write, [.testUploadOffset: "0"]),
                body: ByteBuffer(bytes: bytes[..<100])
            )
            // Truncated: only 100 of the bytes arrived, so the digest of the whole cannot match.
            let response = try await client.execute(
                uri: "\(location)?digest=\(Digest.of(bytes))", method: .put, headers: auth(registry.write))
            #expect(response.status == .badRequest)
            #expect(response.errorCode == "DIGEST_MISMATCH")
            #expect(try await registry.storedBlobs().isEmpty)
            #expect(try await registry.leftoverUploads().isEmpty)
            #expect(
                try await client.execute(uri: location, method: .head, headers: auth(registry.write)).status
                    == .notFound)

            let monolithic = try await client.execute(
                uri: "/v1/blobs/\(Digest.of(Array("other".utf8)))", method: .put, headers: auth(registry.write),
                body: ByteBuffer(bytes: bytes)
            )
            #expect(monolithic.errorCode == "DIGEST_MISMATCH")
            #expect(try await registry.storedBlobs().isEmpty)
            #expect(try await registry.leftoverUploads().isEmpty)

            let badDigest = try await client.execute(
                uri: "/v1/blobs/sha256:xyz", method: .get, headers: auth(registry.read))
            #expect(badDigest.status == .badRequest)
            #expect(badDigest.errorCode == "INVALID_DIGEST")
            let badUpload = try await client.execute(
                uri: "/v1/uploads/..%2Fregistry.sqlite", method: .get, headers: auth(registry.write))
            #expect(badUpload.status == .notFound)
        }
    }

    @Test func rangesAndHead() async throws {
        try await TestRegistry.with { registry, client in
            let digest = try await putBlob(client, registry.write, bytes)
            let uri = "/v1/blobs/\(digest)"
            let head = try await client.execute(uri: uri, method: .head, headers: auth(registry.read))
            #expect(head.status == .ok)
            #expect(head.headers[.contentLength] == String(bytes.count))
            #expect(head.body.readableBytes == 0)

            let part = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=10-19"]))
            #expect(part.status == .partialContent)
            #expect(part.headers[.contentRange] == "bytes 10-19/\(bytes.count)")
            #expect(Array(buffer: part.body) == Array(bytes[10...19]))

            let tail = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=-5"]))
            #expect(Array(buffer: tail.body) == Array(bytes.suffix(5)))
            let open = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=9990-"]))
            #expect(Array(buffer: open.body) == Array(bytes[9990...]))

            let outside = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=20000-"]))
            #expect(outside.status == .rangeNotSatisfiable)
            #expect(outside.headers[.contentRange] == "bytes */\(bytes.count)")

            let encoded = try await client.execute(
                uri: "/v1/blobs/\(digest.description.replacingOccurrences(of: ":", with: "%3A"))", method: .get,
                headers: auth(registry.read)
            )
            #expect(Array(buffer: encoded.body) == bytes)

            let missing = try await client.execute(
                uri: "/v1/blobs/\(Digest.of([1]))", method: .head, headers: auth(registry.read))
            #expect(missing.status == .notFound)
        }
    }
}

@Suite struct PublishTests {
    func manifestJSON(_ files: [(String, Digest, Int)]) -> ByteBuffer {
        let entries = files.map { #"{"path":"\#($0.0)","digest":"\#($0.1)","size":\#($0.2),"executable":false}"# }
        return ByteBuffer(
            string: #"{"schemaVersion":1,"format":"safetensors","files":[\#(entries.joined(separator: ","))]}"#)
    }

    @Test func publishResolveAndRefuse() async throws {
        try await TestRegistry.with { registry, client in
            let weights = Array(repeating: UInt8(1), count: 1000)
            let config = Array("{}".utf8)
            let w = try await putBlob(client, registry.write, weights)
            let c = try await putBlob(client, registry.write, config)
            let ghost = Digest.of(Array("never uploaded".utf8))
            let uri = "/v1/models/org/m/versions/1.0/variants/fp16"

            let missing = try await client.execute(
                uri: uri, method: .put, headers: auth(registry.write),
                body: manifestJSON([("a.safetensors", w, 1000), ("b", ghost, 3)])
            )
            #expect(missing.status == .badRequest)
            #expect(missing.errorCode == "BLOBS_MISSING")
            #expect(missing.text.contains(ghost.description))

            let wrongSize = try await client.execute(
                uri: uri, method: .put, headers: auth(registry.write), body: manifestJSON([("a", w, 999)]))
            #expect(wrongSize.errorCode == "BLOBS_MISSING")
            let traversal = try await client.execute(
                uri: uri, method: .put, headers: auth(registry.write), body: manifestJSON([("../a", w, 1000)]))
            #expect(traversal.status == .badRequest)
            #expect(traversal.errorCode == "INVALID_PATH")
            let badName = try await client.execute(
                uri: "/v1/models/Bad_Name/versions/1/variants/x", method: .put, headers: auth(registry.write),
                body: manifestJSON([("a", w, 1000)])
            )
            #expect(badName.errorCode == "INVALID_NAME")
            #expect(
                try await client.execute(uri: "/v1/models", method: .get, headers: auth(registry.read)).text
                    == #"{"models":[]}"#)

            let body = manifestJSON([("model.safetensors", w, 1000), ("config.json", c, 2)])
            let created = try await client.execute(uri: uri, method: .put, headers: auth(registry.write), body: body)
            #expect(created.status == .created, "\(created.text)")
            let published = try created.decode(PublishedVariant.self)
            #expect(published.created && published.variant.size == 1002 && published.variant.fileCount == 2)
            let again = try await client.execute(uri: uri, method: .put, headers: auth(registry.write), body: body)
            #expect(again.status == .ok)
            let conflict = try await client.execute(
                uri: uri, method: .put, headers: auth(registry.write), body: manifestJSON([("x", w, 1000)]))
            #expect(conflict.status == .conflict)

            for reference in [":1.0", "@\(published.variant.digest)"] {
                let manifest = try await client.execute(
                    uri: "/v1/models/org/m/manifests/\(reference)", method: .get, headers: auth(registry.read))
                #expect(manifest.status == .ok)
                #expect(Digest.of(Array(buffer: manifest.body)) == published.variant.digest)
                #expect(manifest.headers[.testDigest] == published.variant.digest.description)
            }
            let alias = try await client.execute(
                uri: "/v1/models/org/m/aliases/prod", method: .put, headers: auth(registry.write),
                body: ByteBuffer(string: #"{"version":"1.0"}"#)
            )
            #expect(alias.status == .ok)
            let viaAlias = try await client.execute(
                uri: "/v1/models/org/m/manifests/@prod", method: .get, headers: auth(registry.read))
            #expect(viaAlias.headers[.testDigest] == published.variant.digest.description)

            let head = try await client.execute(
                uri: "/v1/models/org/m/manifests/@prod", method: .head, headers: auth(registry.read))
            #expect(head.status == .ok && head.body.readableBytes == 0)
            #expect(head.headers[.contentLength] == String(viaAlias.body.readableBytes))
            let encodedSlash = try await client.execute(
                uri: "/v1/models/org%2Fm", method: .get, headers: auth(registry.read))
            #expect(encodedSlash.status == .badRequest && encodedSlash.errorCode == "INVALID_NAME")
            let bareReference = try await client.execute(
                uri: "/v1/models/org/m/manifests/prod", method: .get, headers: auth(registry.read))
            #expect(bareReference.status == .badRequest && bareReference.errorCode == "INVALID_REFERENCE")

            let unknown = try await client.execute(
                uri: "/v1/models/org/m/manifests/:9.9", method: .get, headers: auth(registry.read))
            #expect(unknown.status == .notFound)
            #expect(unknown.text.contains("org/m:9.9"))
            let readerPublish = try await client.execute(
                uri: uri, method: .put, headers: auth(registry.read), body: body)
            #expect(readerPublish.status == .forbidden)
        }
    }
}

@Suite struct RoutingTests {
    func route(_ path: String) throws -> ModelRoute {
        try ModelRoute(segments: path.split(separator: "/"))
    }

    @Test func parsesModelPaths() throws {
        let m = try ModelName("m")
        let om = try ModelName("org/m")
        let v = try VersionName("1.0")
        #expect(try route("m") == .model(m))
        #expect(try route("org/m") == .model(om))
        #expect(try route("m/versions") == .versions(m))
        #expect(try route("org/m/versions/1.0") == .version(om, v))
        #expect(try route("org/m/versions/1.0/variants/fp16") == .variant(om, v, try VariantName("fp16")))
        #expect(try route("m/aliases/prod") == .alias(m, try AliasName("prod")))
        #expect(try route("org/m/manifests/@prod") == .manifest(try ModelReference(parsing: "org/m@prod")))
        #expect(try route("org/m/manifests/%3A1.0") == .manifest(try ModelReference(parsing: "org/m:1.0")))
        #expect(throws: RegistryError.self) { try route("m/manifests/prod") }
        #expect(throws: RegistryError.self) { try route("a/b/c") }
        #expect(throws: RegistryError.self) { try route("m/versions/1/variants") }
    }

    @Test func parsesRanges() {
        #expect(ByteRange.parse(nil, size: 10) == .whole)
        #expect(ByteRange.parse("bytes=0-4", size: 10) == .partial(ByteRange(start: 0, end: 4)))
        #expect(ByteRange.parse("bytes=5-100", size: 10) == .partial(ByteRange(start: 5, end: 9)))
        #expect(ByteRange.parse("bytes=-3", size: 10) == .partial(ByteRange(start: 7, end: 9)))
        #expect(ByteRange.parse("bytes=-30", size: 10) == .partial(ByteRange(start: 0, end: 9)))
        #expect(ByteRange.parse("bytes=10-", size: 10) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=-0", size: 10) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=5-2", size: 10) == .whole)
        #expect(ByteRange.parse("bytes=0-1,3-4", size: 10) == .whole)
        #expect(ByteRange.parse("bytes=-1-2", size: 10) == .unsatisfiable)
        #expect(ByteRange.parse("bytes=99999999999999999999-", size: 10) == .whole)
        #expect(ByteRange.parse("items=0-1", size: 10) == .whole)
    }
}

/// A path the API has, asked with a method it does not answer, is told so (405 with `Allow`), before the
/// token is looked at; a path it does not have stays 404; every GET answers HEAD with its headers and no body.
@Suite struct MethodTests {
    @Test func aWrongMethodIsAnsweredWith405AndTheAllowedMethods() async throws {
        try await TestRegistry.with { registry, client in
            let alias = try await client.execute(
                uri: "/v1/models/m/aliases/prod", method: .delete, headers: auth(registry.write))
            #expect(alias.status == .methodNotAllowed)
            #expect(alias.errorCode == "METHOD_NOT_ALLOWED")
            #expect(alias.headers[.allow] == "GET, HEAD, PUT")
            let anonymous = try await client.execute(uri: "/v1/models/org/m/versions/1.0/deprecate", method: .get)
            #expect(anonymous.status == .methodNotAllowed, "the method is wrong whatever the token: \(anonymous.text)")
            #expect(anonymous.headers[.allow] == "POST")
            let trace = try await client.execute(uri: "/health/live", method: HTTPRequest.Method("TRACE")!)
            #expect(trace.status == .methodNotAllowed)
            #expect(trace.headers[.allow]?.contains("GET") == true)
            #expect(trace.text.contains("TRACE is not allowed on /health/live"), "\(trace.text)")
            let upload = try await client.execute(
                uri: "/v1/uploads/00000000-0000-4000-8000-000000000000", method: .post, headers: auth(registry.write))
            #expect(upload.status == .methodNotAllowed)
            #expect(
                Set(upload.headers[.allow]?.components(separatedBy: ", ") ?? []) == [
                    "GET", "HEAD", "PATCH", "PUT", "DELETE",
                ])
            // An OCI upload whose id does not parse is still an upload: its methods, then a 404 for the id.
            let malformed = try await client.execute(
                uri: "/v2/m/blobs/uploads/\(String(repeating: "0", count: 64))", method: .options,
                headers: auth(registry.write))
            #expect(malformed.status == .methodNotAllowed)
            #expect(
                Set(malformed.headers[.allow]?.components(separatedBy: ", ") ?? []) == [
                    "GET", "HEAD", "PATCH", "PUT", "DELETE",
                ], "\(malformed.headers)")
            let unknown = try await client.execute(
                uri: "/v2/m/blobs/uploads/not-an-id", method: .patch, headers: auth(registry.write))
            #expect(unknown.status == .notFound && unknown.text.contains("BLOB_UPLOAD_UNKNOWN"), "\(unknown.text)")
            let nowhere = try await client.execute(uri: "/v1/nowhere", method: .delete, headers: auth(registry.write))
            #expect(nowhere.status == .notFound && nowhere.errorCode == "NOT_FOUND")
            let badModelPath = try await client.execute(
                uri: "/v1/models/a/b/c", method: .patch, headers: auth(registry.write))
            #expect(badModelPath.status == .notFound, "\(badModelPath.text)")

            let metrics = try await client.execute(uri: "/metrics", method: .get).text
            #expect(
                metrics.contains(
                    #"modelreg_http_requests_total{method="DELETE",route="/v1/models/{name}/aliases/{alias}",status="405"} 1"#
                ), "\(metrics)")
            #expect(
                metrics.contains(#"modelreg_http_requests_total{method="DELETE",route="unmatched",status="404"} 1"#))
        }
    }

    @Test func everyGetAnswersHeadWithItsLengthAndNoBody() async throws {
        try await TestRegistry.with { registry, client in
            for (path, token) in [
                ("/health/live", nil), ("/health/ready", nil), ("/openapi.json", nil), ("/metrics", nil),
                ("/v1/models", registry.read), ("/v1/tokens", registry.admin),
            ] as [(String, String?)] {
                let headers = token.map { auth($0) } ?? [:]
                let get = try await client.execute(uri: path, method: .get, headers: headers)
                let head = try await client.execute(uri: path, method: .head, headers: headers)
                #expect(head.status == get.status, "\(path)")
                #expect(head.body.readableBytes == 0, "\(path)")
                #expect(head.headers[.contentType] == get.headers[.contentType], "\(path)")
                if path != "/metrics" {
                    #expect(head.headers[.contentLength] == String(get.body.readableBytes), "\(path): \(head.headers)")
                }
            }
        }
    }
}
