import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import ModelRegistryCore
@testable import RegistryServer
@testable import SQLiteMetadata

/// A database that cannot grow (SQLite answers SQLITE_FULL, as on a full disk) turns a write request into
/// 507 INSUFFICIENT_STORAGE, while reads keep being served.
@Suite struct FullDatabaseRouteTests {
    @Test func sqliteFullAnswers507AndReadsGoOn() async throws {
        try await TestRegistry.with(.embedded) { registry, client in
            let kept = try #require(registry.registry.metadata as? KeptReadsMetadataStore)
            let store = try #require(kept.base as? SQLiteMetadataStore)
            let pages = try await store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
            try await store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA max_page_count = \(pages)")
            }
            var full: TestResponse?
            for index in 0..<200 where full == nil {
                let response = try await client.execute(
                    uri: "/v1/tokens", method: .post, headers: auth(registry.admin),
                    body: ByteBuffer(
                        string: #"{"name":"t\#(index)-\#(String(repeating: "x", count: 40))","scope":"read"}"#)
                )
                if response.status != .created { full = response }
            }
            let response = try #require(full, "the database never filled up")
            #expect(response.status.code == 507 && response.errorCode == "INSUFFICIENT_STORAGE", "\(response.text)")
            #expect(response.text.contains("free disk space"), "\(response.text)")
            let read = try await client.execute(uri: "/v1/tokens", method: .get, headers: auth(registry.admin))
            #expect(read.status == .ok, "reads go on: \(read.text)")
        }
    }
}
