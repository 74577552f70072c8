import Foundation
import Testing

@testable import S3Blobs

/// The worked examples in AWS's S3 API Reference, checked step by step so that a failure points at the step that
/// went wrong: canonical request, string to sign (its last line, the canonical request's hash), signature.
///
/// Header examples: "Signature Calculations for the Authorization Header: Transferring Payload in a Single Chunk",
/// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html. Presigned URL: "Authenticating
/// Requests: Using Query Parameters", https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html.
struct AWSExampleTests {
    static let signer = SigV4Signer(
        credentials: S3Credentials(
            accessKeyID: "AKIAIOSFODNN7EXAMPLE",
            secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        ),
        region: "us-east-1"
    )
    /// 20130524T000000Z.
    static let date = Date(timeIntervalSince1970: 1_369_353_600)

    struct HeaderExample: Sendable, CustomTestStringConvertible {
        let name: String
        let method: String
        let url: String
        let headers: [(String, String)]
        let payloadHash: String
        let canonicalRequest: String
        let canonicalRequestHash: String
        let signedHeaders: String
        let signature: String

        var testDescription: String { name }
    }

    static let headerExamples = [
        HeaderExample(
            name: "GET Object",
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com/test.txt",
            headers: [("Range", "bytes=0-9")],
            payloadHash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            canonicalRequest: """
                GET
                /test.txt

                host:examplebucket.s3.amazonaws.com
                range:bytes=0-9
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;range;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            canonicalRequestHash: "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
            signedHeaders: "host;range;x-amz-content-sha256;x-amz-date",
            signature: "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
        HeaderExample(
            name: "PUT Object",
            method: "PUT",
            url: "https://examplebucket.s3.amazonaws.com/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
            payloadHash: SigV4Signer.hexSHA256("Welcome to Amazon S3.".utf8),
            canonicalRequest: """
                PUT
                /test%24file.text

                date:Fri, 24 May 2013 00:00:00 GMT
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
                x-amz-date:20130524T000000Z
                x-amz-storage-class:REDUCED_REDUNDANCY

                date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class
                44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072
                """,
            canonicalRequestHash: "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
            signedHeaders: "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            signature: "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        ),
        HeaderExample(
            name: "GET Bucket Lifecycle",
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com/?lifecycle",
            headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash,
            canonicalRequest: """
                GET
                /
                lifecycle=
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            canonicalRequestHash: "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ),
        HeaderExample(
            name: "Get Bucket (List Objects)",
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
            headers: [],
            payloadHash: SigV4Signer.emptyPayloadHash,
            canonicalRequest: """
                GET
                /
                max-keys=2&prefix=J
                host:examplebucket.s3.amazonaws.com
                x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                x-amz-date:20130524T000000Z

                host;x-amz-content-sha256;x-amz-date
                e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
                """,
            canonicalRequestHash: "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
            signedHeaders: "host;x-amz-content-sha256;x-amz-date",
            signature: "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ),
    ]

    @Test(arguments: headerExamples)
    func headerExample(_ example: HeaderExample) throws {
        let url = try #require(URL(string: example.url))
        let timestamp = AMZTimestamp(Self.date)
        let (request, _) = Self.signer.headerSigned(
            method: example.method,
            url: url,
            headers: example.headers,
            payloadHash: example.payloadHash,
            timestamp: timestamp
        )
        #expect(request.text == example.canonicalRequest)
        #expect(
            Self.signer.stringToSign(request, at: timestamp) == """
                AWS4-HMAC-SHA256
                20130524T000000Z
                20130524/us-east-1/s3/aws4_request
                \(example.canonicalRequestHash)
                """
        )

        let added = Self.signer.authorizationHeaders(
            method: example.method,
            url: url,
            headers: example.headers,
            payloadHash: example.payloadHash,
            date: Self.date
        )
        #expect(added.map(\.0) == ["x-amz-date", "x-amz-content-sha256", "Authorization"])
        #expect(added.map(\.1).prefix(2) == ["20130524T000000Z", example.payloadHash])
        #expect(
            added.last?.1
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
                + "SignedHeaders=\(example.signedHeaders),Signature=\(example.signature)"
        )
    }

    @Test func thePayloadHashesAreTheDocumentedOnes() {
        #expect(SigV4Signer.emptyPayloadHash == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            SigV4Signer.hexSHA256("Welcome to Amazon S3.".utf8)
                == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        )
    }

    @Test func presignedGetObject() throws {
        let url = try #require(URL(string: "https://examplebucket.s3.amazonaws.com/test.txt"))
        let timestamp = AMZTimestamp(Self.date)
        let request = Self.signer.presigned(method: "GET", url: url, expires: 86_400, timestamp: timestamp, headers: [])
        #expect(
            request.text == """
                GET
                /test.txt
                X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2F\
                aws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host
                host:examplebucket.s3.amazonaws.com

                host
                UNSIGNED-PAYLOAD
                """
        )
        #expect(
            Self.signer.stringToSign(request, at: timestamp).hasSuffix(
                "\n3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
            )
        )

        let presigned = Self.signer.presignedURL(method: "GET", url: url, expires: 86_400, date: Self.date)
        #expect(
            presigned.absoluteString
                == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
                + "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        )
    }
}
