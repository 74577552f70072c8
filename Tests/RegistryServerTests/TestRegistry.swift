import FileSystemBlobs
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryStorage
import Logging
import ModelRegistryCore
import NIOCore
import RegistryAPI
import Testing

@testable import RegistryServer

/// A registry with one token of each scope, driven in-process: on the in-memory stores, or on the embedded
/// ones (SQLite and blob files in a temporary data directory, opened as `serve` opens them) for the routes
/// that work on the data directory's files.
struct TestRegistry: Sendable {
    enum Stores {
        case inMemory, embedded
    }

    let registry: Registry
    /// The embedded stores' data directory (nothing is written there on the in-memory stores).
    let directory: DataDirectory
    let admin: String
    let write: String
    let read: String

    /// `prepare` sees the data directory before the registry opens it.
    static func with(
        _ stores: Stores = .inMemory, anonymousRead: Bool = false,
        prepare: (DataDirectory) async throws -> Void = { _ in },
        _ body: @Sendable (TestRegistry, any TestClientProtocol) async throws -> Void
    ) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("modelreg-server-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let configuration = ServerConfiguration(
            dataDirectory: DataDirectory(root.path), port: 0, anonymousRead: anonymousRead)
        try await prepare(configuration.dataDirectory)
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let registry: Registry
        let admin: String
        switch stores {
        case .embedded:
            registry = try await Registry.open(configuration, logger: logger)
            admin = try String(contentsOf: configuration.dataDirectory.adminToken, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        case .inMemory:
            registry = Registry(
                blobs: InMemoryBlobStore(), metadata: InMemoryMetadataStore(), anonymousRead: anonymousRead,
                logger: logger)
            let secret = TokenSecret.generate()
            _ = try await registry.metadata.createToken(
                name: TokenLabel("admin"), scope: .admin, secret: secret, actor: "test")
            admin = secret.value
        }
        let write = TokenSecret.generate()
        let read = TokenSecret.generate()
        _ = try await registry.metadata.createToken(
            name: TokenLabel("writer"), scope: .write, secret: write, actor: "test")
        _ = try await registry.metadata.createToken(
            name: TokenLabel("reader"), scope: .read, secret: read, actor: "test")
        let test = TestRegistry(
            registry: registry, directory: configuration.dataDirectory, admin: admin, write: write.value,
            read: read.value)
        let app = try RegistryApplication.make(registry: registry, configuration: configuration, logger: logger)
        try await app.test(.router) { client in try await body(test, client) }
    }

    /// The blobs the store lists, whichever the store.
    func storedBlobs() async throws -> [Digest] { try await registry.blobs.list().map(\.digest) }
    /// The uploads the store still holds, whichever the store: a sweep with a cutoff in the future removes and
    /// names every one that is not receiving bytes.
    func leftoverUploads() async throws -> [UploadID] {
        try await registry.blobs.removeStaleUploads(untouchedSince: .distantFuture)
    }

    /// The files of the embedded store.
    func blobFiles() -> [String] { files(directory.blobs) }
    func uploadFiles() -> [String] { files(directory.uploads) }

    private func files(_ url: URL) -> [String] {
        (FileManager.default.enumerator(atPath: url.path)?.allObjects as? [String] ?? [])
            .filter { !$0.hasSuffix("/") && !isDirectory(url.appendingPathComponent($0)) }.sorted()
    }

    private func isDirectory(_ url: URL) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &flag) && flag.boolValue
    }
}

func auth(_ token: String, _ extra: HTTPFields = [:]) -> HTTPFields {
    var fields = extra
    fields[.authorization] = "Bearer \(token)"
    return fields
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The `error.code` of a JSON error body.
    var errorCode: String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView)))?.error.code
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }
}

extension HTTPField.Name {
    static let testUploadOffset = HTTPField.Name(APIHeader.uploadOffset)!
    static let testDigest = HTTPField.Name(APIHeader.digest)!
}

/// Uploads bytes in one request and returns their digest.
@discardableResult
func putBlob(_ client: some TestClientProtocol, _ token: String, _ bytes: [UInt8]) async throws -> Digest {
    let digest = Digest.of(bytes)
    let response = try await client.execute(
        uri: "/v1/blobs/\(digest)", method: .put, headers: auth(token), body: ByteBuffer(bytes: bytes))
    #expect(response.status == .created, "\(response.text)")
    return digest
}
