import ArgumentParser
import Foundation
import ModelRegistryCore
import PostgresMetadata
import RegistryServer
import S3Blobs

/// Where a registry's metadata and blobs live, for `serve` and `migrate`: the data directory unless told.
struct StorageOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Keep metadata in PostgreSQL instead of SQLite in the data directory.",
            discussion:
                "postgres://USER[:PASS]@HOST[:PORT]/DB[?sslmode=disable|prefer|require]; without a password in the URL, --metadata-password-file or PGPASSWORD gives it.",
            valueName: "url"))
    var metadata: String?

    @Option(help: "File holding the PostgreSQL password of --metadata (a mounted Secret).")
    var metadataPasswordFile: String?

    @Option(
        help: ArgumentHelp(
            "Keep blobs in an S3-compatible bucket instead of the data directory.",
            discussion:
                "s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT&region=R]: path-style addressing with an endpoint, virtual-hosted without; credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN or --blobs-credentials-file.",
            valueName: "url"))
    var blobs: String?

    @Option(help: "File holding the S3 credentials of --blobs (AWS_ACCESS_KEY_ID=… lines, or an awscli [default]).")
    var blobsCredentialsFile: String?

    /// `--blobs`, its credentials from `--blobs-credentials-file`, else the environment.
    func blobLocation() throws -> BlobLocation {
        guard let blobs else {
            guard blobsCredentialsFile == nil else {
                throw ValidationError("--blobs-credentials-file goes with --blobs s3://…")
            }
            return .dataDirectory
        }
        let location = try S3Location(parsing: blobs)
        let credentials = try S3Client.credentials(
            environment: ProcessInfo.processInfo.environment, file: blobsCredentialsFile)
        return .s3(location, credentials)
    }

    /// `--metadata`, its password from the URL, else `--metadata-password-file`, else `PGPASSWORD`.
    func metadataLocation() throws -> MetadataLocation {
        guard let metadata else {
            guard metadataPasswordFile == nil else {
                throw ValidationError("--metadata-password-file goes with --metadata postgres://…")
            }
            return .dataDirectory
        }
        var password = ProcessInfo.processInfo.environment["PGPASSWORD"]
        if let file = metadataPasswordFile {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8)
            else {
                throw RegistryError(.invalidRequest, "cannot read the PostgreSQL password file \(file)")
            }
            password = String(text.trimmingSuffix { $0 == "\n" || $0 == "\r" })
        }
        return .postgres(try PostgresLocation(parsing: metadata, password: password))
    }
}
