import ModelRegistryCore

public struct ServerConfiguration: Sendable {
    /// The port `modelreg serve` listens on when none is given.
    public static let defaultPort = 8750
    public static let defaultHost = "127.0.0.1"
    public static let defaultDataDirectory = "modelreg-data"
    /// How long an upload may receive no byte before it is removed (distribution purges after 7 days; a
    /// resumed push normally comes back within minutes, and partial model shards are large).
    public static let defaultUploadTTL = Duration.seconds(24 * 3600)
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

    public init(
        dataDirectory: DataDirectory = DataDirectory(ServerConfiguration.defaultDataDirectory),
        host: String = ServerConfiguration.defaultHost,
        port: Int = ServerConfiguration.defaultPort,
        anonymousRead: Bool = false,
        uploadTTL: Duration = ServerConfiguration.defaultUploadTTL,
        idleTimeout: Duration = ServerConfiguration.defaultIdleTimeout,
        adminTokenFile: String? = nil
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.anonymousRead = anonymousRead
        self.uploadTTL = uploadTTL
        self.idleTimeout = idleTimeout
        self.adminTokenFile = adminTokenFile
    }
}
