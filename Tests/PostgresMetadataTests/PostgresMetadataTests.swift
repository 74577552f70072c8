import Foundation
import ModelRegistryCore
import PostgresMetadata
import TestServers
import Testing

/// What the PostgreSQL store adds to the conformance suites: its URL, its migrations under replicas that
/// start at once, and how an unreachable server is reported.
@Suite struct PostgresMetadataTests {
    @Test func aLocationIsParsedAndItsPasswordNeverShown() throws {
        let location = try PostgresLocation(
            parsing: "postgres://registry:s%40cret@db.internal:6432/models?sslmode=require")
        #expect(location.host == "db.internal" && location.port == 6432 && location.database == "models")
        #expect(location.user == "registry" && location.password == "s@cret" && location.tls == .require)
        #expect(location.endpoint == "db.internal:6432/models")
        let fallback = try PostgresLocation(parsing: "postgresql://registry@db/models", password: "from PGPASSWORD")
        #expect(fallback.port == 5432 && fallback.password == "from PGPASSWORD" && fallback.tls == .prefer)
        for bad in [
            "mysql://u@h/db", "postgres://h/db", "postgres://u@h/", "postgres://u:topsecret@h/db?sslmode=maybe",
            "postgres://u@h/db?timeout=3",
        ] {
            let error = #expect(throws: RegistryError.self) { _ = try PostgresLocation(parsing: bad) }
            #expect(error?.code == .invalidRequest)
            #expect(error?.message.contains("topsecret") == false, "\(error?.message ?? "")")
        }
    }

    /// Three replicas starting at once on a new database: each step applied once, all of them ready.
    @Test func replicasStartingAtOnceMigrateOnce() async throws {
        let server = try PostgresServer.shared()
        let database = try server.createDatabase()
        defer { server.dropDatabase(database) }
        let location = try PostgresLocation(parsing: server.url(database) + "?sslmode=disable")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let store = try PostgresMetadataStore(location, connections: 2, connectionWait: .seconds(600))
                    try await store.migrate()
                    try await store.checkReady()
                }
            }
            try await group.waitForAll()
        }
        let applied = try server.psql("SELECT COUNT(*), MAX(version) FROM schema_migrations", database: database)
        let files = try FileManager.default.contentsOfDirectory(
            atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../Migrations/postgres"
            ).standardized.path
        ).filter { $0.hasSuffix(".sql") }
        #expect(applied == "\(files.count)|\(files.count)")
    }

    /// A server nobody listens on: NOT_READY (503), naming where it was looked for, never the password.
    @Test func anUnreachableServerIsNotReady() async throws {
        let port = try PostgresServer.freePort()
        let location = try PostgresLocation(
            parsing: "postgres://modelreg:hunter2@127.0.0.1:\(port)/registry?sslmode=disable")
        // The wait is what bounds the answer (a wall-clock bound here would measure the other suites that hold
        // the test process's threads in a full run); the pool alone would retry for over a minute.
        let store = try PostgresMetadataStore(location, connections: 1, connectionWait: .seconds(2))
        let error = await #expect(throws: RegistryError.self) { try await store.checkReady() }
        #expect(error?.code == .notReady, "\(error?.message ?? "")")
        #expect(error?.message.contains("127.0.0.1:\(port)/registry") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("hunter2") == false)
    }

    /// A model's change count is read once and then kept while the store listens: a change the database does
    /// not announce (its trigger disabled, by hand) goes unseen, the next announced one is seen within seconds,
    /// and a write through the store itself is seen at once.
    @Test func aModelsChangeCountIsKeptUntilTheDatabaseAnnouncesAChange() async throws {
        let server = try PostgresServer.shared()
        let database = try server.createDatabase()
        defer { server.dropDatabase(database) }
        let location = try PostgresLocation(parsing: server.url(database) + "?sslmode=disable")
        let store = try PostgresMetadataStore(location, connections: 2, connectionWait: .seconds(600))
        try await store.migrate()
        _ = try server.psql("INSERT INTO models (name, created_at) VALUES ('m', '2026-01-01')", database: database)
        func countInDatabase() throws -> Int {
            Int(try server.psql("SELECT change_count FROM models WHERE name = 'm'", database: database)) ?? -1
        }
        let model = try ModelName("m")
        try await eventually("the store listens and keeps the count") {
            try await store.changeCount(of: model) == store.changeCount(of: model)
        }
        let kept = try await store.changeCount(of: model)
        #expect(kept == (try countInDatabase()))

        _ = try server.psql(
            """
            ALTER TABLE models DISABLE TRIGGER model_changed;
            UPDATE models SET change_count = nextval('model_changes') WHERE name = 'm';
            ALTER TABLE models ENABLE TRIGGER model_changed;
            """, database: database)
        #expect(try await store.changeCount(of: model) == kept, "the count was read again, not kept")

        _ = try server.psql(
            "UPDATE models SET change_count = nextval('model_changes') WHERE name = 'm'", database: database)
        let announced = try countInDatabase()
        try await eventually("the announced count is seen") { try await store.changeCount(of: model) == announced }

        let content = Array("weights".utf8)
        let file = ManifestFile(path: try ManifestPath("w"), digest: Digest.of(content), size: Int64(content.count))
        try await store.recordBlobs([StoredBlob(digest: file.digest, size: file.size, stored: Date())])
        _ = try await store.publish(
            PublishRequest(
                model: model, version: try VersionName("1"), variant: .default,
                manifest: Manifest(format: .other, files: [file]), actor: "test"))
        #expect(try await store.changeCount(of: model) == (try countInDatabase()), "its own write was not seen at once")
    }

    /// Polls `condition` for up to 10 s.
    private func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<200 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting until \(what)")
    }
}
