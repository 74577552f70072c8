import FileSystemBlobs
import FileSystemIO
import Foundation
import Logging
import ModelRegistryCore
import PostgresMetadata
import S3Blobs
import SQLiteMetadata
import Synchronization
import WebUI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The registry's state behind the HTTP layer: where blobs and metadata live, and how requests are authorized.
public struct Registry: Sendable {
    public let blobs: any BlobStore
    public let metadata: any MetadataStore
    public let anonymousRead: Bool
    /// How long the presigned URL of a redirected blob download is valid; nil when the registry serves blob
    /// bytes itself.
    public let blobRedirectExpiry: Duration?
    let metrics: RegistryMetrics
    let downloadSpeeds = DownloadSpeeds()
    let images: CacheImageBuilder
    /// Set on SIGTERM: readiness fails and new API requests are refused while requests in flight finish.
    public let shutdown = ShutdownState()
    /// Answers to reads of model metadata, kept until the database changes: the metadata routes are read
    /// far more often than written, and encoding a model's versions costs more than the query.
    let renderedReads = ReadCache<RenderedRead, RenderedResponse>(limit: 32 << 20)
    /// The variants the Hub protocol's revisions named, kept until their model changes.
    let hubSnapshots = ReadCache<HubSnapshotKey, HubSnapshot>(limit: 8 << 20)
    /// Who is signed in to the web pages (`/ui`), kept in the metadata store.
    let webSessions: SignInSessions
    /// Models as OCI repositories (their artifacts and tags), kept until they change.
    let ociRepositories = ReadCache<ModelName, OCIRepository>(limit: 16 << 20)
    /// Whether clients reach this server over HTTPS, for the absolute URLs it hands out.
    public var servesTLS = false

    public init(
        blobs: any BlobStore, metadata: any MetadataStore, anonymousRead: Bool, blobRedirectExpiry: Duration? = nil,
        logger: Logger = Logger(label: "modelreg")
    ) {
        self.blobs = blobs
        self.metadata = metadata
        self.anonymousRead = anonymousRead
        self.blobRedirectExpiry = blobRedirectExpiry
        self.metrics = RegistryMetrics()
        self.images = CacheImageBuilder(blobs: blobs, metadata: metadata, logger: logger)
        self.webSessions = SignInSessions(store: metadata)
    }

    /// Opens the registry in a data directory, creating it and its first admin token when it is new. With
    /// an admin token file, that token is the admin token instead, added at every start if it is unknown.
    public static func open(_ configuration: ServerConfiguration, logger: Logger) async throws -> Registry {
        let directory = configuration.dataDirectory
        try ListeningPort.checkFree(host: configuration.host, port: configuration.port)
        if configuration.keepsDataInDirectory {
            try directory.create()
            try claim(directory)
            removeLeftovers(of: directory, logger: logger)
        } else {
            try directory.createRoot()
        }
        let metadata = try await RegistryStores.metadata(configuration.metadata, directory: directory)
        let blobs = try RegistryStores.blobs(configuration.blobs, directory: directory, metadata: metadata)
        var registry = Registry(
            blobs: blobs,
            metadata: metadata,
            anonymousRead: configuration.anonymousRead,
            blobRedirectExpiry: configuration.blobRedirectExpiry,
            logger: logger
        )
        registry.servesTLS = configuration.tls != nil
        if let file = configuration.adminTokenFile {
            let secret = try readTokenFile(file)
            if try await metadata.installAdminToken(
                name: try TokenLabel("admin-token-file"), secret: secret, actor: "modelreg-serve")
            {
                logger.notice("added the admin token of a token file", metadata: ["file": .string(file)])
            }
        } else if try await !metadata.hasTokens() {
            let secret = TokenSecret.generate()
            _ = try await metadata.createToken(
                name: try TokenLabel("admin"), scope: .admin, secret: secret, actor: "modelreg-serve")
            try writeSecretFile(secret.value + "\n", to: directory.adminToken.path)
            logger.notice("created the first admin token", metadata: ["file": .string(directory.adminToken.path)])
        }
        // A server killed between storing a blob and recording it left the blob unrecorded (so did a collection
        // killed between claiming a blob and deleting it): its client finds it stored and skips the upload, and
        // the publish, which names only recorded blobs, would be refused. Recorded with their stored times.
        try await metadata.recordBlobs(try await registry.blobs.list())
        await registry.images.enqueueAliasTargets()
        return registry
    }

    /// One server a data directory: it keeps its answers to metadata reads until it writes a change itself
    /// (`renderedReads`), and removes the scratch files it finds at start, both of which another server on
    /// the same directory would break. The lock is held until the process ends.
    private static func claim(_ directory: DataDirectory) throws(RegistryError) {
        let lock = try directory.claim(doing: "serving it")
        if FileManager.default.fileExists(atPath: directory.restoreMarker.path) {
            lock.unlock()
            throw RegistryError(
                .conflict,
                "\(directory.root.path) holds an unfinished restore: run `modelreg restore --data \(directory.root.path) --force` again to complete it"
            )
        }
        heldLocks.withLock { $0.append(lock) }
    }

    /// The data directories this process serves; their locks go when it ends.
    private static let heldLocks = Mutex<[FileLock]>([])

    /// What servers of earlier versions kept in the data directory and this one does not: the database copies
    /// they wrote into `tmp/` to answer `/v1/admin/snapshot` (a killed one left a whole copy of the database),
    /// and `images/`, the cache image records now kept by the metadata store (the alias targets' images are
    /// built again at start). Other tools' files in `tmp/` are left alone.
    private static func removeLeftovers(of directory: DataDirectory, logger: Logger) {
        let fileManager = FileManager.default
        let leftovers =
            ((try? fileManager.contentsOfDirectory(atPath: directory.tmp.path)) ?? [])
            .filter { $0.hasPrefix("snapshot-") }.map { directory.tmp.appendingPathComponent($0).path }
            + (fileManager.fileExists(atPath: directory.legacyImages.path) ? [directory.legacyImages.path] : [])
        for path in leftovers {
            do {
                try fileManager.removeItem(atPath: path)
            } catch {
                logger.error(
                    "cannot remove a leftover of an earlier version",
                    metadata: ["path": .string(path), "error": "\(error)"])
            }
        }
        if !leftovers.isEmpty {
            logger.notice("removed the leftovers of an earlier version", metadata: ["count": "\(leftovers.count)"])
        }
    }

    /// The token in `--admin-token-file`: one line of at least 32 printable characters, so that a
    /// guessable or mis-mounted value is refused rather than made an admin.
    private static func readTokenFile(_ path: String) throws -> TokenSecret {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw RegistryError(.invalidRequest, "cannot read the admin token file \(path)")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 32, token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw RegistryError(
                .invalidRequest,
                "the admin token file \(path) must hold one token of at least 32 printable characters without spaces (for example: openssl rand -hex 32)"
            )
        }
        return TokenSecret(token)
    }

    /// Writes a file that only the owner can read, replacing any earlier one.
    private static func writeSecretFile(_ text: String, to path: String) throws {
        try POSIXFile.remove(path)
        let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try Array(text.utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
        try file.close()
    }

    /// Whether a token's scope allows what a request (of the API, or a web page's) asks.
    func authorize(_ record: TokenRecord, _ required: TokenScope) throws(RegistryError) {
        guard record.scope >= required else {
            throw RegistryError(
                .forbidden,
                "token '\(record.name)' has scope \(record.scope.rawValue); this request needs \(required.rawValue)")
        }
    }

    /// Who is making a request, and whether they may do what it asks.
    func authorize(_ context: RegistryRequestContext, _ required: TokenScope) throws(RegistryError) {
        switch context.identity {
        case .token(let record):
            try authorize(record, required)
        case .invalid:
            throw RegistryError(.unauthorized, "the bearer token is invalid or revoked")
        case .anonymous:
            guard required == .read, anonymousRead else {
                throw RegistryError(
                    .unauthorized,
                    "this request needs a token with scope \(required.rawValue): send it as 'Authorization: Bearer <token>'"
                )
            }
        }
    }

    /// Moves an alias (a compare-and-swap when the move carries an expectation), for the API and the web pages.
    func moveAlias(_ move: AliasMove) async throws -> AliasTarget {
        let target = try await metadata.moveAlias(move)
        // The first init container after a move must find the image built.
        let stored = try await metadata.resolve(
            ModelReference(name: move.model, target: .alias(move.alias)), variant: nil)
        await images.enqueue(move.model, stored.digest)
        return target
    }

    /// Confirms the database is open and migrated and the data directory takes writes.
    func checkReady() async throws {
        try await metadata.checkReady()
        try await blobs.checkWritable()
    }
}
