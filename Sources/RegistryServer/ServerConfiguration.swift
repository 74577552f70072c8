import ModelRegistryCore

public struct ServerConfiguration: Sendable {
    /// The port `modelreg serve` listens on when none is given.
    public static let defaultPort = 8750
    public static let defaultHost = "127.0.0.1"
    public static let defaultDataDirectory = "modelreg-data"
    /// How long an upload may receive no byte before it is removed (distribution purges after 7 days; a
    /// resumed push normally comes back within minutes, and partial model shards are large).
    public static let defaultUploadTTL = Duration.seconds(24 * 3600)

    public var dataDirectory: DataDirectory
    public var host: String
    public var port: Int
    /// Lets requests without a token read (never write).
    public var anonymousRead: Bool
    public var uploadTTL: Duration

    public init(
        dataDirectory: DataDirectory = DataDirectory(ServerConfiguration.defaultDataDirectory),
        host: String = ServerConfiguration.defaultHost,
        port: Int = ServerConfiguration.defaultPort,
        anonymousRead: Bool = false,
        uploadTTL: Duration = ServerConfiguration.defaultUploadTTL
    ) {
        self.dataDirectory = dataDirectory
        self.host = host
        self.port = port
        self.anonymousRead = anonymousRead
        self.uploadTTL = uploadTTL
    }

    /// `90s`, `30m`, `24h`, `7d`: a positive whole number and a unit.
    public static func parseDuration(_ text: String) throws(RegistryError) -> Duration {
        let units: [Character: Int64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last, let multiplier = units[unit], let count = Int64(text.dropLast()), count > 0,
              count <= Int64.max / multiplier / 1_000_000
        else {
            throw RegistryError(.invalidRequest, "'\(text.prefix(40))' is not a duration: use a whole number and s, m, h or d (90s, 30m, 24h, 7d)")
        }
        return .seconds(count * multiplier)
    }
}
