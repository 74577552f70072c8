import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import NIOCore
import Testing

@testable import RegistryServer

@Suite struct MaintenanceRouteTests {
    @Test func maintenanceNeedsAnAdminToken() async throws {
        try await TestRegistry.with(.embedded) { registry, client in
            for (uri, method) in [
                ("/v1/admin/gc", HTTPRequest.Method.post), ("/v1/admin/verify", .post), ("/v1/admin/export", .get),
            ] {
                #expect(try await client.execute(uri: uri, method: method).status == .unauthorized)
                let forbidden = try await client.execute(uri: uri, method: method, headers: auth(registry.write))
                #expect(forbidden.status == .forbidden)
                #expect(forbidden.errorCode == "FORBIDDEN")
            }
        }
    }

    @Test func gcDeletesOnlyOldUnreferencedBlobsAndCountsThem() async throws {
        try await TestRegistry.with(.embedded) { registry, client in
            let garbage = try await putBlob(client, registry.write, Array("garbage".utf8))
            let dryRun = try await client.execute(
                uri: "/v1/admin/gc?dry_run=true&grace=0s", method: .post, headers: auth(registry.admin))
            #expect(dryRun.status == .ok)
            #expect(dryRun.text.contains(garbage.description))
            #expect(registry.blobFiles().count == 1)
            let kept = try await client.execute(uri: "/v1/admin/gc", method: .post, headers: auth(registry.admin))
            #expect(kept.text.contains(#""recent":1"#))
            let swept = try await client.execute(
                uri: "/v1/admin/gc?grace=0s", method: .post, headers: auth(registry.admin))
            #expect(swept.text.contains(#""freedBytes":7"#))
            #expect(registry.blobFiles().isEmpty)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.text.contains("modelreg_gc_deleted_blobs_total 1"))

            for query in ["grace=soon", "grace=-1h", "dry_run=maybe", "dry_run=", "dry_run=1"] {
                let bad = try await client.execute(
                    uri: "/v1/admin/gc?\(query)", method: .post, headers: auth(registry.admin))
                #expect(bad.status == .badRequest, "\(query)")
                #expect(bad.errorCode == "INVALID_REQUEST")
            }
        }
    }

    @Test func verifyQuarantinesACorruptBlobWhichIsThenNotServed() async throws {
        try await TestRegistry.with(.embedded) { registry, client in
            let digest = try await putBlob(client, registry.write, Array("some weights".utf8))
            try Data("some weighTs".utf8).write(to: registry.directory.blob(digest))
            let report = try await client.execute(
                uri: "/v1/admin/verify?sample=1", method: .post, headers: auth(registry.admin))
            #expect(report.status == .ok)
            #expect(report.text.contains(#""corrupt":["\#(digest)"]"#))
            #expect(
                try await client.execute(uri: "/v1/blobs/\(digest)", method: .get, headers: auth(registry.read)).status
                    == .notFound)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.text.contains("modelreg_corrupt_blobs_found_total 1"))
            #expect(metrics.text.contains("modelreg_quarantined_blobs 1"))
            let bad = try await client.execute(
                uri: "/v1/admin/verify?sample=2", method: .post, headers: auth(registry.admin))
            #expect(bad.status == .badRequest)
        }
    }

    /// The export is the store's, byte for byte the same for the same content, with its digest.
    @Test func theExportIsTheStoresMetadataWithItsDigest() async throws {
        try await TestRegistry.with { registry, client in
            try await ReleaseRouteTests.publish(client, registry, "1.0")
            let response = try await client.execute(
                uri: "/v1/admin/export", method: .get, headers: auth(registry.admin))
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == MetadataExport.mediaType)
            let bytes = Array(response.body.readableBytesView)
            #expect(response.headers[.testDigest] == Digest.of(bytes).description)
            let export = try MetadataExport.decode(bytes, from: "the response")
            #expect(export == (try await registry.registry.metadata.exportMetadata()))
            #expect(export.models.map(\.name.value) == ["m"])
            let again = try await client.execute(uri: "/v1/admin/export", method: .get, headers: auth(registry.admin))
            #expect(Array(again.body.readableBytesView) == bytes)
        }
    }
}
