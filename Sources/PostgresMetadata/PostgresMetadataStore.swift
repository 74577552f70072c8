import Foundation
import Logging
import ModelRegistryCore
import NIOCore
import PostgresNIO
import Synchronization

/// Metadata in a PostgreSQL database, shared by every replica of the registry, through a pool of connections.
///
/// Writes run in READ COMMITTED transactions that lock what they decide on: every write to a model locks
/// its row first (publishes, alias moves, deprecations and deletions of one model serialize; those of
/// different models run at once), a publish locks its blobs' records for share and garbage collection locks
/// a record for update before it looks for references, so the two serialize as on any backend.
public final class PostgresMetadataStore: MetadataStore {
    let client: PostgresClient
    /// Names the database in messages: `host:port/database`, never the password.
    let endpoint: String
    let logger: Logger
    private let running: Task<Void, Never>
    private let watchingChanges: Task<Void, Never>
    /// Hands out the change counts that match nothing kept (see `changeCount`).
    private let uncounted = Atomic<Int>(0)
    /// The count of token changes announced while listening (see `changeCount`).
    private let tokenChanges = TokenChangeCount()
    /// The models' change counts announced while listening (see `changeCount(of:)`).
    let modelChanges = ModelChangeCounts()
    /// Set when a request found the server unreachable, cleared by the next that reaches it: meanwhile
    /// requests wait for a connection only as long as readiness does, so that a server that is down costs
    /// each request under a second, not `connectionWait`.
    private let unreachable = Atomic<Bool>(false)

    /// How long a request waits for a connection before it is answered NOT_READY: the pool keeps trying to
    /// connect to a server that is down for far longer than any client waits.
    let connectionWait: Duration
    /// How long a readiness check waits for a connection: below Kubernetes' default probe timeout of 1 s,
    /// so that the probe gets the answer naming the server.
    static let readinessWait = Duration.milliseconds(800)

    /// A store over a new pool of at most `connections` connections for requests (and one that listens for
    /// announced changes), opened as they are needed. The schema is brought up to date by `migrate()`, once, before
    /// serving.
    public init(
        configuration: PostgresClient.Configuration, endpoint: String, connections: Int = 16,
        connectionWait: Duration = .seconds(10), logger: Logger = Logger(label: "modelreg.postgres")
    ) {
        self.connectionWait = connectionWait
        var configuration = configuration
        // One more for the connection that listens for announced changes.
        configuration.options.maximumConnections = connections + 1
        // The pool logs every failed attempt to connect at info; the store's own errors name the server.
        var background = logger
        background.logLevel = max(logger.logLevel, .warning)
        let client = PostgresClient(configuration: configuration, backgroundLogger: background)
        self.client = client
        self.endpoint = endpoint
        self.logger = logger
        running = Task { await client.run() }
        watchingChanges = Task { [tokenChanges, modelChanges] in
            await Self.watchChanges(client, tokens: tokenChanges, models: modelChanges, logger: background)
        }
    }

    deinit {
        watchingChanges.cancel()
        running.cancel()
    }

    /// Moves with every change to the tokens table, whichever replica or operator made it: the database
    /// announces each on the channel `modelreg_tokens` (Migrations/postgres/0004) and a connection of this
    /// store listens, so a token checked once is kept until one changes. A revocation takes effect here as soon
    /// as its announcement arrives, milliseconds after its commit. While nobody listens (the database is
    /// restarting, the store is starting), announcements could be missed: a new number each time, so that no
    /// token is kept.
    public var changeCount: Int { tokenChanges.current ?? uncountedChange }

    /// A new negative number each time, matching nothing kept.
    private var uncountedChange: Int { uncounted.subtract(1, ordering: .relaxed).newValue }

    /// Listens on `modelreg_tokens` and `modelreg_models` for as long as the store runs, on a connection of the
    /// pool; connects again a second after the connection is lost.
    private static func watchChanges(
        _ client: PostgresClient, tokens: TokenChangeCount, models: ModelChangeCounts, logger: Logger
    ) async {
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: "modelreg_tokens") { tokenAnnouncements in
                        try await connection.listen(on: "modelreg_models") { modelAnnouncements in
                            // Anything may have changed while nobody listened.
                            tokens.listening()
                            models.listening()
                            try await withThrowingTaskGroup(of: Void.self) { group in
                                group.addTask { for try await _ in tokenAnnouncements { tokens.changed() } }
                                group.addTask {
                                    for try await announcement in modelAnnouncements {
                                        models.heard(announcement.payload)
                                    }
                                }
                                // Either sequence ends only with the connection: listen again on a new one.
                                try await group.next()
                                group.cancelAll()
                            }
                        }
                    }
                }
            } catch {
                logger.debug("listening for changes stopped: \(error)")
            }
            tokens.stopped()
            models.stopped()
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// The count in the model's row, which every write to the model moves in its transaction, whichever
    /// replica made it. Counts come from one sequence, so a model deleted and made again never repeats one;
    /// a model without a row gets a new negative number each time, matching nothing kept.
    ///
    /// While the store listens, the database announces every new count (Migrations/postgres/0008), so a count
    /// is read once and then kept: a write through another replica reaches this one as its announcement does,
    /// milliseconds after the commit; a write through this store is kept as it commits (`writing`).
    public func changeCount(of model: ModelName) async throws -> Int {
        let epoch = modelChanges.epoch
        if let kept = modelChanges.count(of: model.value) { return kept }
        let count = try await reading { [logger] connection in
            try await connection.values(
                "SELECT change_count FROM models WHERE name = \(model.value)", Int64.self, logger: logger
            ).first
        }
        guard let count else { return uncountedChange }
        modelChanges.read(Int(count), of: model.value, inEpoch: epoch)
        return Int(count)
    }

    // MARK: Connections and transactions

    /// Runs `body` on a connection of the pool, once one is had within `wait` (`connectionWait` unless given,
    /// `readinessWait` while the server is known to be unreachable).
    private func withConnection<T: Sendable>(
        wait: Duration? = nil, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let connectionWait =
            wait ?? (unreachable.load(ordering: .relaxed) ? min(connectionWait, Self.readinessWait) : connectionWait)
        let leased = LeaseState()
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { [client, self] in
                try await client.withConnection { connection in
                    leased.done.withLock { $0 = true }
                    self.unreachable.store(false, ordering: .relaxed)
                    return try await body(connection)
                }
            }
            group.addTask { [endpoint] in
                try await Task.sleep(for: connectionWait)
                guard leased.done.withLock({ $0 }) else {
                    throw RegistryError(
                        .notReady,
                        "PostgreSQL at \(endpoint) gave no connection within \(connectionWait): check that it runs and accepts connections"
                    )
                }
                return nil
            }
            while let result = try await group.next() {
                if let value = result {
                    group.cancelAll()
                    return value
                }
            }
            throw RegistryError(.internalError, "a PostgreSQL request ended without an answer")
        }
    }

    /// A read on one connection, each statement seeing what was committed when it began.
    func reading<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await translatingErrors { try await withConnection(body) }
    }

    /// Reads that must agree with each other (a resolve, an export): one snapshot for all of them.
    func readingSnapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T)
        async throws -> T
    {
        try await transaction(isolation: "REPEATABLE READ READ ONLY", body)
    }

    /// Every write goes through here; those to a model move its change count by locking its row
    /// (`lockModel`), and the counts it committed are kept at once, not when their announcement arrives, so
    /// that this replica never answers from before its own write.
    func writing<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let epoch = modelChanges.epoch
        let written = WrittenModelCounts()
        let result = try await WrittenModelCounts.$current.withValue(written) {
            try await transaction(isolation: "READ COMMITTED", body)
        }
        for (model, count) in written.counts { modelChanges.read(count, of: model, inEpoch: epoch) }
        return result
    }

    /// One transaction, retried when PostgreSQL gives it up to a serialization failure or a deadlock (it
    /// rolled back: nothing was written).
    private func transaction<T: Sendable>(
        isolation: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await translatingErrors {
                    try await withConnection { [logger] connection in
                        try await connection.query(
                            PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL \(isolation)"), logger: logger)
                        do {
                            let result = try await body(connection)
                            try await connection.query("COMMIT", logger: logger)
                            return result
                        } catch {
                            _ = try? await connection.query("ROLLBACK", logger: logger)
                            throw error
                        }
                    }
                }
            } catch let error as PostgresRetry where attempt < 5 {
                _ = error
                attempt += 1
            }
        }
    }

    /// PostgreSQL's errors as the registry's: a lost or refused connection is 503 NOT_READY naming the server,
    /// anything else a storage failure with the server's message. A transaction PostgreSQL rolled back to
    /// break a conflict is handed to `transaction` to run again.
    private func translatingErrors<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as RegistryError {
            if error.code == .notReady { unreachable.store(true, ordering: .relaxed) }
            throw error
        } catch let error as PSQLError {
            if let state = error.serverInfo?[.sqlState] {
                if state == "40001" || state == "40P01" { throw PostgresRetry() }
                let message = error.serverInfo?[.message] ?? "error \(state)"
                if Self.isUnavailable(state) {
                    unreachable.store(true, ordering: .relaxed)
                    throw RegistryError(
                        .notReady,
                        "PostgreSQL at \(endpoint) is not available (\(message), SQLSTATE \(state)): wait until it is back"
                    )
                }
                throw RegistryError(.storageFailure, "PostgreSQL at \(endpoint): \(message) (SQLSTATE \(state))")
            }
            unreachable.store(true, ordering: .relaxed)
            throw RegistryError(
                .notReady,
                "PostgreSQL at \(endpoint) is unreachable (\(error.code)): check that it runs and accepts connections")
        } catch is CancellationError {
            throw CancellationError()
        } catch  where "\(type(of: error))".contains("ConnectionPoolError") {
            unreachable.store(true, ordering: .relaxed)
            throw RegistryError(
                .notReady,
                "PostgreSQL at \(endpoint) is unreachable (\(error)): check that it runs and accepts connections")
        } catch {
            throw RegistryError(.storageFailure, "PostgreSQL at \(endpoint): \(error)")
        }
    }

    /// The server is shutting down, starting, out of connections or has lost the connection: a state to wait
    /// out, not a failure of the request (class 08, connection exceptions; 57P, operator intervention such as
    /// a shutdown; 53300, too many connections).
    static func isUnavailable(_ state: String) -> Bool {
        state.hasPrefix("08") || state.hasPrefix("57P") || state == "53300"
    }

    // MARK: Schema

    /// Applies the embedded migrations of Migrations/postgres/ in order, one transaction each, under an
    /// advisory lock, so replicas starting at once apply each step once. A database with migrations this binary
    /// does not know is refused rather than guessed at.
    public func migrate() async throws {
        try await translatingErrors {
            try await withConnection { [logger] connection in
                try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
                do {
                    try await Self.applyMigrations(connection, logger: logger)
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                    throw error
                }
                try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
            }
        }
    }

    /// The advisory lock migrations hold: an arbitrary number no other code of this database uses.
    static let migrationLock: Int64 = 0x6d6f_6465_6c72_6567

    static var latestVersion: Int { embeddedMigrations.last?.version ?? 0 }

    private static func applyMigrations(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)
            """, logger: logger)
        let current = try await appliedVersion(connection, logger: logger)
        guard current <= latestVersion else {
            throw RegistryError(
                .databaseTooNew,
                "the database is at schema version \(current) but this modelreg knows only up to \(latestVersion): upgrade modelreg"
            )
        }
        for migration in embeddedMigrations where migration.version > current {
            try await connection.query("BEGIN", logger: logger)
            do {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    """
                    INSERT INTO schema_migrations (version, name, applied_at)
                    VALUES (\(migration.version), \(migration.name), \(Timestamp.now()))
                    """, logger: logger)
                try await connection.query("COMMIT", logger: logger)
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    static func appliedVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        let rows = try await connection.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", logger: logger)
        for try await version in rows.decode(Int.self) { return version }
        return 0
    }

    /// Answers within `readinessWait` however long requests wait: a probe that times out tells less than one
    /// that names the server it could not reach.
    public func checkReady() async throws {
        let applied = try await translatingErrors {
            try await withConnection(wait: min(connectionWait, Self.readinessWait)) { [logger] connection in
                try await Self.appliedVersion(connection, logger: logger)
            }
        }
        guard applied == Self.latestVersion else {
            throw RegistryError(
                .storageFailure, "database schema is at version \(applied), expected \(Self.latestVersion)")
        }
    }
}

/// Whether a request got its connection, shared by the request and its timer.
private final class LeaseState: Sendable {
    let done = Mutex(false)
}

/// A transaction PostgreSQL rolled back to resolve a conflict, to be run again.
struct PostgresRetry: Error {}

/// One numbered step of the schema, from `Migrations/postgres/NNNN_name.sql` (compiled in by EmbedMigrations).
struct Migration: Sendable {
    var version: Int
    var name: String
    var sql: String

    /// The file's statements, each sent on its own (a prepared statement holds one command): a statement ends
    /// with the line that ends in `;`, and comment lines are left out.
    var statements: [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n") {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty || text.hasPrefix("--") { continue }
            current.append(line)
            if text.hasSuffix(";") {
                statements.append(current.joined(separator: "\n"))
                current = []
            }
        }
        if !current.isEmpty { statements.append(current.joined(separator: "\n")) }
        return statements
    }
}

extension PostgresConnection {
    /// Every row of `query`, decoded.
    func rows<each Column: PostgresDecodable & Sendable>(
        _ query: PostgresQuery, _ columns: (repeat each Column).Type, logger: Logger
    ) async throws -> [(repeat each Column)] {
        var result: [(repeat each Column)] = []
        for try await row in try await self.query(query, logger: logger).decode(columns) { result.append(row) }
        return result
    }

    /// The first column of every row of `query`.
    func values<Value: PostgresDecodable & Sendable>(_ query: PostgresQuery, _ type: Value.Type, logger: Logger)
        async throws -> [Value]
    {
        var result: [Value] = []
        for try await value in try await self.query(query, logger: logger).decode(Value.self) { result.append(value) }
        return result
    }
}
