import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import NIOHTTP1
import Synchronization

/// An object as a listing or HEAD shows it.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: Int64
    public var lastModified: Date

    public init(key: String, size: Int64, lastModified: Date) {
        self.key = key
        self.size = size
        self.lastModified = lastModified
    }
}

/// An uploaded part of a multipart upload: its number and the ETag S3 gave it, quotes and all.
public struct S3Part: Codable, Sendable, Equatable {
    public var number: Int
    public var etag: String

    public init(number: Int, etag: String) {
        self.number = number
        self.etag = etag
    }
}

/// A multipart upload that was created and neither completed nor aborted.
public struct S3MultipartUpload: Sendable, Equatable {
    public var key: String
    public var uploadID: String
    public var initiated: Date

    public init(key: String, uploadID: String, initiated: Date) {
        self.key = key
        self.uploadID = uploadID
        self.initiated = initiated
    }
}

/// The S3 REST calls the blob store makes, signed with SigV4, over AsyncHTTPClient. Keys are full object keys
/// (`S3Location.key(_:)` adds the prefix). Every failure is a `RegistryError`: `notReady` when S3 cannot be reached
/// or does not answer in time, `storageFailure` with S3's error code when it refuses.
public final class S3Client: Sendable {
    public let location: S3Location
    let signer: SigV4Signer
    let httpClient: HTTPClient
    let stallLimit: Duration

    /// How long a request waits for its answer's head, beyond the time its body takes to send.
    static let answerTimeout = TimeAmount.seconds(30)
    /// The slowest upload allowed for: a body adds a second to the wait per MiB, since the head comes after it.
    static let uploadAllowancePerMiB = TimeAmount.seconds(1)
    /// How long a read of an answer's body waits for S3's next bytes by default (see `S3Body`).
    public static let defaultStallLimit = Duration.seconds(60)
    /// S3's own error documents are small; more than this is not one.
    static let errorBodyLimit = 64 << 10
    /// An XML answer: a listing page of 1000 keys of 1024 bytes, encoded, with room to spare.
    static let answerBodyLimit = 16 << 20

    public init(
        location: S3Location, credentials: S3Credentials, httpClient: HTTPClient = .s3,
        stallLimit: Duration = S3Client.defaultStallLimit
    ) {
        self.location = location
        self.signer = SigV4Signer(credentials: credentials, region: location.region)
        self.httpClient = httpClient
        self.stallLimit = stallLimit
    }

    // MARK: - Objects

    /// The object's size and time, or nil when there is no such object. A missing bucket answers HEAD with 404 too;
    /// `checkBucket()` tells them apart.
    public func head(_ key: String) async throws(RegistryError) -> S3Object? {
        let response = try await send(.HEAD, key)
        switch response.status {
        case .ok:
            guard let size = response.headers.first(name: "Content-Length").flatMap({ Int64($0) }),
                let lastModified = response.headers.first(name: "Last-Modified").flatMap(S3Date.parseHTTP)
            else {
                throw RegistryError(
                    .storageFailure,
                    "S3 at \(location.endpointDescription) answered HEAD \(key) without Content-Length or Last-Modified"
                )
            }
            return S3Object(key: key, size: size, lastModified: lastModified)
        case .notFound:
            return nil
        default:
            throw await failure(response).registryError
        }
    }

    /// The object's bytes, or those in `range`, as they arrive. A range that runs past the end gives the bytes up to
    /// it and one that starts past it fails (InvalidRange), as S3 does. A connection that breaks while the body
    /// streams fails the body's iteration with NOT_READY naming S3.
    public func get(_ key: String, range: Range<Int64>?) async throws(RegistryError) -> S3Body {
        var headers: [(String, String)] = []
        if let range {
            precondition(!range.isEmpty && range.lowerBound >= 0, "an S3 range is a nonempty byte range, not \(range)")
            headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)"))
        }
        let response = try await send(.GET, key, headers: headers)
        switch (response.status, range) {
        case (.ok, nil), (.partialContent, .some):
            return body(of: response)
        case (.ok, .some):
            try await drain(response)
            throw RegistryError(
                .storageFailure,
                "S3 at \(location.endpointDescription) answered a ranged GET of \(key) with the whole object")
        default:
            let error = await failure(response)
            if error.s3Code == "NoSuchKey" {
                throw RegistryError(.notFound, "S3 object \(key) not found at \(location.endpointDescription)")
            }
            throw error.registryError
        }
    }

    /// Stores `bytes` as the object `key`, its SHA-256 signed so that S3 refuses a body that changed on the way.
    public func put(_ key: String, _ bytes: ByteBuffer) async throws(RegistryError) {
        try await expectOK(try await send(.PUT, key, body: bytes))
    }

    /// Removes the object; one that is not there is fine.
    public func delete(_ key: String) async throws(RegistryError) {
        let response = try await send(.DELETE, key)
        guard response.status != .noContent, response.status != .ok else { return try await drain(response) }
        let error = await failure(response)
        guard error.s3Code == "NoSuchKey" else { throw error.registryError }
    }

    /// Copies an object within the bucket. The metadata is replaced rather than copied so that S3 allows a copy onto
    /// itself, which gives the object a new LastModified.
    public func copy(from source: String, to destination: String) async throws(RegistryError) {
        let headers = [
            (Self.copySourceHeader, copySource(source)), ("x-amz-metadata-directive", "REPLACE"),
        ]
        _ = try await answerDocument(try await send(.PUT, destination, headers: headers))
    }

    /// The most `CopyObject` copies in one request, and the most one `UploadPartCopy` part takes.
    public static let maxCopySize: Int64 = 5 << 30

    /// Copies an object of `size` bytes: in one request up to `partSize` (5 GiB, S3's limit for a copy), in
    /// parts of `partSize` above it (a multipart upload of `UploadPartCopy`s, aborted if a part fails).
    public func copy(from source: String, to destination: String, size: Int64, partSize: Int64 = maxCopySize)
        async throws(RegistryError)
    {
        guard size > partSize else { return try await copy(from: source, to: destination) }
        let uploadID = try await createMultipartUpload(destination)
        do throws(RegistryError) {
            var parts: [S3Part] = []
            var offset: Int64 = 0
            while offset < size {
                let last = min(size, offset + partSize) - 1
                let number = parts.count + 1
                let query = [("partNumber", String(number)), ("uploadId", uploadID)]
                let headers = [
                    (Self.copySourceHeader, copySource(source)), ("x-amz-copy-source-range", "bytes=\(offset)-\(last)"),
                ]
                let document = try await answerDocument(
                    try await send(.PUT, destination, query: query, headers: headers))
                guard let etag = document.text(of: "ETag"), !etag.isEmpty else {
                    throw malformed("UploadPartCopy \(number) of \(destination)", "no ETag")
                }
                parts.append(S3Part(number: number, etag: etag))
                offset = last + 1
            }
            try await completeMultipartUpload(destination, uploadID: uploadID, parts: parts)
        } catch {
            try? await abortMultipartUpload(destination, uploadID: uploadID)
            throw error
        }
    }

    private static let copySourceHeader = "x-amz-copy-source"

    private func copySource(_ key: String) -> String {
        "\(location.bucket)/\(URIEncoding.encode(key, keepingSlashes: true))"
    }

    // MARK: - Multipart uploads

    /// Starts a multipart upload of `key`; its UploadId.
    public func createMultipartUpload(_ key: String) async throws(RegistryError) -> String {
        let document = try await answerDocument(try await send(.POST, key, query: [("uploads", nil)]))
        guard let uploadID = document.text(of: "UploadId"), !uploadID.isEmpty else {
            throw malformed("CreateMultipartUpload for \(key)", "no UploadId")
        }
        return uploadID
    }

    /// Uploads one part (1 to 10000; every part but the last at least 5 MiB); its ETag as S3 gives it, quoted.
    public func uploadPart(_ key: String, uploadID: String, partNumber: Int, _ bytes: ByteBuffer)
        async throws(RegistryError) -> String
    {
        let query = [("partNumber", String(partNumber)), ("uploadId", uploadID)]
        let response = try await send(.PUT, key, query: query, body: bytes)
        try await expectOK(response)
        guard let etag = response.headers.first(name: "ETag"), !etag.isEmpty else {
            throw malformed("UploadPart \(partNumber) of \(key)", "no ETag")
        }
        return etag
    }

    /// Joins the parts, in the order given (ascending numbers, as S3 requires), into the object `key`.
    public func completeMultipartUpload(_ key: String, uploadID: String, parts: [S3Part]) async throws(RegistryError) {
        let partElements = parts.map {
            "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(MarkupText.escaped($0.etag))</ETag></Part>"
        }
        let body =
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + partElements.joined() + "</CompleteMultipartUpload>"
        let response = try await send(
            .POST, key, query: [("uploadId", uploadID)], body: ByteBuffer(string: body))
        _ = try await answerDocument(response)
    }

    /// Abandons an upload and frees its parts; one that is already gone is fine.
    public func abortMultipartUpload(_ key: String, uploadID: String) async throws(RegistryError) {
        let response = try await send(.DELETE, key, query: [("uploadId", uploadID)])
        guard response.status != .noContent, response.status != .ok else { return try await drain(response) }
        let error = await failure(response)
        guard error.s3Code == "NoSuchUpload" else { throw error.registryError }
    }

    // MARK: - Listings

    /// Every object whose key starts with `prefix`, in key order, however many pages that takes.
    public func list(prefix: String) async throws(RegistryError) -> [S3Object] {
        try await list(prefix: prefix, pageSize: nil)
    }

    /// `pageSize` (S3's max-keys, 1000 by default) is for the tests, which page through a few keys.
    func list(prefix: String, pageSize: Int?) async throws(RegistryError) -> [S3Object] {
        var objects: [S3Object] = []
        var continuation: String?
        repeat {
            var query: [(String, String?)] = [("list-type", "2"), ("prefix", prefix), ("encoding-type", "url")]
            if let continuation { query.append(("continuation-token", continuation)) }
            if let pageSize { query.append(("max-keys", String(pageSize))) }
            let document = try await answerDocument(try await send(.GET, nil, query: query))
            let decodeKey = Self.keyDecoder(document)
            for element in document.elements("Contents") {
                guard let key = element.text(of: "Key").flatMap(decodeKey),
                    let size = element.text(of: "Size").flatMap({ Int64($0) }),
                    let lastModified = element.text(of: "LastModified").flatMap(S3Date.parseISO8601)
                else { throw malformed("ListObjectsV2 of \(prefix)", "an object without Key, Size or LastModified") }
                objects.append(S3Object(key: key, size: size, lastModified: lastModified))
            }
            continuation = nil
            if document.text(of: "IsTruncated") == "true" {
                guard let token = document.text(of: "NextContinuationToken"), !token.isEmpty else {
                    throw malformed("ListObjectsV2 of \(prefix)", "IsTruncated without NextContinuationToken")
                }
                continuation = token
            }
        } while continuation != nil
        return objects
    }

    /// Every multipart upload in progress whose key starts with `prefix`, however many pages that takes.
    public func listMultipartUploads(prefix: String) async throws(RegistryError) -> [S3MultipartUpload] {
        var uploads: [S3MultipartUpload] = []
        var markers: (key: String, uploadID: String)?
        repeat {
            var query: [(String, String?)] = [("uploads", nil), ("prefix", prefix), ("encoding-type", "url")]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.uploadID)] }
            let document = try await answerDocument(try await send(.GET, nil, query: query))
            let decodeKey = Self.keyDecoder(document)
            for element in document.elements("Upload") {
                guard let key = element.text(of: "Key").flatMap(decodeKey),
                    let uploadID = element.text(of: "UploadId"),
                    let initiated = element.text(of: "Initiated").flatMap(S3Date.parseISO8601)
                else {
                    throw malformed("ListMultipartUploads of \(prefix)", "an upload without Key, UploadId or Initiated")
                }
                uploads.append(S3MultipartUpload(key: key, uploadID: uploadID, initiated: initiated))
            }
            markers = nil
            if document.text(of: "IsTruncated") == "true" {
                guard let key = document.text(of: "NextKeyMarker").flatMap(decodeKey),
                    let uploadID = document.text(of: "NextUploadIdMarker")
                else { throw malformed("ListMultipartUploads of \(prefix)", "IsTruncated without the next markers") }
                markers = (key, uploadID)
            }
        } while markers != nil
        return uploads
    }

    // MARK: - Others

    /// A URL that GETs the object without credentials until `validFor` (1 s to 7 days) has passed.
    public func presignedGET(_ key: String, validFor: Duration) -> URL {
        signer.presignedURL(
            method: "GET", url: location.url(key: key), expires: Int(validFor.components.seconds), date: Date())
    }

    /// Whether the bucket is there and these credentials may use it: the readiness check.
    public func checkBucket() async throws(RegistryError) {
        let response = try await send(.HEAD, nil)
        switch response.status {
        case .ok:
            return
        case .notFound:
            throw RegistryError(
                .storageFailure,
                "S3 at \(location.endpointDescription): the bucket does not exist (HTTP 404): create it or fix --blobs")
        default:
            throw await failure(response).registryError
        }
    }

    // MARK: - Blocking reads

    /// What `head` answers, waited for on the calling thread: for the header parsers, which run on threads of
    /// their own that may block. The request runs on the HTTP client's event loops alone, never on the
    /// tasks' shared threads, so a blocked caller cannot starve it.
    public func headBlocking(_ key: String) throws(RegistryError) -> S3Object? {
        let response = try sendBlocking(.HEAD, key)
        switch response.status {
        case .ok:
            guard let size = response.headers.first(name: "Content-Length").flatMap({ Int64($0) }) else {
                throw RegistryError(
                    .storageFailure, "S3 at \(location.endpointDescription) answered HEAD \(key) without Content-Length"
                )
            }
            let lastModified = response.headers.first(name: "Last-Modified").flatMap(S3Date.parseHTTP) ?? Date()
            return S3Object(key: key, size: size, lastModified: lastModified)
        case .notFound:
            return nil
        default:
            throw S3Failure(document: nil, status: response.status, endpoint: location.endpointDescription)
                .registryError
        }
    }

    /// The bytes of `range` of the object, waited for on the calling thread (see `headBlocking`).
    public func getBlocking(_ key: String, range: Range<Int64>) throws(RegistryError) -> ByteBuffer {
        precondition(!range.isEmpty && range.lowerBound >= 0, "an S3 range is a nonempty byte range, not \(range)")
        let response = try sendBlocking(
            .GET, key, headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")])
        guard response.status == .partialContent else {
            let document = response.body.map { S3XML($0) }
            let failure = S3Failure(document: document, status: response.status, endpoint: location.endpointDescription)
            if failure.s3Code == "NoSuchKey" {
                throw RegistryError(.notFound, "S3 object \(key) not found at \(location.endpointDescription)")
            }
            throw failure.registryError
        }
        return response.body ?? ByteBuffer()
    }

    private func sendBlocking(_ method: HTTPMethod, _ key: String, headers: [(String, String)] = [])
        throws(RegistryError) -> HTTPClient.Response
    {
        let url = location.url(key: key, query: "")
        let signed = signer.authorizationHeaders(
            method: method.rawValue, url: url, headers: headers, payloadHash: SigV4Signer.emptyPayloadHash, date: Date()
        )
        do {
            var request = try HTTPClient.Request(url: url.absoluteString, method: method)
            for (name, value) in headers + signed { request.headers.add(name: name, value: value) }
            return try httpClient.execute(request: request, deadline: .now() + Self.answerTimeout).wait()
        } catch {
            throw unreachable(error, timeout: Self.answerTimeout)
        }
    }

    // MARK: - Requests

    /// Signs and sends a request for the object `key` (the bucket when nil); `query` values are unencoded, a nil
    /// value a parameter without one (`?uploads`).
    private func send(
        _ method: HTTPMethod, _ key: String?, query: [(String, String?)] = [], headers: [(String, String)] = [],
        body: ByteBuffer? = nil
    ) async throws(RegistryError) -> HTTPClientResponse {
        let queryText = query.map { name, value in
            URIEncoding.encode(name) + (value.map { "=" + URIEncoding.encode($0) } ?? "")
        }.joined(separator: "&")
        let url = location.url(key: key, query: queryText)
        // Hashed in place: a copy of each part would double what an upload holds.
        let payloadHash =
            body.map { $0.withUnsafeReadableBytes { SigV4Signer.hexSHA256(bytes: $0) } } ?? SigV4Signer.emptyPayloadHash
        let signed = signer.authorizationHeaders(
            method: method.rawValue, url: url, headers: headers, payloadHash: payloadHash, date: Date())
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = method
        for (name, value) in headers + signed {
            request.headers.add(name: name, value: value)
        }
        if let body {
            request.body = .bytes(body)
        }
        let mebibytes = Int64((body?.readableBytes ?? 0) >> 20)
        let timeout = Self.answerTimeout + Self.uploadAllowancePerMiB * mebibytes
        do {
            return try await httpClient.execute(request, timeout: timeout)
        } catch {
            throw unreachable(error, timeout: timeout)
        }
    }

    /// A success whose body, if any, says nothing; the body is read so the connection can serve another request.
    private func expectOK(_ response: HTTPClientResponse) async throws(RegistryError) {
        guard response.status == .ok else { throw await failure(response).registryError }
        try await drain(response)
    }

    /// The XML of a 200 answer. CopyObject and CompleteMultipartUpload answer 200 as soon as they start and report
    /// a failure later, in an `<Error>` document, so one is a failure whatever the status.
    private func answerDocument(_ response: HTTPClientResponse) async throws(RegistryError) -> S3XML {
        guard response.status == .ok else { throw await failure(response).registryError }
        let document = S3XML(try await body(of: response).collect(upTo: Self.answerBodyLimit))
        if document.rootName == "Error" {
            let failure = S3Failure(document: document, status: response.status, endpoint: location.endpointDescription)
            throw failure.registryError
        }
        return document
    }

    private func drain(_ response: HTTPClientResponse) async throws(RegistryError) {
        var iterator = body(of: response).makeAsyncIterator()
        while try await iterator.next() != nil {}
    }

    private func body(of response: HTTPClientResponse) -> S3Body {
        S3Body(
            body: response.body, endpoint: location.endpointDescription, stallLimit: stallLimit,
            timers: httpClient.eventLoopGroup.any())
    }

    /// The error S3 answered with, from its `<Error>` document, or from the status alone when there is none (HEAD).
    private func failure(_ response: HTTPClientResponse) async -> S3Failure {
        let body = try? await body(of: response).collect(upTo: Self.errorBodyLimit)
        return S3Failure(
            document: body.map(S3XML.init), status: response.status, endpoint: location.endpointDescription)
    }

    private func unreachable(_ error: any Error, timeout: TimeAmount) -> RegistryError {
        let why: String
        switch error as? HTTPClientError {
        case .deadlineExceeded?: why = "no answer within \(timeout.nanoseconds / 1_000_000_000) s"
        case .connectTimeout?: why = "no connection within the connect timeout"
        case .getConnectionFromPoolTimeout?:
            why = "all \(HTTPClient.connectionsPerHost) connections to it stayed busy past the connect timeout"
        default: why = Self.describe(error)
        }
        return RegistryError(
            .notReady,
            "S3 at \(location.endpointDescription) is unreachable (\(why)): check that it runs and accepts connections")
    }

    private func malformed(_ request: String, _ what: String) -> RegistryError {
        RegistryError(.storageFailure, "S3 at \(location.endpointDescription) answered \(request) with \(what)")
    }

    /// A system error as the system words it (`Connection refused`), not as NIO's description nests it.
    static func describe(_ error: any Error) -> String {
        guard let error = error as? IOError else { return String(describing: error) }
        return String(cString: strerror(error.errnoCode))
    }

    /// Keys in a listing asked for with `encoding-type=url` come URL-encoded, with `+` for a space, when the answer
    /// says so (`<EncodingType>url`); a server that ignored the parameter sent them as they are.
    private static func keyDecoder(_ document: S3XML) -> @Sendable (String) -> String? {
        guard document.text(of: "EncodingType") == "url" else { return { $0 } }
        return { $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
    }
}

extension S3Client {
    /// The key pair from `--blobs-credentials-file` when one is given, else from the environment's
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary credentials, `AWS_SESSION_TOKEN`. The file
    /// holds `NAME=value` lines of those names, or is an AWS CLI credentials file whose `[default]` profile is used.
    public static func credentials(environment: [String: String], file: String?) throws(RegistryError) -> S3Credentials
    {
        let values: [String: String]
        let source: String
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw RegistryError(
                    .invalidRequest,
                    "cannot read --blobs-credentials-file \(file): check that it exists and is readable")
            }
            values = credentialValues(inFile: text)
            source = "--blobs-credentials-file \(file)"
        } else {
            values = environment
            source = "the environment"
        }
        let value = { (name: String) in values[name].flatMap { $0.isEmpty ? nil : $0 } }
        let missing = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].filter { value($0) == nil }
        guard let accessKeyID = value("AWS_ACCESS_KEY_ID"), let secretAccessKey = value("AWS_SECRET_ACCESS_KEY") else {
            throw RegistryError(
                .invalidRequest,
                "no S3 credentials: \(source) has no \(missing.joined(separator: " and ")); set AWS_ACCESS_KEY_ID and "
                    + "AWS_SECRET_ACCESS_KEY, or give --blobs-credentials-file FILE with those lines")
        }
        return S3Credentials(
            accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, sessionToken: value("AWS_SESSION_TOKEN"))
    }

    /// The `NAME=value` lines of a credentials file, names uppercased (the AWS CLI writes `aws_access_key_id = …`).
    /// Lines under a `[profile]` header other than `[default]`, blank lines and `#` or `;` comments are skipped;
    /// `export ` before a name and quotes around a value, as a shell file has them, are dropped.
    private static func credentialValues(inFile text: String) -> [String: String] {
        var values: [String: String] = [:]
        var inDefaultProfile = true
        for rawLine in text.split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                inDefaultProfile = line == "[default]"
                continue
            }
            guard inDefaultProfile, let equals = line.firstIndex(of: "=") else { continue }
            var name = line[..<equals].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("export ") { name = name.dropFirst("export ".count).trimmingCharacters(in: .whitespaces) }
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
            }
            values[name.uppercased()] = value
        }
        return values
    }
}

extension HTTPClient {
    /// How many connections a replica opens to the object store at most.
    static let connectionsPerHost = 64

    /// The client S3 requests go through by default. Connecting gives up after 5 s and is not retried (a request
    /// would otherwise wait its whole timeout for a server that is down), and so does a request waiting for a free
    /// connection; there is no read timeout, since it would also count a pause of whoever reads the body
    /// (`S3Client` times answers' heads and `S3Body` stalls in bodies); bodies are passed on as stored, never
    /// decompressed; redirects are not followed, since a signature is good for one URL only.
    public static let s3 = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: {
            var configuration = HTTPClient.Configuration()
            configuration.timeout.connect = .seconds(5)
            configuration.connectionPool.retryConnectionEstablishment = false
            // Every blob a replica streams holds a connection for as long as its client reads: with the default
            // 8, eight pulls of four files each left requests waiting past the connect timeout for one
            // (getConnectionFromPoolTimeout, bench/scale.sh).
            configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connectionsPerHost
            configuration.decompression = .disabled
            configuration.redirectConfiguration = .disallow
            return configuration
        }())
}

/// An object's bytes as S3 sends them; a connection that breaks on the way is NOT_READY naming S3, not the HTTP
/// client's own error (which the registry would take for its own client's).
///
/// A stall is timed here, not by the HTTP client: its read timeout also runs while nobody asks for the next bytes
/// (a slow reader, or a process whose threads are all busy), and would break off a healthy transfer. Each read
/// waits at most `stallLimit` for S3's next bytes.
public struct S3Body: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    let body: HTTPClientResponse.Body
    let endpoint: String
    let stallLimit: Duration
    let timers: any EventLoop

    public struct AsyncIterator: AsyncIteratorProtocol {
        let source: StallTimedBody

        public mutating func next() async throws(RegistryError) -> ByteBuffer? {
            try await source.next()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(
            source: StallTimedBody(
                base: body.makeAsyncIterator(), endpoint: endpoint, stallLimit: stallLimit, timers: timers))
    }

    /// The whole body, refused when it is longer than `limit` bytes.
    func collect(upTo limit: Int) async throws(RegistryError) -> ByteBuffer {
        var collected = ByteBuffer()
        var iterator = makeAsyncIterator()
        while var chunk = try await iterator.next() {
            guard collected.readableBytes + chunk.readableBytes <= limit else {
                throw RegistryError(.storageFailure, "S3 at \(endpoint) answered with more than \(limit) bytes")
            }
            collected.writeBuffer(&chunk)
        }
        return collected
    }
}

/// The HTTP client's iterator behind a reference, so that each read can run in a task of its own that a timer
/// cancels after the stall limit. One read runs at a time (an iterator is used by one task), which is what makes
/// the unchecked `Sendable` sound.
///
/// The timer is the event loop's, not a sleeping task: a cancelled `Task.sleep` keeps its timer until it would
/// have fired, and a read every 64 KiB for a minute at S3's pace held tens of MiB of them.
final class StallTimedBody: @unchecked Sendable {
    private var base: HTTPClientResponse.Body.AsyncIterator
    private let endpoint: String
    private let stallLimit: Duration
    private let timers: any EventLoop

    init(base: HTTPClientResponse.Body.AsyncIterator, endpoint: String, stallLimit: Duration, timers: any EventLoop) {
        self.base = base
        self.endpoint = endpoint
        self.stallLimit = stallLimit
        self.timers = timers
    }

    private struct Stalled: Error {}

    func next() async throws(RegistryError) -> ByteBuffer? {
        let race = ReadRace()
        let read = Task { [timers, stallLimit] in
            // Timed from the read's start: one that waits for a thread in a busy process is not S3's stall.
            let timer = timers.scheduleTask(in: TimeAmount(stallLimit)) {
                // Decided on the tasks' threads, after what was queued there before: bytes that came in time but
                // wait for a thread win. Only a read still waiting is cancelled: cancelling one that got its bytes
                // would end the stream under the next.
                Task { race.timerEnded() }
            }
            defer { timer.cancel() }
            let outcome: Result<ByteBuffer?, any Error>
            do {
                outcome = .success(try await self.base.next())
            } catch {
                outcome = .failure(error)
            }
            // The timer ended first and cancelled the read, which ends the HTTP client's stream: what came is lost.
            guard race.readEnded() else { throw Stalled() }
            return try outcome.get()
        }
        race.started(read)
        do {
            return try await withTaskCancellationHandler {
                try await read.value
            } onCancel: {
                read.cancel()
            }
        } catch is Stalled {
            throw RegistryError(
                .notReady,
                "S3 at \(endpoint) sent nothing for \(stallLimit.components.seconds) s in the middle of an answer: "
                    + "check the object store's health and load")
        } catch {
            throw RegistryError(.notReady, "S3 at \(endpoint) broke off its answer (\(S3Client.describe(error)))")
        }
    }
}

/// A read and its stall timer: whichever ends first decides. The timer cancels the read's task only when it ends
/// first; one it ended before the task was handed over is cancelled as it is.
final class ReadRace: Sendable {
    private struct State {
        var task: Task<ByteBuffer?, any Error>?
        var ended = false
        var stalled = false
    }
    private let state = Mutex(State())

    func started(_ task: Task<ByteBuffer?, any Error>) {
        if state.withLock({ state in
            state.task = task
            return state.stalled
        }) {
            task.cancel()
        }
    }

    /// True when the read ended first.
    func readEnded() -> Bool { state.withLock { end(&$0) } }

    func timerEnded() {
        state.withLock { state -> Task<ByteBuffer?, any Error>? in
            guard end(&state) else { return nil }
            state.stalled = true
            return state.task
        }?.cancel()
    }

    private func end(_ state: inout State) -> Bool {
        defer { state.ended = true }
        return !state.ended
    }
}

/// An error answer from S3: its code and message, or its status alone.
struct S3Failure {
    let s3Code: String?
    let registryError: RegistryError

    init(document: S3XML?, status: HTTPResponseStatus, endpoint: String) {
        let code = document?.text(of: "Code").flatMap { $0.isEmpty ? nil : $0 }
        let message = document?.text(of: "Message") ?? ""
        s3Code = code
        let what = code.map { "\($0): \(message)" } ?? status.reasonPhrase
        registryError = RegistryError(.storageFailure, "S3 at \(endpoint): \(what) (HTTP \(status.code))")
    }
}

/// S3's two date forms: ISO 8601 in XML (`2009-10-12T17:50:30.000Z`), RFC 1123 in headers.
enum S3Date {
    static func parseISO8601(_ text: String) -> Date? {
        try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func parseHTTP(_ text: String) -> Date? {
        try? Date(text, strategy: httpDate)
    }

    private static let httpDate = Date.ParseStrategy(
        format: """
            \(weekday: .abbreviated), \(day: .twoDigits) \(month: .abbreviated) \(year: .defaultDigits) \
            \(hour: .twoDigits(clock: .twentyFourHour, hourCycle: .zeroBased)):\(minute: .twoDigits):\(second: .twoDigits) GMT
            """,
        locale: Locale(identifier: "en_US_POSIX"), timeZone: .gmt)
}

/// The little of XML that S3's answers need: the text of elements found by name, with entities decoded. S3's
/// answers are flat records without namespaces prefixes, CDATA or an element inside one of its own name, and
/// searching the UTF-8 bytes needs no parser library and cannot be misled by text that is not ASCII.
struct S3XML: Sendable {
    private let bytes: [UInt8]

    init(_ buffer: ByteBuffer) {
        bytes = Array(buffer.readableBytesView)
    }

    init(_ text: String) {
        bytes = Array(text.utf8)
    }

    private init(bytes: ArraySlice<UInt8>) {
        self.bytes = Array(bytes)
    }

    /// The name of the first element, past the declaration, comments and whitespace (which S3 sends ahead of a
    /// slow answer to keep the connection open).
    var rootName: String? {
        var index = 0
        while let open = bytes[index...].firstIndex(of: UInt8(ascii: "<")), open + 1 < bytes.count {
            let next = bytes[open + 1]
            if next != UInt8(ascii: "?") && next != UInt8(ascii: "!") {
                let name = bytes[(open + 1)...].prefix { !Self.endsName($0) }
                return String(decoding: name, as: UTF8.self)
            }
            guard let close = bytes[open...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
            index = close + 1
        }
        return nil
    }

    /// The content of every element `name`, in document order, each a document of its own to look into.
    func elements(_ name: String) -> [S3XML] {
        var found: [S3XML] = []
        var index = 0
        while let content = contentRange(of: name, from: index) {
            found.append(S3XML(bytes: bytes[content.range]))
            index = content.resumeAt
        }
        return found
    }

    /// The decoded text of the first element `name`; empty for `<name/>`; nil when there is none.
    func text(of name: String) -> String? {
        contentRange(of: name, from: 0).map { Self.decoded(bytes[$0.range]) }
    }

    /// Where the content of the next element `name` at or after `start` lies, and where to look for the one after.
    private func contentRange(of name: String, from start: Int) -> (range: Range<Int>, resumeAt: Int)? {
        let open = Array("<\(name)".utf8)
        let close = Array("</\(name)>".utf8)
        var index = start
        while let tag = firstIndex(of: open, from: index) {
            let after = tag + open.count
            guard after < bytes.count, Self.endsName(bytes[after]) else {
                index = after  // a longer name: `<KeyMarker>` when looking for `<Key>`
                continue
            }
            guard let tagEnd = bytes[after...].firstIndex(of: UInt8(ascii: ">")) else { return nil }
            if bytes[tagEnd - 1] == UInt8(ascii: "/") {
                return (tagEnd + 1..<tagEnd + 1, tagEnd + 1)
            }
            guard let end = firstIndex(of: close, from: tagEnd + 1) else { return nil }
            return (tagEnd + 1..<end, end + close.count)
        }
        return nil
    }

    private func firstIndex(of pattern: [UInt8], from start: Int) -> Int? {
        guard let first = pattern.first, pattern.count <= bytes.count else { return nil }
        var index = start
        while index + pattern.count <= bytes.count {
            guard let candidate = bytes[index...(bytes.count - pattern.count)].firstIndex(of: first) else { return nil }
            if bytes[candidate..<candidate + pattern.count].elementsEqual(pattern) { return candidate }
            index = candidate + 1
        }
        return nil
    }

    private static func endsName(_ byte: UInt8) -> Bool {
        [
            UInt8(ascii: ">"), UInt8(ascii: "/"), UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"),
            UInt8(ascii: "\r"),
        ].contains(byte)
    }

    /// Element text with its five named entities and numeric character references decoded; an entity that is
    /// none of these is kept as written.
    private static func decoded(_ bytes: ArraySlice<UInt8>) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("&") else { return text }
        var result = ""
        var rest = Substring(text)
        while let ampersand = rest.firstIndex(of: "&") {
            result += rest[..<ampersand]
            guard let semicolon = rest[ampersand...].prefix(12).firstIndex(of: ";"),
                let character = entity(rest[rest.index(after: ampersand)..<semicolon])
            else {
                result.append("&")
                rest = rest[rest.index(after: ampersand)...]
                continue
            }
            result.append(character)
            rest = rest[rest.index(after: semicolon)...]
        }
        return result + rest
    }

    private static func entity(_ name: Substring) -> Character? {
        switch name {
        case "amp": return "&"
        case "lt": return "<"
        case "gt": return ">"
        case "quot": return "\""
        case "apos": return "'"
        default:
            let number =
                name.hasPrefix("#x")
                ? UInt32(name.dropFirst(2), radix: 16)
                : name.hasPrefix("#") ? UInt32(name.dropFirst(), radix: 10) : nil
            return number.flatMap(Unicode.Scalar.init).map(Character.init)
        }
    }
}
