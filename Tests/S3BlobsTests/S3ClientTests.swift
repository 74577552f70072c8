import AsyncHTTPClient
import Foundation
import ModelRegistryCore
import NIOCore
import TestServers
import Testing

@testable import S3Blobs

/// The S3 client against a real S3-compatible server, moto, which the tests start themselves: every call, keys
/// that need encoding, paging, multipart uploads, presigned URLs, signatures moto checks, and the errors a user
/// sees. boto3, AWS's own SDK, reads back what the client wrote.
@Suite struct S3ClientTests {
    /// A key with everything that must be percent-encoded in a path and escaped in XML.
    static let awkwardKey = "dir/a b+c%d/&<é>'\"?#=;~"

    /// A client of a new bucket on the shared server, which takes any credentials.
    static func client(prefix: String = "") throws -> S3Client {
        let server = try MotoServer.shared()
        let location = try S3Location(parsing: server.url(bucket: try server.createBucket(), prefix: prefix))
        return S3Client(location: location, credentials: credentials)
    }

    static let credentials = S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey)

    /// `count` bytes of a pattern that does not repeat within a part.
    static func bytes(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    static func read(_ body: S3Body) async throws -> [UInt8] {
        Array(try await body.collect(upTo: 64 << 20).readableBytesView)
    }

    @Test func anObjectIsStoredAndReadWholeOrInRanges() async throws {
        let client = try Self.client(prefix: "blobs")
        let key = client.location.key("sha256/ab")
        let bytes = Self.bytes(1000)
        // S3 keeps whole seconds; the test process may wait minutes for a thread under load, so the time is held
        // to the moments around the write, not to a distance from now.
        let before = Date().addingTimeInterval(-1)
        try await client.put(key, ByteBuffer(bytes: bytes))
        let after = Date().addingTimeInterval(1)

        let object = try #require(try await client.head(key))
        #expect(object.key == "blobs/sha256/ab" && object.size == 1000)
        #expect(object.lastModified >= before && object.lastModified <= after, "\(object.lastModified)")
        #expect(try await Self.read(client.get(key, range: nil)) == bytes)
        #expect(try await Self.read(client.get(key, range: 10..<20)) == Array(bytes[10..<20]))
        #expect(try await Self.read(client.get(key, range: 999..<1000)) == [bytes[999]])

        #expect(try await client.head(client.location.key("sha256/cd")) == nil)
        let error = await #expect(throws: RegistryError.self) {
            _ = try await client.get(client.location.key("sha256/cd"), range: nil)
        }
        #expect(error?.code == .notFound)
        #expect(error?.message.contains("blobs/sha256/cd") == true, "\(error?.message ?? "")")
    }

    /// The key is encoded once in the path and the copy source, and decoded from the listing's URL encoding.
    @Test func aKeyThatNeedsEncodingSurvivesEveryCall() async throws {
        let client = try Self.client()
        let bytes = Self.bytes(100)
        try await client.put(Self.awkwardKey, ByteBuffer(bytes: bytes))
        #expect(try await client.head(Self.awkwardKey)?.size == 100)
        #expect(try await Self.read(client.get(Self.awkwardKey, range: 1..<3)) == Array(bytes[1..<3]))
        #expect(try await client.list(prefix: "dir/a b+").map(\.key) == [Self.awkwardKey])
        try await client.copy(from: Self.awkwardKey, to: Self.awkwardKey + "copy")
        #expect(try await Self.read(client.get(Self.awkwardKey + "copy", range: nil)) == bytes)
        try await client.delete(Self.awkwardKey)
        #expect(try await client.list(prefix: "dir/").map(\.key) == [Self.awkwardKey + "copy"])
    }

    /// Above S3's 5 GiB for one copy (here above a 5 MiB part, so the test moves megabytes, not gigabytes), an
    /// object is copied in parts of a multipart upload, which is gone afterwards; a failed copy leaves none.
    @Test func aLargeObjectIsCopiedInParts() async throws {
        let client = try Self.client()
        let part: Int64 = 5 << 20
        let bytes = Self.bytes(Int(2 * part) + 12345)
        try await client.put(Self.awkwardKey, ByteBuffer(bytes: bytes))
        try await client.copy(from: Self.awkwardKey, to: "copied", size: Int64(bytes.count), partSize: part)
        #expect(try await Self.read(client.get("copied", range: nil)) == bytes)
        #expect(try await client.listMultipartUploads(prefix: "").isEmpty)
        await #expect(throws: RegistryError.self) {
            try await client.copy(from: "missing", to: "copied-missing", size: 3 * part, partSize: part)
        }
        #expect(try await client.listMultipartUploads(prefix: "").isEmpty, "a failed copy left its upload")
        #expect(try await client.head("copied-missing") == nil)
    }

    @Test func aListingFollowsContinuationTokensInKeyOrder() async throws {
        let client = try Self.client()
        for (index, key) in ["p/c", "p/a", "q/x", "p/b"].enumerated() {
            try await client.put(key, ByteBuffer(bytes: Self.bytes(index + 1)))
        }
        let paged = try await client.list(prefix: "p/", pageSize: 2)
        #expect(paged.map(\.key) == ["p/a", "p/b", "p/c"])
        #expect(paged.map(\.size) == [2, 4, 1])
        #expect(try await client.list(prefix: "").map(\.key) == ["p/a", "p/b", "p/c", "q/x"])
        #expect(try await client.list(prefix: "r/").isEmpty)
    }

    /// The blob store marks a blob as used by copying it onto itself; S3 times have whole seconds.
    @Test func copyingAnObjectOntoItselfRefreshesItsTime() async throws {
        let client = try Self.client()
        try await client.put("blob", ByteBuffer(bytes: Self.bytes(10)))
        let before = try #require(try await client.head("blob"))
        try await Task.sleep(for: .seconds(1.1))
        try await client.copy(from: "blob", to: "blob")
        let after = try #require(try await client.head("blob"))
        #expect(after.lastModified > before.lastModified && after.size == 10)
        #expect(try await client.list(prefix: "blob").first?.lastModified == after.lastModified)

        let error = await #expect(throws: RegistryError.self) { try await client.copy(from: "missing", to: "blob") }
        #expect(error?.code == .storageFailure)
        #expect(error?.message.contains("NoSuchKey") == true, "\(error?.message ?? "")")
    }

    /// A pause of the reader is not a stall of S3: one longer than the stall limit still gets every byte. (The
    /// HTTP client's read timeout counted such pauses: a test process whose threads were all busy for a minute had
    /// healthy bodies broken off.)
    @Test func aReaderPausingLongerThanTheStallLimitGetsEveryByte() async throws {
        let server = try MotoServer.shared()
        let location = try S3Location(parsing: server.url(bucket: try server.createBucket()))
        // A limit of 2 s: moto, a Python server, may go a second without sending on a test machine that is busy.
        let client = S3Client(location: location, credentials: Self.credentials, stallLimit: .seconds(2))
        let bytes = Self.bytes(4 << 20)
        try await client.put("object", ByteBuffer(bytes: bytes))

        var iterator = try await client.get("object", range: nil).makeAsyncIterator()
        var received = Array(try #require(try await iterator.next()).readableBytesView)
        try await Task.sleep(for: .seconds(5))
        while let chunk = try await iterator.next() { received += chunk.readableBytesView }
        #expect(received == bytes)
    }

    /// S3 stopping in the middle of a body ends the read after the stall limit with an error naming the endpoint,
    /// not a hang.
    @Test func aBodyS3StopsSendingEndsAtTheStallLimit() async throws {
        let server = try MotoServer.shared()
        let bucket = try server.createBucket()
        let direct = S3Client(
            location: try S3Location(parsing: server.url(bucket: bucket)), credentials: Self.credentials)
        try await direct.put("object", ByteBuffer(bytes: Self.bytes(4 << 20)))
        let proxy = try InterruptingProxy(to: server.endpoint, direction: .toClient, after: 1 << 20, action: .stall)
        defer { proxy.close() }
        let location = try S3Location(
            parsing: "s3://\(bucket)?endpoint=\(proxy.url)&region=us-east-1")
        let client = S3Client(location: location, credentials: Self.credentials, stallLimit: .seconds(1))

        let error = await #expect(throws: RegistryError.self) {
            _ = try await Self.read(client.get("object", range: nil))
        }
        #expect(proxy.interrupted)
        #expect(error?.code == .notReady)
        #expect(
            error?.message.contains("S3 at \(proxy.url) bucket \(bucket) sent nothing for 1 s") == true,
            "\(error?.message ?? "")")
    }

    @Test func aMultipartUploadJoinsItsPartsAndIsListedUntilThen() async throws {
        let client = try Self.client()
        let first = Self.bytes(5 << 20, seed: 1)
        let last = Self.bytes(1234, seed: 2)
        let uploadID = try await client.createMultipartUpload("uploads/model")
        let inProgress = try await client.listMultipartUploads(prefix: "uploads/")
        #expect(inProgress.map(\.key) == ["uploads/model"] && inProgress.map(\.uploadID) == [uploadID])

        let parts = [
            S3Part(
                number: 1,
                etag: try await client.uploadPart(
                    "uploads/model", uploadID: uploadID, partNumber: 1, .init(bytes: first))),
            S3Part(
                number: 2,
                etag: try await client.uploadPart(
                    "uploads/model", uploadID: uploadID, partNumber: 2, .init(bytes: last))),
        ]
        #expect(parts.allSatisfy { $0.etag.hasPrefix("\"") && $0.etag.hasSuffix("\"") }, "\(parts)")
        try await client.completeMultipartUpload("uploads/model", uploadID: uploadID, parts: parts)

        #expect(try await client.head("uploads/model")?.size == Int64(first.count + last.count))
        #expect(try await Self.read(client.get("uploads/model", range: nil)) == first + last)
        #expect(try await client.listMultipartUploads(prefix: "uploads/").isEmpty)
    }

    @Test func anAbortedUploadIsGoneAndAbortingAgainIsFine() async throws {
        let client = try Self.client()
        let uploadID = try await client.createMultipartUpload("u")
        _ = try await client.uploadPart("u", uploadID: uploadID, partNumber: 1, ByteBuffer(bytes: Self.bytes(10)))
        try await client.abortMultipartUpload("u", uploadID: uploadID)
        try await client.abortMultipartUpload("u", uploadID: uploadID)
        #expect(try await client.listMultipartUploads(prefix: "").isEmpty)
        #expect(try await client.head("u") == nil)
    }

    @Test func aCompletionNamingAPartNeverUploadedFails() async throws {
        let client = try Self.client()
        let uploadID = try await client.createMultipartUpload("u")
        _ = try await client.uploadPart("u", uploadID: uploadID, partNumber: 1, ByteBuffer(bytes: Self.bytes(10)))
        let error = await #expect(throws: RegistryError.self) {
            try await client.completeMultipartUpload(
                "u", uploadID: uploadID, parts: [S3Part(number: 1, etag: "\"00000000000000000000000000000000\"")])
        }
        #expect(error?.code == .storageFailure)
        #expect(error?.message.hasPrefix("S3 at \(client.location.endpointDescription): InvalidPart: ") == true)
        #expect(try await client.head("u") == nil)
    }

    @Test func deletingIsIdempotent() async throws {
        let client = try Self.client()
        try await client.put("gone", ByteBuffer(bytes: Self.bytes(3)))
        try await client.delete("gone")
        #expect(try await client.head("gone") == nil)
        try await client.delete("gone")
    }

    /// Moto checks no presigned URL's signature (it answers 200 to a tampered one, and 500 to every presigned URL
    /// once authentication is on), so botocore, signing the same request at the same second, checks ours.
    @Test func aPresignedURLServesTheObjectAndIsSignedAsBotocoreSignsIt() async throws {
        let client = try Self.client()
        try await client.put(Self.awkwardKey, ByteBuffer(bytes: Self.bytes(64)))
        let url = client.presignedGET(Self.awkwardKey, validFor: .seconds(300))
        let response = try await HTTPClient.shared.execute(
            HTTPClientRequest(url: url.absoluteString), timeout: .seconds(30))
        #expect(response.status == .ok)
        #expect(Array(buffer: try await response.body.collect(upTo: 1 << 20)) == Self.bytes(64))

        let signatures = try Self.botocoreSignatures(of: url).split(separator: " ")
        #expect(signatures.count == 2 && signatures[0] == signatures[1], "botocore's, then ours: \(signatures)")
        let tampered = try #require(URL(string: url.absoluteString.replacingOccurrences(of: "/dir/", with: "/dir2/")))
        let tamperedSignatures = try Self.botocoreSignatures(of: tampered).split(separator: " ")
        #expect(tamperedSignatures.count == 2 && tamperedSignatures[0] != tamperedSignatures[1])
    }

    /// The signature botocore computes for a presigned GET of `url`'s path at the URL's own time, then the URL's.
    static func botocoreSignatures(of url: URL) throws -> String {
        try MotoServer.python(
            """
            import datetime, sys
            from urllib.parse import parse_qs, urlsplit
            import botocore.auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            url, access_key, secret_key = sys.argv[1:4]
            parts = urlsplit(url)
            query = parse_qs(parts.query)
            signed_at = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ")
            botocore.auth.get_current_datetime = lambda: signed_at.replace(tzinfo=datetime.timezone.utc)
            request = AWSRequest(method="GET", url=f"{parts.scheme}://{parts.netloc}{parts.path}")
            auth = botocore.auth.S3SigV4QueryAuth(
                Credentials(access_key, secret_key), "s3", "us-east-1", expires=int(query["X-Amz-Expires"][0]))
            auth.add_auth(request)
            print(parse_qs(urlsplit(request.url).query)["X-Amz-Signature"][0], query["X-Amz-Signature"][0])
            """, [url.absoluteString, MotoServer.accessKey, MotoServer.secretKey])
    }

    /// What modelreg writes is an ordinary S3 object to AWS's own SDK.
    @Test func boto3ReadsBackAMultipartObject() async throws {
        let client = try Self.client(prefix: "registry")
        let key = client.location.key("blobs/sha256/model")
        let bytes = Self.bytes(5 << 20, seed: 3) + Self.bytes(4321, seed: 4)
        let uploadID = try await client.createMultipartUpload(key)
        var parts: [S3Part] = []
        for (number, range) in [(1, 0..<(5 << 20)), (2, (5 << 20)..<bytes.count)] {
            let etag = try await client.uploadPart(
                key, uploadID: uploadID, partNumber: number, ByteBuffer(bytes: bytes[range]))
            parts.append(S3Part(number: number, etag: etag))
        }
        try await client.completeMultipartUpload(key, uploadID: uploadID, parts: parts)

        let server = try MotoServer.shared()
        let read = try MotoServer.python(
            """
            import hashlib, sys
            import boto3
            from botocore.config import Config
            endpoint, bucket, key, access_key, secret_key = sys.argv[1:6]
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key,
                              aws_secret_access_key=secret_key, config=Config(s3={"addressing_style": "path"}))
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            print(hashlib.sha256(body).hexdigest(), len(body), s3.head_object(Bucket=bucket, Key=key)["ETag"])
            """,
            [server.endpoint, client.location.bucket, key, MotoServer.accessKey, MotoServer.secretKey])
        let fields = read.split(separator: " ")
        #expect(fields.count == 3, "\(read)")
        #expect(fields.first.map(String.init) == SigV4Signer.hexSHA256(bytes))
        #expect(fields.dropFirst().first == "\(bytes.count)")
        #expect(fields.last?.hasSuffix("-2\"") == true, "a multipart ETag counts its parts: \(read)")
    }

    /// With authentication on, moto checks each request's SigV4 signature as botocore computes it, so every call
    /// here is signed right; then the refusals of a wrong secret and an unknown key, named by S3's codes. The key is
    /// plain: moto's check re-encodes what it decoded and refuses botocore's own requests for a key with `+`, `%`,
    /// `&` or a quote, or a listing whose prefix has a space (the presigned URL test compares such a signature).
    @Test func signaturesPassMotosCheckAndBadCredentialsAreNamed() async throws {
        let moto = try MotoServer.authenticating()
        let location = try S3Location(parsing: moto.server.url(bucket: moto.bucket, prefix: "t-\(UUID())"))
        let client = S3Client(
            location: location, credentials: S3Credentials(accessKeyID: moto.accessKey, secretAccessKey: moto.secretKey)
        )
        try await client.checkBucket()
        let key = location.key("blobs/sha256/0123")
        let bytes = Self.bytes(5 << 20) + Self.bytes(10)
        try await client.put(key, ByteBuffer(bytes: bytes[0..<100]))
        #expect(try await client.head(key)?.size == 100)
        #expect(try await Self.read(client.get(key, range: 5..<50)) == Array(bytes[5..<50]))
        try await client.copy(from: key, to: key)
        let uploadID = try await client.createMultipartUpload(key)
        #expect(try await client.listMultipartUploads(prefix: location.prefix).map(\.uploadID) == [uploadID])
        let parts = [
            S3Part(
                number: 1,
                etag: try await client.uploadPart(
                    key, uploadID: uploadID, partNumber: 1, ByteBuffer(bytes: bytes[0..<(5 << 20)]))),
            S3Part(
                number: 2,
                etag: try await client.uploadPart(
                    key, uploadID: uploadID, partNumber: 2, ByteBuffer(bytes: bytes[(5 << 20)...]))),
        ]
        try await client.completeMultipartUpload(key, uploadID: uploadID, parts: parts)
        #expect(try await client.list(prefix: location.prefix).map(\.size) == [Int64(bytes.count)])
        try await client.delete(key)

        for (credentials, code) in [
            (S3Credentials(accessKeyID: moto.accessKey, secretAccessKey: "wrong"), "SignatureDoesNotMatch"),
            (S3Credentials(accessKeyID: "AKIAUNKNOWNUNKNOWN00", secretAccessKey: "wrong"), "InvalidAccessKeyId"),
        ] {
            let refused = S3Client(location: location, credentials: credentials)
            let error = await #expect(throws: RegistryError.self) { _ = try await refused.list(prefix: "") }
            #expect(error?.code == .storageFailure)
            #expect(error?.message.hasPrefix("S3 at \(location.endpointDescription): \(code): ") == true)
            #expect(error?.message.hasSuffix("(HTTP 403)") == true, "\(error?.message ?? "")")
            // A HEAD answer has no body to name the code in.
            let headError = await #expect(throws: RegistryError.self) { _ = try await refused.head(key) }
            #expect(headError?.message == "S3 at \(location.endpointDescription): Forbidden (HTTP 403)")
        }
    }

    /// A refused connection is NOT_READY naming where S3 was looked for (no wall clock is checked: a full test run
    /// starves the threads for longer than any bound the test could set).
    @Test func aServerNobodyListensOnIsNotReady() async throws {
        let port = try PostgresServer.freePort()
        let client = S3Client(
            location: try S3Location(parsing: "s3://models?endpoint=http://127.0.0.1:\(port)"),
            credentials: S3Credentials(accessKeyID: "a", secretAccessKey: "b"))
        let error = await #expect(throws: RegistryError.self) { try await client.checkBucket() }
        #expect(error?.code == .notReady)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("S3 at http://127.0.0.1:\(port) bucket models is unreachable ("), "\(message)")
        #expect(message.hasSuffix("): check that it runs and accepts connections"), "\(message)")
    }

    @Test func aMissingBucketIsNamedAtTheReadinessCheck() async throws {
        let server = try MotoServer.shared()
        let client = S3Client(
            location: try S3Location(parsing: server.url(bucket: "never-created")),
            credentials: S3Credentials(accessKeyID: MotoServer.accessKey, secretAccessKey: MotoServer.secretKey))
        let error = await #expect(throws: RegistryError.self) { try await client.checkBucket() }
        #expect(error?.code == .storageFailure)
        #expect(error?.message.contains("the bucket does not exist (HTTP 404)") == true, "\(error?.message ?? "")")
    }

    @Test func theXMLReaderDecodesEntitiesAndMatchesWholeNames() {
        let document = S3XML(
            """
            \n  <?xml version="1.0" encoding="UTF-8"?>
            <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><KeyMarker>m</KeyMarker>\
            <Upload><Key>a&amp;b&lt;c&gt;&quot;&apos;&#233;&#xE9;&bogus;&amp</Key><UploadId/></Upload>\
            <Upload><Key>second</Key><UploadId>id 2</UploadId></Upload></ListMultipartUploadsResult>
            """)
        #expect(document.rootName == "ListMultipartUploadsResult")
        let uploads = document.elements("Upload")
        #expect(uploads.map { $0.text(of: "Key") } == ["a&b<c>\"'éé&bogus;&amp", "second"])
        #expect(uploads.map { $0.text(of: "UploadId") } == ["", "id 2"])
        #expect(document.text(of: "Key") == uploads.first?.text(of: "Key"))
        #expect(document.text(of: "KeyMarker") == "m" && document.text(of: "Missing") == nil)
        #expect(S3XML("<!-- note --><Error><Code>NoSuchKey</Code></Error>").rootName == "Error")
        #expect(MarkupText.escaped("\"a&b<c>'") == "&quot;a&amp;b&lt;c&gt;&#39;")
    }

    @Test func credentialsComeFromTheFileOrElseTheEnvironment() throws {
        let environment = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret"]
        #expect(
            try S3Client.credentials(environment: environment, file: nil)
                == S3Credentials(accessKeyID: "AKIDENV", secretAccessKey: "env-secret"))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("s3-credentials-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let shellFile = directory.appendingPathComponent("env")
        try """
        # modelreg's S3 user
        export AWS_ACCESS_KEY_ID=AKIDFILE
        AWS_SECRET_ACCESS_KEY="file secret=="
        AWS_SESSION_TOKEN='token'
        """.write(to: shellFile, atomically: true, encoding: .utf8)
        #expect(
            try S3Client.credentials(environment: environment, file: shellFile.path)
                == S3Credentials(accessKeyID: "AKIDFILE", secretAccessKey: "file secret==", sessionToken: "token"))

        let awsFile = directory.appendingPathComponent("credentials")
        try """
        [other]
        aws_access_key_id = AKIDOTHER
        aws_secret_access_key = other-secret

        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = default-secret
        """.write(to: awsFile, atomically: true, encoding: .utf8)
        #expect(
            try S3Client.credentials(environment: [:], file: awsFile.path)
                == S3Credentials(accessKeyID: "AKIDDEFAULT", secretAccessKey: "default-secret"))

        let missing = #expect(throws: RegistryError.self) {
            _ = try S3Client.credentials(environment: ["AWS_SECRET_ACCESS_KEY": "hidden"], file: nil)
        }
        #expect(missing?.code == .invalidRequest)
        #expect(
            missing?.message.contains("the environment has no AWS_ACCESS_KEY_ID;") == true, "\(missing?.message ?? "")")
        #expect(missing?.message.contains("hidden") == false)
        let unreadable = #expect(throws: RegistryError.self) {
            _ = try S3Client.credentials(environment: environment, file: directory.appendingPathComponent("none").path)
        }
        #expect(unreadable?.message.hasPrefix("cannot read --blobs-credentials-file ") == true)
    }
}
