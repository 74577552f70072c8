import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import NIOCore
import RegistryAPI
import Testing

@testable import RegistryServer

/// Cache images over HTTP: served whole and by range from the blobs, pre-built with a stable digest.
@Suite struct CacheImageRouteTests {
    /// Publishes the same two files as `model` and returns the manifest digest.
    static func publish(_ client: some TestClientProtocol, _ registry: TestRegistry, _ model: String) async throws
        -> String
    {
        let weights = [UInt8](repeating: 9, count: 3000)
        let config = Array(#"{"a":1}"#.utf8)
        let first = try await putBlob(client, registry.write, weights)
        let second = try await putBlob(client, registry.write, config)
        let manifest = """
            {"schemaVersion":1,"format":"other","files":[{"path":"w/weights.bin","digest":"\(first)","size":3000,"executable":false},\
            {"path":"config.json","digest":"\(second)","size":7,"executable":false}]}
            """
        let response = try await client.execute(
            uri: "/v1/models/\(model)/versions/1/variants/default", method: .put, headers: auth(registry.write),
            body: ByteBuffer(string: manifest)
        )
        #expect(response.status == .created)
        return try #require(response.headers[.modelregDigest])
    }

    @Test func imagesAreBuiltServedAndStable() async throws {
        try await TestRegistry.with { registry, client in
            let digest = try await Self.publish(client, registry, "org/a")
            _ = try await Self.publish(client, registry, "org/b")
            await registry.registry.images.idle()
            func status(_ model: String) async throws -> [String: CacheImageStatus] {
                let list = try await client.execute(
                    uri: "/v1/models/\(model)/images/\(digest)", method: .get, headers: auth(registry.read)
                )
                .decode(CacheImageStatusList.self)
                return Dictionary(uniqueKeysWithValues: list.images.map { ($0.layout, $0) })
            }
            let a = try await status("org/a")
            let b = try await status("org/b")
            #expect(a["flat"]?.state == .ready && a["hf"]?.state == .ready)
            #expect(a["flat"]?.digest == b["flat"]?.digest, "the flat layout does not depend on the model name")
            #expect(a["hf"]?.digest != b["hf"]?.digest, "the hf layout names the model")

            let uri = "/v1/models/org/a/images/\(digest)/flat"
            let whole = try await client.execute(uri: uri, method: .get, headers: auth(registry.read))
            #expect(whole.status == .ok)
            let bytes = Array(buffer: whole.body)
            #expect(Digest.of(bytes) == a["flat"]?.digest)
            #expect(
                whole.headers[.eTag] == "\"\(a["flat"]!.digest!)\"" && whole.headers[.modelregImageState] == "ready")
            #expect(Int64(bytes.count) == a["flat"]?.size)

            let head = try await client.execute(uri: uri, method: .head, headers: auth(registry.read))
            #expect(head.headers[.contentLength] == String(bytes.count) && head.body.readableBytes == 0)
            let partial = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=700-2999"]))
            #expect(partial.status == .partialContent && Array(buffer: partial.body) == Array(bytes[700...2999]))
            #expect(partial.headers[.contentRange] == "bytes 700-2999/\(bytes.count)")
            let outside = try await client.execute(
                uri: uri, method: .get, headers: auth(registry.read, [.range: "bytes=\(bytes.count)-"]))
            #expect(outside.status == .rangeNotSatisfiable)

            for (path, status) in [
                ("/v1/models/org/a/images/\(digest)/zip", HTTPResponse.Status.badRequest),
                ("/v1/models/org/a/images/sha256:\(String(repeating: "0", count: 64))/flat", .notFound),
                ("/v1/models/org/c/images/\(digest)/flat", .notFound),
            ] {
                #expect(
                    try await client.execute(uri: path, method: .get, headers: auth(registry.read)).status == status,
                    "\(path)")
            }
            #expect(try await client.execute(uri: uri, method: .get).status == .unauthorized)
        }
    }
}
