import Foundation
import ModelRegistryCore
import Testing

@testable import S3Blobs

/// `--blobs s3://…`: what it names, the URLs it addresses objects at, and the refusals, each saying what is wrong
/// and the form that is accepted.
@Suite struct S3LocationTests {
    @Test func anEndpointMeansPathStyleAddressing() throws {
        let location = try S3Location(
            parsing: "s3://models/registry/blobs/?endpoint=http://127.0.0.1:9000/&region=eu-west-3")
        #expect(location.bucket == "models" && location.prefix == "registry/blobs")
        #expect(location.endpoint == URL(string: "http://127.0.0.1:9000") && location.region == "eu-west-3")
        #expect(location.endpointDescription == "http://127.0.0.1:9000 bucket models")
        #expect(location.key("sha256/ab") == "registry/blobs/sha256/ab")
        #expect(location.url(key: "a b/c+d").absoluteString == "http://127.0.0.1:9000/models/a%20b/c%2Bd")
        #expect(
            location.url(key: nil, query: "list-type=2").absoluteString == "http://127.0.0.1:9000/models?list-type=2")
    }

    @Test func noEndpointMeansAWSVirtualHostedStyle() throws {
        let location = try S3Location(parsing: "s3://models")
        #expect(location.prefix == "" && location.endpoint == nil && location.region == "us-east-1")
        #expect(location.key("sha256/ab") == "sha256/ab")
        #expect(location.endpointDescription == "https://s3.us-east-1.amazonaws.com bucket models")
        #expect(location.url(key: "k/é").absoluteString == "https://models.s3.us-east-1.amazonaws.com/k/%C3%A9")
        #expect(location.url(key: nil).absoluteString == "https://models.s3.us-east-1.amazonaws.com/")
    }

    @Test(arguments: [
        ("http://models/x", "is not an s3:// URL"),
        ("s3://AB/x", "names no valid bucket"),
        ("s3://-models", "names no valid bucket"),
        ("s3://models:9000/x", "has a port"),
        ("s3://key:topsecret@models/x", "has user information"),
        ("s3://models/a//b", "has an empty segment in its prefix"),
        ("s3://models?endpoint=ftp://host:21", "has an endpoint that is not http[s]://HOST[:PORT]"),
        ("s3://models?endpoint=http://host:9000/path", "has an endpoint that is not http[s]://HOST[:PORT]"),
        ("s3://models?endpoint=http://a:1&endpoint=http://b:2", "gives endpoint twice"),
        ("s3://models?region=EU", "has a region that is not of a-z 0-9 -"),
        ("s3://models?region=", "has a region that is not of a-z 0-9 -"),
        ("s3://models?bucket-style=path", "has the parameter 'bucket-style', which modelreg does not know"),
    ])
    func aBadLocationIsRefusedSayingWhy(text: String, why: String) {
        let error = #expect(throws: RegistryError.self) { _ = try S3Location(parsing: text) }
        #expect(error?.code == .invalidRequest)
        let shown = text.replacingOccurrences(of: "topsecret", with: "***")
        #expect(error?.message.hasPrefix("--blobs \(shown) \(why)") == true, "\(error?.message ?? "")")
        #expect(error?.message.hasSuffix(": give \(S3Location.acceptedForm)") == true)
    }
}
