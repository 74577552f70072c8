import ModelRegistryCore

public struct ServerConfiguration: Sendable {
    /// The port `modelreg serve` listens on when none is given.
    public static let defaultPort = 8750
    public static let defaultHost = "127.0.0.1"
    public static let defaultDataDirectory = "modelreg-data"

    public var dataDirectory: DataDirectory
    public var host: String
    public var port: Int
    /// Lets requests without a token read (never write).
    public var anonymousRead: Bool

    public init(
        dataDirectory: DataDirectory = DataDirectory(ServerConfiguration.defaultDataDirectory),
        host: String = ServerConfiguration.defaultHost,
        port: Int = ServerConfiguration.defaultPort,
        anonymousRead: Bool = false
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.anonymousRead = anonymousRead
    }
}
