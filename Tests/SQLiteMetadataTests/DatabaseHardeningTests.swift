import Foundation
import GRDB
import ModelRegistryCore
import Testing

@testable import SQLiteMetadata

@Suite struct TokenStorageTests {
    @Test func tokensAreStoredOnlyAsTheirHash() async throws {
        try await withTemporaryDirectory { root in
            let path = root.appendingPathComponent("r.sqlite").path
            let store = try SQLiteMetadataStore(path: path)
            let secret = TokenSecret.generate()
            _ = try await store.createToken(name: TokenLabel("ci"), scope: .write, secret: secret, actor: "test")
            #expect(try await store.token(hash: secret.hash)?.scope == .write)
            #expect(try await store.token(hash: TokenSecret.generate().hash) == nil)
            let hashes = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT hash FROM tokens") }
            #expect(hashes == [secret.hash])
            #expect(secret.hash.count == 64 && !secret.hash.contains(secret.value))
        }
    }
}

@Suite struct FullDatabaseTests {
    /// A database that cannot grow answers SQLITE_FULL, which must become a 507 the client can act on,
    /// not a 500. `max_page_count` makes the database full without filling a disk.
    @Test func sqliteFullBecomesInsufficientStorage() async throws {
        try await withTemporaryDirectory { root in
            let store = try SQLiteMetadataStore(path: root.appendingPathComponent("r.sqlite").path)
            let pages = try await store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0 }
            try await store.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA max_page_count = \(pages + 1)")
            }
            var failure: (any Error)?
            for index in 0..<500 where failure == nil {
                do {
                    let digest = Digest.of(Array("blob \(index)".utf8))
                    try await store.recordBlob(BlobInfo(digest: digest, size: Int64(index)))
                } catch {
                    failure = error
                }
            }
            let error = try #require(failure, "the database never filled up")
            let mapped = RegistryError.insufficientStorage(from: error)
            #expect(mapped?.code == .insufficientStorage, "\(error)")
            #expect(mapped?.httpStatus == 507)
            #expect(mapped?.message.contains("free disk space") == true)
        }
    }

    @Test func otherDatabaseErrorsAreNotStorageErrors() {
        #expect(RegistryError.insufficientStorage(from: DatabaseError(resultCode: .SQLITE_CONSTRAINT)) == nil)
        #expect(RegistryError.insufficientStorage(from: RegistryError(.notFound, "x")) == nil)
        let full = RegistryError(.insufficientStorage, "no space")
        #expect(RegistryError.insufficientStorage(from: full) == full)
    }
}
