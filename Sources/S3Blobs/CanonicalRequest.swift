import Foundation

/// A request in SigV4's canonical form: the text whose hash is signed.
struct CanonicalRequest: Sendable {
    let method: String
    let uri: String
    let query: String
    let headers: CanonicalHeaders
    let payloadHash: String

    /// `extraQuery` holds parameters that are not in `url` yet: a presigned URL's `X-Amz-*` parameters.
    init(
        method: String,
        url: URL,
        extraQuery: [(String, String)] = [],
        headers: CanonicalHeaders,
        payloadHash: String
    ) {
        self.method = method
        uri = Self.uri(of: url)
        query = Self.query(of: url, adding: extraQuery)
        self.headers = headers
        self.payloadHash = payloadHash
    }

    var text: String {
        [method, uri, query, headers.block, headers.signedNames, payloadHash].joined(separator: "\n")
    }

    /// The path decoded, then encoded once with its slashes kept: S3 does not double-encode or normalize paths, so
    /// a key written `a%20b` or `a b` in the URL signs the same, and `100%25` stays `100%25`.
    static func uri(of url: URL) -> String {
        let path = url.path(percentEncoded: false)
        return path.isEmpty ? "/" : URIEncoding.encode(path, keepingSlashes: true)
    }

    /// Parameters decoded, re-encoded the SigV4 way, sorted by name and then value in byte order; a parameter
    /// without a value (`?lifecycle`) signs as `lifecycle=`.
    static func query(of url: URL, adding extra: [(String, String)] = []) -> String {
        let given = (url.query(percentEncoded: true) ?? "").split(separator: "&").map { parameter in
            let parts = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decoded(parts[0]), parts.count > 1 ? decoded(parts[1]) : "")
        }
        return (given + extra)
            .map { (name: URIEncoding.encode($0.0), value: URIEncoding.encode($0.1)) }
            .sorted {
                $0.name == $1.name
                    ? $0.value.utf8.lexicographicallyPrecedes($1.value.utf8)
                    : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
            }
            .map { "\($0.name)=\($0.value)" }
            .joined(separator: "&")
    }

    /// A malformed escape cannot be decoded; it is signed as written rather than dropped.
    private static func decoded(_ text: Substring) -> String {
        String(text).removingPercentEncoding ?? String(text)
    }
}

/// Headers as SigV4 signs them: lowercased names in byte order, values trimmed with inner runs of spaces collapsed,
/// the values of a repeated name joined with commas in the order given.
struct CanonicalHeaders: Sendable {
    let entries: [(name: String, value: String)]

    init(_ headers: [(String, String)]) {
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            values[name.lowercased(), default: []].append(Self.normalized(value))
        }
        entries = values.map { (name: $0.key, value: $0.value.joined(separator: ",")) }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
    }

    /// The request's headers plus `host` from the URL, unless the caller gives one (the Host it will send wins).
    init(url: URL, headers: [(String, String)]) {
        let hasHost = headers.contains { $0.0.lowercased() == "host" }
        self.init(hasHost ? headers : [("host", Self.host(of: url))] + headers)
    }

    /// `name:value` lines, each ending in a newline, so the canonical request has a blank line after them.
    var block: String { entries.map { "\($0.name):\($0.value)\n" }.joined() }

    var signedNames: String { entries.map(\.name).joined(separator: ";") }

    /// The Host header an HTTP client sends for `url`: the port only when it is not the scheme's default.
    static func host(of url: URL) -> String {
        let name = url.host(percentEncoded: true) ?? ""
        // Foundation hands IPv6 literals back without the brackets the header needs.
        let host = name.contains(":") ? "[\(name)]" : name
        let defaultPort = ["http": 80, "https": 443][url.scheme?.lowercased() ?? ""]
        guard let port = url.port, port != defaultPort else { return host }
        return "\(host):\(port)"
    }

    private static func normalized(_ value: String) -> String {
        value.trimmingCharacters(in: .whitespaces).split(separator: " ").joined(separator: " ")
    }
}
