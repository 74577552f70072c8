import Foundation
import ModelRegistryCore
import NIOSSL
import PostgresNIO

/// Where the metadata database is: `postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]`.
/// The password may come from elsewhere (`PGPASSWORD`, a file) instead of the URL.
public struct PostgresLocation: Sendable, Equatable {
    public enum TLSMode: String, Sendable {
        case disable, prefer, require
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var tls: TLSMode

    public init(parsing text: String, password fallback: String? = nil) throws(RegistryError) {
        let refuse = { (why: String) in
            RegistryError(
                .invalidRequest,
                "--metadata \(Self.redacted(text)) \(why): give postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]"
            )
        }
        guard let url = URLComponents(string: text), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw refuse("is not a postgres:// URL")
        }
        guard let host = url.host, !host.isEmpty else { throw refuse("names no host") }
        guard let user = url.user, !user.isEmpty else { throw refuse("names no user") }
        let database = String(url.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw refuse("names no database") }
        var tls = TLSMode.prefer
        for item in url.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("sslmode", let value?):
                guard let mode = TLSMode(rawValue: value) else { throw refuse("has an sslmode this modelreg lacks") }
                tls = mode
            default:
                throw refuse("has the parameter '\(item.name)', which modelreg does not know")
            }
        }
        self.host = host
        self.port = url.port ?? 5432
        self.user = user.removingPercentEncoding ?? user
        self.password = url.password.map { $0.removingPercentEncoding ?? $0 } ?? fallback
        self.database = database
        self.tls = tls
    }

    /// `host:port/database`: what messages and logs show, never the password.
    public var endpoint: String { "\(host):\(port)/\(database)" }

    public var configuration: PostgresClient.Configuration {
        get throws {
            let tlsConfiguration: PostgresClient.Configuration.TLS
            switch tls {
            case .disable: tlsConfiguration = .disable
            case .prefer: tlsConfiguration = .prefer(try Self.clientTLS())
            case .require: tlsConfiguration = .require(try Self.clientTLS())
            }
            return PostgresClient.Configuration(
                host: host, port: port, username: user, password: password, database: database, tls: tlsConfiguration)
        }
    }

    private static func clientTLS() throws -> NIOSSL.TLSConfiguration { .makeClientConfiguration() }

    /// The URL with its password replaced, for messages.
    static func redacted(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? "the URL"
    }
}

extension PostgresMetadataStore {
    /// A store of the database at `location`.
    public convenience init(
        _ location: PostgresLocation, connections: Int = 16, connectionWait: Duration = .seconds(10)
    ) throws {
        self.init(
            configuration: try location.configuration, endpoint: location.endpoint, connections: connections,
            connectionWait: connectionWait)
    }
}
