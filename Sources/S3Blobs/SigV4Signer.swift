import Crypto
import Foundation

/// Signs S3 requests with AWS Signature Version 4, in an Authorization header or in a presigned URL.
public struct SigV4Signer: Sendable {
    /// The payload hash to sign when the body is not hashed first: streamed uploads, and every presigned URL.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// The SHA-256 of an empty body, for GET, HEAD and DELETE.
    public static let emptyPayloadHash = hexSHA256([UInt8]())

    static let algorithm = "AWS4-HMAC-SHA256"

    /// Names the signer sets itself. A caller's copy would be signed beside the signer's, and a signed
    /// Authorization header would have to contain its own signature.
    static let signerHeaderNames: Set<String> = [
        "authorization", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token",
    ]

    public let credentials: S3Credentials
    public let region: String
    public let service: String

    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Lowercase hex SHA-256, the form `payloadHash` takes.
    public static func hexSHA256(_ bytes: some Sequence<UInt8>) -> String {
        hexString(SHA256.hash(data: Array(bytes)))
    }

    /// The same, of bytes in place.
    public static func hexSHA256(bytes: UnsafeRawBufferPointer) -> String {
        hexString(SHA256.hash(data: bytes))
    }

    /// The headers to add to the request: `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` for
    /// temporary credentials, and `Authorization`. Every header in `headers` is signed, as is `host` from `url`, so
    /// the request must be sent with exactly these headers and values.
    public func authorizationHeaders(
        method: String,
        url: URL,
        headers: [(String, String)],
        payloadHash: String,
        date: Date
    ) -> [(String, String)] {
        let timestamp = AMZTimestamp(date)
        let (request, added) = headerSigned(
            method: method,
            url: url,
            headers: headers,
            payloadHash: payloadHash,
            timestamp: timestamp
        )
        let authorization =
            "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope(day: timestamp.day)),"
            + "SignedHeaders=\(request.headers.signedNames),Signature=\(signature(of: request, at: timestamp))"
        return added + [("Authorization", authorization)]
    }

    /// `url` with the signature in its query, valid for `expires` seconds (1 to 604800, S3's limit) from `date`. The
    /// payload is unsigned; `headers`, if any, are signed and must be sent with the request.
    public func presignedURL(
        method: String,
        url: URL,
        expires: Int,
        date: Date,
        headers: [(String, String)] = []
    ) -> URL {
        precondition((1...604_800).contains(expires), "a presigned URL lasts 1 to 604800 seconds, not \(expires)")
        let timestamp = AMZTimestamp(date)
        let request = presigned(method: method, url: url, expires: expires, timestamp: timestamp, headers: headers)
        // The URL carries the canonical path and query as they were signed, so S3 rebuilds the same request.
        let query = request.query + "&X-Amz-Signature=" + signature(of: request, at: timestamp)
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: true) else {
            preconditionFailure("\(url) was parsed once and cannot fail to parse again")
        }
        components.percentEncodedPath = request.uri
        components.percentEncodedQuery = query
        components.fragment = nil
        guard let signed = components.url else {
            preconditionFailure("a parsed URL with unreserved and %XX text in its path and query is a URL")
        }
        return signed
    }

    // MARK: - The signature, in AWS's steps

    /// The request `authorizationHeaders` signs, and the headers it adds to it.
    func headerSigned(
        method: String,
        url: URL,
        headers: [(String, String)],
        payloadHash: String,
        timestamp: AMZTimestamp
    ) -> (request: CanonicalRequest, added: [(String, String)]) {
        var added = [("x-amz-date", timestamp.dateTime), ("x-amz-content-sha256", payloadHash)]
        if let token = credentials.sessionToken {
            added.append(("x-amz-security-token", token))
        }
        let canonicalHeaders = CanonicalHeaders(url: url, headers: Self.callerHeaders(headers) + added)
        let request = CanonicalRequest(method: method, url: url, headers: canonicalHeaders, payloadHash: payloadHash)
        return (request, added)
    }

    /// The request `presignedURL` signs: the authentication parameters in the query, the payload unsigned.
    func presigned(
        method: String,
        url: URL,
        expires: Int,
        timestamp: AMZTimestamp,
        headers: [(String, String)]
    ) -> CanonicalRequest {
        let canonicalHeaders = CanonicalHeaders(url: url, headers: Self.callerHeaders(headers))
        var parameters = [
            ("X-Amz-Algorithm", Self.algorithm),
            ("X-Amz-Credential", "\(credentials.accessKeyID)/\(scope(day: timestamp.day))"),
            ("X-Amz-Date", timestamp.dateTime),
            ("X-Amz-Expires", String(expires)),
            ("X-Amz-SignedHeaders", canonicalHeaders.signedNames),
        ]
        if let token = credentials.sessionToken {
            parameters.append(("X-Amz-Security-Token", token))
        }
        return CanonicalRequest(
            method: method,
            url: url,
            extraQuery: parameters,
            headers: canonicalHeaders,
            payloadHash: Self.unsignedPayload
        )
    }

    /// `<day>/<region>/<service>/aws4_request`: what the signature is good for.
    func scope(day: String) -> String {
        "\(day)/\(region)/\(service)/aws4_request"
    }

    func stringToSign(_ request: CanonicalRequest, at timestamp: AMZTimestamp) -> String {
        [Self.algorithm, timestamp.dateTime, scope(day: timestamp.day), Self.hexSHA256(request.text.utf8)]
            .joined(separator: "\n")
    }

    /// The secret narrowed to one day, region and service by a chain of HMACs, so that a leaked signing key is
    /// worth less than the secret.
    func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return key
    }

    func signature(of request: CanonicalRequest, at timestamp: AMZTimestamp) -> String {
        let message = Array(stringToSign(request, at: timestamp).utf8)
        return hexString(HMAC<SHA256>.authenticationCode(for: message, using: signingKey(day: timestamp.day)))
    }

    private static func callerHeaders(_ headers: [(String, String)]) -> [(String, String)] {
        headers.filter { !signerHeaderNames.contains($0.0.lowercased()) }
    }
}
