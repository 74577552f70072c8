import ModelRegistryCore

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

    public var dataDirectory: DataDirectory
    public var host: String
    public var port: Int
    /// Lets requests without a token read (never write).
    public var anonymousRead: Bool
    public var uploadTTL: Duration
    /// A file holding an admin token kept outside the registry (a mounted Kubernetes Secret); see
    /// `Registry.open`.
    public var adminTokenFile: String?
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    public var tls: TLSFiles?
    public var drainTimeout: Duration

    public init(
        dataDirectory: DataDirectory = DataDirectory(ServerConfiguration.defaultDataDirectory),
        host: String = ServerConfiguration.defaultHost,
        port: Int = ServerConfiguration.defaultPort,
        anonymousRead: Bool = false,
        uploadTTL: Duration = ServerConfiguration.defaultUploadTTL,
        adminTokenFile: String? = nil,
        tls: TLSFiles? = nil,
        drainTimeout: Duration = ServerConfiguration.defaultDrainTimeout
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.anonymousRead = anonymousRead
        self.uploadTTL = uploadTTL
        self.adminTokenFile = adminTokenFile
        self.tls = tls
        self.drainTimeout = drainTimeout
    }
}

/// PEM files of the server's certificate chain and private key.
public struct TLSFiles: Sendable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}
