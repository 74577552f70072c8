import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import NIOSSL
import RegistryAPI
import Synchronization

/// Where the registry is and how to authenticate to it.
public struct ClientConfiguration: Sendable {
    public static let defaultServer = "http://127.0.0.1:8750"

    public var server: String
    public var token: String?
    /// A PEM file of the CA certificates to trust for an https server (a private CA) instead of the system's.
    public var caCertificate: String?

    /// Explicit values win; then `MODELREG_URL`, `MODELREG_TOKEN` (or the file `MODELREG_TOKEN_FILE`
    /// names) and `MODELREG_CA_CERT`; then the local default server. A token file is read whole, its
    /// surrounding white space dropped (a Secret's key often ends in a newline).
    public init(
        server: String?, token: String?, tokenFile: String? = nil, caCertificate: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        var server = server ?? environment["MODELREG_URL"] ?? Self.defaultServer
        while server.hasSuffix("/") { server.removeLast() }
        guard let url = URL(string: server), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
            url.host?.isEmpty == false
        else {
            throw RegistryError(
                .invalidRequest,
                "'\(server.prefix(200))' (--server or MODELREG_URL) is not a registry URL: write it as http://HOST:PORT or https://HOST:PORT"
            )
        }
        self.server = server
        let nonEmpty = { (value: String?) in value.flatMap { $0.isEmpty ? nil : $0 } }
        if let token {
            self.token = token
        } else if let tokenFile {
            self.token = try Self.readToken(tokenFile)
        } else if let variable = nonEmpty(environment["MODELREG_TOKEN"]) {
            self.token = variable
        } else if let file = nonEmpty(environment["MODELREG_TOKEN_FILE"]) {
            self.token = try Self.readToken(file)
        } else {
            self.token = nil
        }
        self.caCertificate = caCertificate ?? nonEmpty(environment["MODELREG_CA_CERT"])
    }

    private static func readToken(_ path: String) throws -> String {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable UTF-8 text" : "no such file"
            throw RegistryError(
                .invalidRequest,
                "cannot read the token file \(path) (\(reason)): --token-file or MODELREG_TOKEN_FILE must name a readable file"
            )
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw RegistryError(
                .invalidRequest,
                "the token file \(path) is empty: write the token into it, or pass --token-file another file")
        }
        return token
    }
}

/// The HTTP API, one method per route. Every non-2xx answer becomes the `RegistryError` the server sent.
public struct RegistryConnection: Sendable {
    public let configuration: ClientConfiguration
    let http: HTTPClient
    /// The client for blob and image bodies: `http` but for a stalled body failing after `stallLimit`.
    let downloads: HTTPClient
    static let metadataTimeout = TimeAmount.seconds(60)
    static let transferTimeout = TimeAmount.hours(24)
    /// How long a download may go without a byte before it counts as a dropped connection (and is
    /// continued by the caller's retry). Only downloads: a server may rightly take minutes to answer a
    /// `verify` or a large upload's last request.
    static let stallLimit = TimeAmount.seconds(60)
    /// Set once the server says uploads should name their digest from the start (an object store copies a
    /// digest-less upload once more at its commit): later files are hashed before they are sent.
    let hashesBeforeUpload = Latch()

    public init(configuration: ClientConfiguration, http: HTTPClient, downloads: HTTPClient) {
        self.configuration = configuration
        self.http = http
        self.downloads = downloads
    }

    /// The connection with the process's shared clients, or ones that trust the configured CA.
    public init(configuration: ClientConfiguration) throws {
        self.configuration = configuration
        if let caFile = configuration.caCertificate {
            http = try HTTPClient.trusting(caFile, readTimeout: nil)
            downloads = try HTTPClient.trusting(caFile, readTimeout: Self.stallLimit)
        } else {
            (http, downloads) = (.modelreg, .modelregDownloads)
        }
    }

    func request(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: configuration.server + path)
        request.method = method
        if let token = configuration.token {
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        request.headers.add(name: "User-Agent", value: "modelreg")
        return request
    }

    /// A GET whose body is a blob or an image: no overall time limit, but a stalled body fails. A blob the
    /// registry hands to its object store (307 to a presigned URL) is fetched from there with the request's
    /// `Range` and nothing else: the registry's token never goes to the object store. A refusal there is a
    /// network failure, so the caller asks the registry again, for a fresh URL.
    func download(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        let response = try await execute(request, timeout: Self.transferTimeout, client: downloads, redirectable: true)
        guard response.status == .temporaryRedirect, let location = response.headers.first(name: "Location"),
            let url = URL(string: location), url.scheme == "http" || url.scheme == "https"
        else { return response }
        var redirected = HTTPClientRequest(url: location)
        redirected.headers.add(name: "User-Agent", value: "modelreg")
        for range in request.headers["Range"] { redirected.headers.add(name: "Range", value: range) }
        let store = url.host.map { host in url.port.map { "\(host):\($0)" } ?? host } ?? location
        let answer: HTTPClientResponse
        do {
            answer = try await downloads.execute(redirected, timeout: Self.transferTimeout)
        } catch {
            throw ClientError.network(
                "the object store at \(store) the registry redirected to is unreachable: \(error)")
        }
        guard answer.status == .ok || answer.status == .partialContent else {
            _ = try? await answer.body.collect(upTo: 64 << 10)
            throw ClientError.network(
                "the object store at \(store) answered HTTP \(answer.status.code) to a download the registry redirected to it"
            )
        }
        return answer
    }

    /// Sends a request. A GET or HEAD (or a request the caller says is `idempotent`) whose answer broke off
    /// (the connection cut or reset after it was made) is sent again, up to `transferAttempts` times: a
    /// registry that cannot be reached at all is reported at once. An answer outside 2xx is the registry's
    /// error, but for a 307 when the caller follows it (`redirectable`).
    func execute(
        _ request: HTTPClientRequest, timeout: TimeAmount = metadataTimeout, client: HTTPClient? = nil,
        idempotent: Bool = false, redirectable: Bool = false
    ) async throws -> HTTPClientResponse {
        let response: HTTPClientResponse
        var attempt = 1
        while true {
            do {
                response = try await (client ?? http).execute(request, timeout: timeout)
                break
            } catch let error as RegistryError {
                throw error
            } catch {
                if attempt < Self.transferAttempts, idempotent || [.GET, .HEAD].contains(request.method),
                    Self.brokeOff(error)
                {
                    attempt += 1
                    continue
                }
                throw ClientError.transport("\(request.method.rawValue) \(request.url) failed", error)
            }
        }
        guard (200..<300).contains(Int(response.status.code)) || (redirectable && response.status == .temporaryRedirect)
        else {
            let error = try await Self.error(from: response, request: request)
            // The server speaks to any HTTP client; the advice for this one's user is the CLI's.
            if error.code == .unauthorized, configuration.token == nil {
                throw RegistryError(
                    .unauthorized,
                    "\(error.message.split(separator: ":").first ?? "unauthorized"): pass --token-file FILE or set MODELREG_TOKEN"
                )
            }
            throw error
        }
        return response
    }

    /// Whether a connection failed after it was made, while the answer was under way.
    static func brokeOff(_ error: any Error) -> Bool {
        if error is HTTPParserError { return true }
        if let error = error as? HTTPClientError { return [.remoteConnectionClosed, .readTimeout].contains(error) }
        if let error = error as? IOError { return [ECONNRESET, EPIPE].contains(error.errnoCode) }
        return false
    }

    /// A whole (small) response body; a connection cut in the middle of it is a network failure.
    static func collect(_ response: HTTPClientResponse, _ request: HTTPClientRequest, upTo limit: Int = 64 << 20)
        async throws -> ByteBuffer
    {
        do {
            return try await response.body.collect(upTo: limit)
        } catch let error where ClientError(transportFailure: error) != nil {
            throw ClientError.transport("\(request.method.rawValue) \(request.url): the answer broke off", error)
        }
    }

    static func error(from response: HTTPClientResponse, request: HTTPClientRequest) async throws -> RegistryError {
        let body = try? await response.body.collect(upTo: 1 << 20)
        if let body, let decoded = try? JSONDecoder().decode(ErrorBody.self, from: Data(body.readableBytesView)) {
            let code = RegistryError.Code(rawValue: decoded.error.code) ?? .internalError
            // The server's message names its own path; say whose disk it is, since the user's may be fine.
            if code == .insufficientStorage {
                return RegistryError(
                    code, "the registry's disk is full (HTTP 507), nothing was stored: \(decoded.error.message)")
            }
            return RegistryError(code, decoded.error.message)
        }
        return RegistryError(
            .internalError,
            "\(request.method.rawValue) \(request.url): HTTP \(response.status.code) \(response.status.reasonPhrase)")
    }

    /// A JSON request and its decoded answer. An answer that broke off in its body is asked for again
    /// (`transferAttempts` tries, 0.5 s then 1 s apart) when repeating the request is harmless: a GET, or a
    /// request the caller says is `idempotent`; one that broke off before its body, `execute` repeats.
    func json<T: Decodable>(
        _ type: T.Type, _ method: HTTPMethod, _ path: String, body: (some Encodable)? = Optional<Int>.none,
        idempotent: Bool = false
    ) async throws -> T {
        var request = request(method, path)
        if let body {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            request.body = .bytes(ByteBuffer(bytes: try encoder.encode(body)))
            request.headers.add(name: "Content-Type", value: "application/json")
        }
        let attempts = idempotent || method == .GET ? Self.transferAttempts : 1
        var attempt = 1
        let bytes: ByteBuffer
        while true {
            let response = try await execute(request, idempotent: idempotent)
            do {
                bytes = try await Self.collect(response, request)
                break
            } catch let error as ClientError where attempt < attempts {
                guard case .network = error else { throw error }
                try await Task.sleep(for: .milliseconds(250 << attempt))
                attempt += 1
            }
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes.readableBytesView))
        } catch {
            throw RegistryError(.internalError, "unexpected response from \(path): \(error)")
        }
    }

    // MARK: Models

    public func listModels() async throws -> [ModelSummary] {
        try await json(ModelList.self, .GET, "/v1/models").models
    }

    public func model(_ name: ModelName) async throws -> ModelDetail {
        try await json(ModelDetail.self, .GET, "/v1/models/\(name)")
    }

    public func version(_ name: ModelName, _ version: VersionName) async throws -> VersionSummary {
        try await json(VersionSummary.self, .GET, "/v1/models/\(name)/versions/\(version)")
    }

    /// The cache images of one variant manifest: per layout, built or not, digest and size.
    public func imageStatus(_ name: ModelName, _ manifest: Digest) async throws -> [CacheImageStatus] {
        try await json(CacheImageStatusList.self, .GET, "/v1/models/\(name)/images/\(manifest)").images
    }

    /// Resolves a release reference and checks that the manifest bytes hash to the digest the server names
    /// (and to the pinned digest, for a digest reference).
    public func resolve(_ reference: ModelReference, variant: VariantName?) async throws -> ResolvedManifest {
        var path = "/v1/models/\(reference.name)/manifests/\(reference.suffix)"
        if let variant { path += "?variant=\(variant)" }
        let get = request(.GET, path)
        let response = try await execute(get)
        let bytes = Array(buffer: try await Self.collect(response, get, upTo: 256 << 20))
        guard let claimed = response.headers.first(name: APIHeader.digest).flatMap({ try? Digest(parsing: $0) }),
            let version = response.headers.first(name: APIHeader.version).flatMap({ try? VersionName($0) }),
            let variant = response.headers.first(name: APIHeader.variant).flatMap({ try? VariantName($0) })
        else {
            throw RegistryError(
                .internalError, "the server's answer for \(reference) lacks its digest, version or variant")
        }
        let actual = Digest.of(bytes)
        guard actual == claimed else {
            throw RegistryError(
                .integrity, "manifest of \(reference) hashes to \(actual), not \(claimed) as the server says")
        }
        if case .digest(let pinned) = reference.target, pinned != actual {
            throw RegistryError(.integrity, "the server answered \(reference) with manifest \(actual)")
        }
        return ResolvedManifest(
            model: reference.name, version: version, variant: variant, digest: actual,
            manifest: try Manifest.decode(bytes),
            deprecation: response.headers.first(name: APIHeader.deprecated).map(DeprecationHeader.reason(fromHeader:))
        )
    }

    /// The digest already published as this version and variant, if any.
    public func publishedDigest(_ name: ModelName, _ version: VersionName, _ variant: VariantName) async throws
        -> Digest?
    {
        let path = "/v1/models/\(name)/versions/\(version)/variants/\(variant)"
        do {
            let response = try await execute(request(.GET, path))
            return response.headers.first(name: APIHeader.digest).flatMap { try? Digest(parsing: $0) }
        } catch let error as RegistryError where error.code == .notFound {
            return nil
        }
    }

    public func publish(_ name: ModelName, _ version: VersionName, _ variant: VariantName, _ manifest: Manifest)
        async throws -> PublishedVariant
    {
        var request = request(.PUT, "/v1/models/\(name)/versions/\(version)/variants/\(variant)")
        request.body = .bytes(ByteBuffer(bytes: manifest.canonicalJSON()))
        request.headers.add(name: "Content-Type", value: Manifest.mediaType)
        let response = try await execute(request)
        let bytes = try await response.body.collect(upTo: 1 << 20)
        return try JSONDecoder().decode(PublishedVariant.self, from: Data(bytes.readableBytesView))
    }

    /// How fast the registry has sent blobs lately (the median of its last large downloads).
    public func downloadSpeed() async throws -> DownloadSpeed {
        try await json(DownloadSpeed.self, .GET, "/v1/stats/downloads")
    }

    public func aliases(_ name: ModelName) async throws -> [AliasTarget] {
        try await json(AliasList.self, .GET, "/v1/models/\(name)/aliases").aliases
    }

    // MARK: Releases

    public func setAlias(
        _ name: ModelName, _ alias: AliasName, version: VersionName, variant: VariantName?,
        expectation: AliasExpectation? = nil
    ) async throws -> AliasTarget {
        let body = AliasUpdate(version: version, variant: variant, expectation: expectation)
        return try await json(AliasTarget.self, .PUT, "/v1/models/\(name)/aliases/\(alias)", body: body)
    }

    public func promote(
        _ name: ModelName, _ alias: AliasName, from source: AliasName, expectation: AliasExpectation? = nil
    ) async throws -> AliasTarget {
        let body = AliasPromotion(from: source, expectation: expectation)
        return try await json(AliasTarget.self, .POST, "/v1/models/\(name)/aliases/\(alias)/promote", body: body)
    }

    public func rollback(
        _ name: ModelName, _ alias: AliasName, to version: VersionName?, expectation: AliasExpectation? = nil
    ) async throws -> AliasTarget {
        let body = AliasRollback(to: version, expectation: expectation)
        return try await json(AliasTarget.self, .POST, "/v1/models/\(name)/aliases/\(alias)/rollback", body: body)
    }

    public func aliasHistory(_ name: ModelName, _ alias: AliasName) async throws -> AliasHistory {
        try await json(AliasHistory.self, .GET, "/v1/models/\(name)/aliases/\(alias)/history")
    }

    public func deprecate(_ name: ModelName, _ version: VersionName, reason: String?) async throws -> VersionSummary {
        try await json(
            VersionSummary.self, .POST, "/v1/models/\(name)/versions/\(version)/deprecate",
            body: DeprecationRequest(reason: reason))
    }

    public func deleteVersion(_ name: ModelName, _ version: VersionName) async throws -> DeletedVersion {
        try await json(DeletedVersion.self, .DELETE, "/v1/models/\(name)/versions/\(version)")
    }

    public func auditLog(model: ModelName?, limit: Int) async throws -> [AuditEntry] {
        var path = "/v1/audit?limit=\(limit)"
        if let model {
            path += "&model=\(model.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? model.value)"
        }
        return try await json(AuditLog.self, .GET, path).entries
    }

    // MARK: Tokens

    public func createToken(name: TokenLabel, scope: TokenScope) async throws -> CreatedToken {
        try await json(CreatedToken.self, .POST, "/v1/tokens", body: TokenRequest(name: name, scope: scope))
    }

    public func tokens() async throws -> [TokenRecord] {
        try await json(TokenList.self, .GET, "/v1/tokens").tokens
    }

    public func revokeToken(_ name: TokenLabel) async throws -> TokenRecord {
        try await json(TokenRecord.self, .DELETE, "/v1/tokens/\(name)")
    }
}

public struct ResolvedManifest: Codable, Sendable {
    public var model: ModelName
    public var version: VersionName
    public var variant: VariantName
    public var digest: Digest
    public var manifest: Manifest
    /// The deprecation reason (or `deprecated`) when the version is deprecated.
    public var deprecation: String?
}

extension HTTPClient {
    /// The client every command uses. A refused or failed connection fails its request at once (within
    /// 10 s): push, pull and fetch retry on their own terms, and a command must not hang for the whole
    /// request timeout when the registry is down. It lives as long as the process.
    public static let modelreg = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: modelregConfiguration(readTimeout: nil))

    /// `modelreg` for download bodies, whose connection fails when no byte arrives for `stallLimit`.
    static let modelregDownloads = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: modelregConfiguration(readTimeout: RegistryConnection.stallLimit)
    )

    private static func modelregConfiguration(readTimeout: TimeAmount?) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(10)
        configuration.timeout.read = readTimeout
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        // Redirects are followed by `download` alone, which sends the registry's token nowhere else.
        configuration.redirectConfiguration = .disallow
        return configuration
    }

    private static let trustingClients = Mutex<[String: HTTPClient]>([:])

    /// A client like `modelreg` that trusts only the CA certificates in a PEM file, made once a file and
    /// kept for the life of the process.
    static func trusting(_ caFile: String, readTimeout: TimeAmount?) throws -> HTTPClient {
        let key = "\(readTimeout?.nanoseconds ?? 0) \(caFile)"
        return try trustingClients.withLock { clients in
            if let client = clients[key] { return client }
            let roots: [NIOSSLCertificate]
            do {
                roots = try NIOSSLCertificate.fromPEMFile(caFile)
            } catch {
                throw RegistryError(
                    .invalidRequest,
                    "cannot load the CA certificate \(caFile) (\(error)): --ca-cert or MODELREG_CA_CERT must name a readable PEM file"
                )
            }
            guard !roots.isEmpty else {
                throw RegistryError(.invalidRequest, "the CA certificate file \(caFile) holds no PEM certificate")
            }
            var configuration = modelregConfiguration(readTimeout: readTimeout)
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(roots)
            configuration.tlsConfiguration = tls
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            clients[key] = client
            return client
        }
    }
}

/// Failures on the client's side of the wire.
public enum ClientError: Error, CustomStringConvertible {
    case network(String)
    /// The TLS handshake failed: most often the server's certificate is not signed by a trusted CA.
    case tls(String)

    /// A failed request: a TLS failure when the error came from the TLS layer, else a network failure.
    static func transport(_ what: String, _ error: any Error) -> ClientError {
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            let text = String(describing: error)
            if text.contains("CERTIFICATE_VERIFY_FAILED") {
                return .tls("\(what): the registry's TLS certificate is not trusted (CERTIFICATE_VERIFY_FAILED)")
            }
            // BoringSSL's word for an answer that is not TLS at all: a plain-HTTP server.
            if text.contains("WRONG_VERSION_NUMBER") {
                return .network("\(what): the server does not speak TLS; if it serves plain HTTP, use an http:// URL")
            }
            return .tls("\(what): TLS handshake failed (\(error))")
        }
        // NIO's description of a socket error repeats itself ("connection reset (error set): Connection
        // refused (errno: 111)"); the system's own words are the useful part.
        if let error = error as? IOError {
            return .network("\(what): \(String(cString: strerror(error.errnoCode)).lowercased())")
        }
        if let error = error as? HTTPClientError, error == .connectTimeout {
            return .network("\(what): no answer to the connection within 10 s")
        }
        return .network("\(what): \(error)")
    }

    /// The network failure a transport-level error is (a connection refused, reset or cut mid-body, a
    /// read that timed out, a malformed response), or nil for any other error.
    public init?(transportFailure error: any Error) {
        guard error is HTTPClientError || error is IOError || error is HTTPParserError || error is ChannelError else {
            return nil
        }
        self = .network("the connection to the registry failed: \(error)")
    }

    /// What failed, without the advice.
    public var message: String {
        switch self {
        case .network(let message), .tls(let message): message
        }
    }

    public var description: String {
        switch self {
        case .network(let message): "\(message): check that the server is running and --server or MODELREG_URL is right"
        case .tls(let message):
            "\(message): if the registry's certificate comes from a private CA, pass that CA's certificate with --ca-cert FILE or MODELREG_CA_CERT"
        }
    }
}

/// A fact that becomes true once and stays true, shared between tasks.
final class Latch: Sendable {
    private let value = Atomic<Bool>(false)

    var isSet: Bool { value.load(ordering: .relaxed) }

    func set() { value.store(true, ordering: .relaxed) }
}
