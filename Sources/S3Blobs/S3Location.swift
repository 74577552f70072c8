import Foundation
import ModelRegistryCore

/// Where the blobs are: `s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT][&region=REGION]`. With an endpoint (MinIO,
/// moto, any S3-compatible server) objects are addressed path-style, `ENDPOINT/BUCKET/KEY`, since such servers seldom
/// have a DNS name per bucket; without one, AWS's virtual-hosted style, `https://BUCKET.s3.REGION.amazonaws.com/KEY`.
public struct S3Location: Sendable, Equatable {
    public var bucket: String
    /// What every key starts with, before a `/`: no leading or trailing slash; empty for the bucket's root.
    public var prefix: String
    /// The S3-compatible server, `http[s]://HOST[:PORT]`; nil for AWS.
    public var endpoint: URL?
    public var region: String

    static let acceptedForm = "s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT][&region=REGION]"

    public init(parsing text: String) throws(RegistryError) {
        let refuse = { (why: String) in
            RegistryError(.invalidRequest, "--blobs \(Self.redacted(text)) \(why): give \(Self.acceptedForm)")
        }
        guard let url = URLComponents(string: text), url.scheme?.lowercased() == "s3" else {
            throw refuse("is not an s3:// URL")
        }
        guard url.user == nil, url.password == nil else {
            throw refuse("has user information (credentials come from --blobs-credentials-file or AWS_ACCESS_KEY_ID)")
        }
        guard url.port == nil else { throw refuse("has a port (an S3-compatible server is given with ?endpoint=)") }
        guard url.fragment == nil else { throw refuse("has a #fragment") }
        guard let bucket = url.host, Self.isBucketName(bucket) else {
            throw refuse("names no valid bucket (3 to 63 of a-z 0-9 . -, a letter or digit at each end)")
        }
        let prefix = url.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard !prefix.contains("//") else { throw refuse("has an empty segment in its prefix") }
        var endpoint: URL?
        var region: String?
        for item in url.queryItems ?? [] {
            switch item.name {
            case "endpoint":
                guard endpoint == nil else { throw refuse("gives endpoint twice") }
                guard let value = item.value, let server = Self.endpoint(value) else {
                    throw refuse("has an endpoint that is not http[s]://HOST[:PORT]")
                }
                endpoint = server
            case "region":
                guard region == nil else { throw refuse("gives region twice") }
                guard let value = item.value, Self.isRegionName(value) else {
                    throw refuse("has a region that is not of a-z 0-9 -")
                }
                region = value
            default:
                throw refuse("has the parameter '\(item.name)', which modelreg does not know")
            }
        }
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        self.region = region ?? "us-east-1"
    }

    /// The server and bucket, for messages: `http://127.0.0.1:9000 bucket b`.
    public var endpointDescription: String {
        "\(endpoint?.absoluteString ?? "https://s3.\(region).amazonaws.com") bucket \(bucket)"
    }

    /// The full key of `relative`, a path under the prefix.
    public func key(_ relative: String) -> String {
        prefix.isEmpty ? relative : "\(prefix)/\(relative)"
    }

    /// The URL of the object `key`, or of the bucket when `key` is nil. The key is percent-encoded once, as SigV4
    /// signs it, so the path sent is the path signed; `query` is already encoded.
    func url(key: String?, query: String = "") -> URL {
        let encodedKey = key.map { "/" + URIEncoding.encode($0, keepingSlashes: true) }
        let text =
            if let endpoint {
                "\(endpoint.absoluteString)/\(bucket)\(encodedKey ?? "")"
            } else {
                "https://\(bucket).s3.\(region).amazonaws.com\(encodedKey ?? "/")"
            }
        guard let url = URL(string: query.isEmpty ? text : "\(text)?\(query)") else {
            preconditionFailure("a checked endpoint and bucket with an encoded path and query make a URL: \(text)")
        }
        return url
    }

    /// S3's rules for names that work in both addressing styles.
    private static func isBucketName(_ name: String) -> Bool {
        let allowed = name.utf8.allSatisfy {
            isLowercaseLetterOrDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
        }
        guard (3...63).contains(name.utf8.count), allowed, let first = name.utf8.first, let last = name.utf8.last else {
            return false
        }
        return isLowercaseLetterOrDigit(first) && isLowercaseLetterOrDigit(last)
    }

    private static func isRegionName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { isLowercaseLetterOrDigit($0) || $0 == UInt8(ascii: "-") }
    }

    private static func isLowercaseLetterOrDigit(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// `http[s]://HOST[:PORT]` with nothing after it (a trailing `/` is dropped), or nil.
    private static func endpoint(_ text: String) -> URL? {
        guard let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty, url.user == nil,
            url.password == nil, url.path.isEmpty || url.path == "/", url.query == nil, url.fragment == nil
        else { return nil }
        return URL(string: text.hasSuffix("/") ? String(text.dropLast()) : text)
    }

    /// The text with a password, should one be given, hidden.
    private static func redacted(_ text: String) -> String {
        guard var url = URLComponents(string: text), url.password != nil else { return text }
        url.password = "***"
        return url.string ?? "the URL"
    }
}
