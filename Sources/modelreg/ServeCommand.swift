import ArgumentParser
import FileSystemBlobs
import Foundation
import Logging
import ModelRegistryCore
import PostgresMetadata
import RegistryServer
import S3Blobs

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the registry's HTTP service.")

    @Option(help: "Data directory (created if missing).")
    var data = ServerConfiguration.defaultDataDirectory

    @Option(help: "Address to listen on.")
    var host = ServerConfiguration.defaultHost

    @Option(help: "Port to listen on; 0 picks a free port.")
    var port = ServerConfiguration.defaultPort

    @Flag(help: "Let requests without a token read models and blobs.")
    var anonymousRead = false

    @Option(help: "Remove uploads that received no byte for this long (90s, 30m, 24h, 7d).")
    var uploadTTL = "24h"

    @Option(
        help: "Close a connection that sends nothing for this long, between requests or while sending one (30s, 5m).")
    var idleTimeout = "60s"

    @Option(help: "File holding an admin token (a mounted Secret) to use instead of a generated admin.token.")
    var adminTokenFile: String?

    @Option(help: "PEM certificate chain to serve HTTPS with (needs --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "On SIGTERM, how long requests in flight may take to finish before they are cut off (30s, 2m).")
    var drainTimeout = "30s"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @OptionGroup var storage: StorageOptions

    @Flag(
        inversion: .prefixedNo,
        help: "Answer blob downloads with a redirect to the object store's presigned URL (S3 only; on by default).")
    var blobRedirect = true

    @Option(help: "How long a redirected download's presigned URL is valid (5m, 15m, 1h).")
    var blobRedirectExpiry = "15m"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level '\(logLevel)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let tls: TLSFiles?
        switch (tlsCert, tlsKey) {
        case (nil, nil): tls = nil
        case (let certificate?, let key?): tls = TLSFiles(certificate: certificate, key: key)
        default: throw ValidationError("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
        }
        let tlsConfiguration = try tls?.load()
        let logger = Logger(label: "modelreg")
        let configuration = ServerConfiguration(
            dataDirectory: DataDirectory(data), host: host, port: port, anonymousRead: anonymousRead,
            uploadTTL: try DurationText.positive(uploadTTL), idleTimeout: try DurationText.positive(idleTimeout),
            adminTokenFile: adminTokenFile, tls: tlsConfiguration,
            drainTimeout: try DurationText.positive(drainTimeout),
            metadata: try storage.metadataLocation(), blobs: try storage.blobLocation(),
            blobRedirectExpiry: blobRedirect ? try DurationText.positive(blobRedirectExpiry) : nil
        )
        let registry = try await Registry.open(configuration, logger: logger)
        let scheme = tls == nil ? "http" : "https"
        try await RegistryApplication.run(registry: registry, configuration: configuration, logger: logger) {
            host, port in
            // Tests and scripts read this line to learn the port when started with --port 0.
            let line =
                "modelreg listening on \(scheme)://\(host):\(port) (\(configuration.storageDescription))\n"
            FileHandle.standardOutput.write(Data(line.utf8))
        }
    }
}
