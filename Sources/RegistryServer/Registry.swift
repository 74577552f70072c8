import Foundation
import Logging
import ModelRegistryCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The registry's state behind the HTTP layer: where blobs and metadata live, and how requests are authorized.
public struct Registry: Sendable {
    public let directory: DataDirectory
    public let blobs: any BlobStore
    public let metadata: any MetadataStore
    public let anonymousRead: Bool
    let metrics: RegistryMetrics

    public init(directory: DataDirectory, blobs: any BlobStore, metadata: any MetadataStore, anonymousRead: Bool) {
        self.directory = directory
        self.blobs = blobs
        self.metadata = metadata
        self.anonymousRead = anonymousRead
        self.metrics = RegistryMetrics()
    }

    /// Opens the registry in a data directory, creating it and its first admin token when it is new.
    public static func open(_ configuration: ServerConfiguration, logger: Logger) async throws -> Registry {
        let directory = configuration.dataDirectory
        try directory.create()
        let metadata = try SQLiteMetadataStore(path: directory.database.path)
        let registry = Registry(
            directory: directory,
            blobs: FileSystemBlobStore(directory: directory),
            metadata: metadata,
            anonymousRead: configuration.anonymousRead
        )
        if try await !metadata.hasTokens() {
            let secret = TokenSecret.generate()
            _ = try await metadata.createToken(name: try TokenLabel("admin"), scope: .admin, secret: secret, actor: "modelreg-serve")
            try writeSecretFile(secret.value + "\n", to: directory.adminToken.path)
            logger.notice("created the first admin token", metadata: ["file": .string(directory.adminToken.path)])
        }
        return registry
    }

    /// Writes a file that only the owner can read, replacing any earlier one.
    private static func writeSecretFile(_ text: String, to path: String) throws {
        try POSIXFile.remove(path)
        let file = try POSIXFile.open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try Array(text.utf8).withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
        try file.close()
    }

    /// Who is making a request, and whether they may do what it asks.
    func authorize(_ context: RegistryRequestContext, _ required: TokenScope) throws(RegistryError) {
        switch context.identity {
        case .token(let record):
            guard record.scope >= required else {
                throw RegistryError(.forbidden, "token '\(record.name)' has scope \(record.scope.rawValue); this request needs \(required.rawValue)")
            }
        case .invalid:
            throw RegistryError(.unauthorized, "the bearer token is invalid or revoked")
        case .anonymous:
            guard required == .read, anonymousRead else {
                throw RegistryError(.unauthorized, "this request needs a token with scope \(required.rawValue): pass --token or set MODELREG_TOKEN")
            }
        }
    }

    /// Confirms the database is open and migrated and the data directory takes writes.
    func checkReady() async throws {
        try await metadata.checkReady()
        let probe = directory.tmp.appendingPathComponent("ready-\(UUID().uuidString)").path
        let file = try POSIXFile.open(probe, flags: O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try file.close()
        try POSIXFile.remove(probe)
    }
}
