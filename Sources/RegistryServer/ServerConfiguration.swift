import FileSystemBlobs
import ModelRegistryCore
import NIOSSL
import PostgresMetadata
import S3Blobs

/// Where the registry keeps its metadata.
public enum MetadataLocation: Sendable, Equatable {
    /// SQLite in the data directory: the embedded default.
    case dataDirectory
    /// A PostgreSQL database, which several replicas may share.
    case postgres(PostgresLocation)
}

/// Where the registry keeps blob bytes.
public enum BlobLocation: Sendable, Equatable {
    /// Files in the data directory: the embedded default.
    case dataDirectory
    /// An S3-compatible bucket, which several replicas may share.
    case s3(S3Location, S3Credentials)
}

public struct ServerConfiguration: Sendable {
    /// The port `modelreg serve` listens on when none is given.
    public static let defaultPort = 8750
    public static let defaultHost = "127.0.0.1"
    public static let defaultDataDirectory = "modelreg-data"
    /// How long an upload may receive no byte before it is removed (distribution purges after 7 days; a
    /// resumed push normally comes back within minutes, and partial model shards are large).
    public static let defaultUploadTTL = Duration.seconds(24 * 3600)
    /// How long requests in flight may take to finish after SIGTERM (Kubernetes' default grace period is
    /// 30 s; set terminationGracePeriodSeconds above this).
    public static let defaultDrainTimeout = Duration.seconds(30)
    /// How long a connection may send nothing, between requests or in the middle of one, before it is
    /// closed: a client that opens connections and stalls (slowloris) must not hold descriptors forever.
    /// A minute, as nginx's `client_header_timeout` and `client_body_timeout`.
    public static let defaultIdleTimeout = Duration.seconds(60)

    public var dataDirectory: DataDirectory
    public var host: String
    public var port: Int
    /// Lets requests without a token read (never write).
    public var anonymousRead: Bool
    public var uploadTTL: Duration
    public var idleTimeout: Duration
    /// A file holding an admin token kept outside the registry (a mounted Kubernetes Secret); see
    /// `Registry.open`.
    public var adminTokenFile: String?
    /// Serve HTTPS with this certificate and key (see `TLSFiles.load`) instead of plain HTTP.
    public var tls: TLSConfiguration?
    public var drainTimeout: Duration
    public var metadata: MetadataLocation
    public var blobs: BlobLocation
    /// Blob downloads answer 307 to the blob store's presigned URL, valid this long, where the store hands
    /// them out (S3); nil to serve every byte through the registry.
    public var blobRedirectExpiry: Duration?

    public init(
        dataDirectory: DataDirectory = DataDirectory(ServerConfiguration.defaultDataDirectory),
        host: String = ServerConfiguration.defaultHost,
        port: Int = ServerConfiguration.defaultPort,
        anonymousRead: Bool = false,
        uploadTTL: Duration = ServerConfiguration.defaultUploadTTL,
        idleTimeout: Duration = ServerConfiguration.defaultIdleTimeout,
        adminTokenFile: String? = nil,
        tls: TLSConfiguration? = nil,
        drainTimeout: Duration = ServerConfiguration.defaultDrainTimeout,
        metadata: MetadataLocation = .dataDirectory,
        blobs: BlobLocation = .dataDirectory,
        blobRedirectExpiry: Duration? = nil
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.anonymousRead = anonymousRead
        self.uploadTTL = uploadTTL
        self.idleTimeout = idleTimeout
        self.adminTokenFile = adminTokenFile
        self.tls = tls
        self.drainTimeout = drainTimeout
        self.metadata = metadata
        self.blobs = blobs
        self.blobRedirectExpiry = blobRedirectExpiry
    }

    /// What the start-up line says the registry serves from.
    public var storageDescription: String {
        var parts = ["data: \(dataDirectory.root.path)"]
        if case .postgres(let location) = metadata { parts.append("metadata: postgres \(location.endpoint)") }
        if case .s3(let location, _) = blobs { parts.append("blobs: s3 \(location.endpointDescription)") }
        return parts.joined(separator: ", ")
    }

    /// Whether this server keeps anything in its data directory but the admin token it writes there: then
    /// it is the directory's one server (the embedded default's lock).
    var keepsDataInDirectory: Bool { metadata == .dataDirectory || blobs == .dataDirectory }
}

/// PEM files of the server's certificate chain and private key.
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }

    /// Loads both files and checks them against each other, so that a wrong file stops the server at
    /// start, before it touches its data directory, rather than failing every handshake later.
    public func load() throws(RegistryError) -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw RegistryError(
                .invalidRequest,
                "cannot load the TLS certificate \(certificate) (\(error)): --tls-cert must name a readable PEM certificate chain"
            )
        }
        guard !chain.isEmpty else {
            throw RegistryError(.invalidRequest, "the TLS certificate file \(certificate) holds no PEM certificate")
        }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw RegistryError(
                .invalidRequest,
                "cannot load the TLS private key \(key) (\(error)): --tls-key must name a readable, unencrypted PEM private key"
            )
        }
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey)
        )
        do {
            _ = try NIOSSLContext(configuration: configuration)
        } catch {
            throw RegistryError(
                .invalidRequest, "the TLS private key \(key) does not fit the certificate \(certificate) (\(error))")
        }
        return configuration
    }
}
