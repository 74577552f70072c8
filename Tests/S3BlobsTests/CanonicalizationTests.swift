import Foundation
import Testing

@testable import S3Blobs

struct CanonicalizationTests {
    static let credentials = S3Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")
    static let date = Date(timeIntervalSince1970: 1_369_353_600)

    @Test func encodingKeepsOnlyUnreservedCharacters() {
        #expect(URIEncoding.encode("AZaz09-._~") == "AZaz09-._~")
        let reserved = URIEncoding.encode(" !$&'()*+,/:;=?@[]%")
        #expect(reserved == "%20%21%24%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D%25")
        #expect(URIEncoding.encode("ü€") == "%C3%BC%E2%82%AC")
        #expect(URIEncoding.encode("a/b c", keepingSlashes: true) == "a/b%20c")
    }

    /// Spaces, `+`, `~` and UTF-8 in a key, written encoded or not: one encoding in the canonical URI, never two.
    @Test(arguments: [
        "https://examplebucket.s3.amazonaws.com/models/a%20b+c~d%C3%BC.txt",
        "https://examplebucket.s3.amazonaws.com/models/a%20b%2Bc%7Ed%C3%BC.txt",
        "https://examplebucket.s3.amazonaws.com/models/a b+c~dü.txt",
    ])
    func keyEncoding(url: String) throws {
        let url = try #require(URL(string: url))
        #expect(CanonicalRequest.uri(of: url) == "/models/a%20b%2Bc~d%C3%BC.txt")
    }

    @Test func pathsAreNeitherDoubleEncodedNorNormalized() throws {
        #expect(try CanonicalRequest.uri(of: #require(URL(string: "https://h/100%25.txt"))) == "/100%25.txt")
        #expect(try CanonicalRequest.uri(of: #require(URL(string: "https://h/a//b/./c/"))) == "/a//b/./c/")
        #expect(try CanonicalRequest.uri(of: #require(URL(string: "https://h"))) == "/")
    }

    @Test func queryParametersAreEncodedAndSortedByNameThenValue() throws {
        let url = try #require(URL(string: "https://h/?prefix=models/a%20b&delimiter=/&a=z&a=y&B=2&uploads&v=a%2Bb"))
        #expect(CanonicalRequest.query(of: url) == "B=2&a=y&a=z&delimiter=%2F&prefix=models%2Fa%20b&uploads=&v=a%2Bb")
        #expect(try CanonicalRequest.query(of: #require(URL(string: "https://h/k"))) == "")
    }

    @Test func headerValuesAreTrimmedAndCollapsedAndRepeatsJoined() {
        let headers = CanonicalHeaders([
            ("Content-Type", "  text/plain "), ("X-Amz-Meta-Note", "a   b  c"), ("x-amz-meta-note", "second"),
        ])
        #expect(headers.block == "content-type:text/plain\nx-amz-meta-note:a b c,second\n")
        #expect(headers.signedNames == "content-type;x-amz-meta-note")
    }

    @Test(arguments: [
        ("http://127.0.0.1:9000/bucket/key", "127.0.0.1:9000"),
        ("https://s3.example.com:443/bucket/key", "s3.example.com"),
        ("http://s3.example.com:80/bucket/key", "s3.example.com"),
        ("http://s3.example.com:443/bucket/key", "s3.example.com:443"),
        ("http://[::1]:9000/bucket/key", "[::1]:9000"),
    ])
    func hostHeaderCarriesANonDefaultPort(url: String, host: String) throws {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1")
        let (request, _) = signer.headerSigned(
            method: "GET",
            url: try #require(URL(string: url)),
            headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash,
            timestamp: AMZTimestamp(Self.date)
        )
        #expect(request.headers.entries.first { $0.name == "host" }?.value == host)
    }

    /// The signer's own headers replace a caller's copies, and Authorization is never signed.
    @Test func signerHeadersAreNotTakenFromTheCaller() throws {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1")
        let (request, added) = signer.headerSigned(
            method: "GET",
            url: try #require(URL(string: "https://h/k")),
            headers: [("X-Amz-Date", "19990101T000000Z"), ("Authorization", "stale"), ("Host", "alias.example")],
            payloadHash: SigV4Signer.emptyPayloadHash,
            timestamp: AMZTimestamp(Self.date)
        )
        #expect(request.headers.signedNames == "host;x-amz-content-sha256;x-amz-date")
        #expect(request.headers.block.contains("host:alias.example\n"))
        #expect(request.headers.block.contains("x-amz-date:20130524T000000Z\n"))
        #expect(added.map(\.0) == ["x-amz-date", "x-amz-content-sha256"])
    }

    @Test func aSessionTokenIsSentAndSigned() throws {
        let token = "FwoGZXIvYXdzE/token+=="
        let temporary = S3Credentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: token)
        let signer = SigV4Signer(credentials: temporary, region: "eu-west-1")
        let url = try #require(URL(string: "https://bucket.s3.eu-west-1.amazonaws.com/k"))

        let added = signer.authorizationHeaders(
            method: "GET",
            url: url,
            headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash,
            date: Self.date
        )
        #expect(added.map(\.0) == ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "Authorization"])
        #expect(added[2].1 == token)
        #expect(added[3].1.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"))
        let (request, _) = signer.headerSigned(
            method: "GET",
            url: url,
            headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash,
            timestamp: AMZTimestamp(Self.date)
        )
        #expect(request.headers.block.hasSuffix("x-amz-security-token:\(token)\n"))

        let withoutToken = SigV4Signer(
            credentials: S3Credentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret"),
            region: "eu-west-1"
        )
        let presigned = signer.presignedURL(method: "GET", url: url, expires: 60, date: Self.date)
        let query = try #require(presigned.query(percentEncoded: true))
        #expect(query.contains("&X-Amz-Security-Token=FwoGZXIvYXdzE%2Ftoken%2B%3D%3D&X-Amz-SignedHeaders=host&"))
        #expect(query.range(of: "&X-Amz-Signature=[0-9a-f]{64}$", options: .regularExpression) != nil)
        let tokenless = withoutToken.presignedURL(method: "GET", url: url, expires: 60, date: Self.date)
        #expect(!tokenless.absoluteString.contains("Token"))
        #expect(tokenless != presigned)
    }

    /// A presigned URL sends the path and query it signed, so a key needing encoding and existing parameters arrive
    /// at S3 as they were signed; signed headers are listed.
    @Test func aPresignedURLCarriesWhatItSigned() throws {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1")
        let url = try #require(URL(string: "http://127.0.0.1:9000/bucket/a%20b+c.bin?partNumber=2&uploadId=x/y#frag"))
        let timestamp = AMZTimestamp(Self.date)
        let headers = [("Content-Type", "application/octet-stream")]
        let request = signer.presigned(method: "PUT", url: url, expires: 900, timestamp: timestamp, headers: headers)
        let presigned = signer.presignedURL(method: "PUT", url: url, expires: 900, date: Self.date, headers: headers)

        #expect(presigned.host() == "127.0.0.1")
        #expect(presigned.port == 9000)
        #expect(presigned.path(percentEncoded: true) == "/bucket/a%20b%2Bc.bin")
        #expect(presigned.fragment() == nil)
        #expect(
            presigned.query(percentEncoded: true)
                == request.query + "&X-Amz-Signature=" + signer.signature(of: request, at: timestamp)
        )
        #expect(request.query.contains("&partNumber=2&uploadId=x%2Fy"))
        #expect(request.query.contains("&X-Amz-SignedHeaders=content-type%3Bhost&"))
        #expect(request.payloadHash == SigV4Signer.unsignedPayload)
    }

    @Test func credentialsDoNotPrintTheirSecrets() {
        let credentials = S3Credentials(accessKeyID: "AKID", secretAccessKey: "hunter2", sessionToken: "t0ken")
        for text in [String(describing: credentials), String(reflecting: credentials), "\(credentials)"] {
            #expect(text.contains("AKID"))
            #expect(!text.contains("hunter2"))
            #expect(!text.contains("t0ken"))
        }
    }
}
