import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import NIOCore
import Testing

@testable import RegistryServer

/// The OpenAPI document is the contract: it must describe exactly the routes the application registers,
/// and every documented operation must answer with a status the document lists.
@Suite struct OpenAPITests {
    struct Operation: Hashable, CustomStringConvertible {
        var method: String
        var path: String
        var description: String { "\(method) \(path)" }
    }

    static let methods = ["get", "put", "post", "delete", "patch", "head"]

    static func document() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(PackageResources.openapi_json)) as? [String: Any])
    }

    static func operations(_ document: [String: Any]) throws -> [Operation: [String: Any]] {
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        var result: [Operation: [String: Any]] = [:]
        for (path, item) in paths {
            for method in methods {
                if let operation = item[method] as? [String: Any] {
                    result[Operation(method: method, path: path)] = operation
                }
            }
        }
        return result
    }

    /// `/v1/uploads/:id` and `/v1/uploads/{id}` both become `/v1/uploads/{}`; `/v2/` and `/v2` are one path.
    static func normalized(_ path: String) -> String {
        let path = path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path
        return path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix(":") || (segment.hasPrefix("{") && segment.hasSuffix("}")) ? "{}" : String(segment)
        }.joined(separator: "/")
    }

    @Test func documentMatchesTheRegisteredRoutes() async throws {
        try await TestRegistry.with { registry, _ in
            let documented = try Self.operations(Self.document()).keys
            let routes = RegistryApplication.routes(registry.registry).map {
                Operation(method: $0.method.rawValue.lowercased(), path: $0.path)
            }
            // A catch-all route (`/v1/models/**`, `/hf/**`, `/v2/**`) answers every documented path below its
            // prefix.
            let catchAlls = Set(routes.filter { $0.path.hasSuffix("/**") }.map(\.path))
            func prefix(_ path: String) -> String? {
                catchAlls.map { String($0.dropLast(3)) }.first { path.hasPrefix($0 + "/") && path.count > $0.count + 1 }
            }
            let fixed = Set(
                routes.filter { !catchAlls.contains($0.path) }.map {
                    Operation(method: $0.method, path: Self.normalized($0.path))
                })

            for operation in documented {
                let normal = Operation(method: operation.method, path: Self.normalized(operation.path))
                if let prefix = prefix(operation.path) {
                    #expect(
                        routes.contains { $0.path == prefix + "/**" && $0.method == operation.method },
                        "documented but not served: \(operation)")
                } else {
                    #expect(fixed.contains(normal), "documented but not served: \(operation)")
                }
            }
            let documentedNormal = Set(documented.map { Operation(method: $0.method, path: Self.normalized($0.path)) })
            for route in fixed {
                #expect(documentedNormal.contains(route), "served but not documented: \(route)")
            }
            for route in routes where catchAlls.contains(route.path) {
                let prefix = String(route.path.dropLast(3))
                #expect(
                    documented.contains { $0.method == route.method && $0.path.hasPrefix(prefix + "/") },
                    "served but not documented: \(route.method) \(prefix)/…")
            }
        }
    }

    static let samples: [String: String] = [
        "digest": "sha256:" + String(repeating: "0", count: 64), "id": "00000000-0000-4000-8000-000000000000",
        "org": "org", "name": "m", "version": "1.0", "variant": "fp16", "alias": "prod", "reference": ":1.0",
        "layout": "flat", "revision": "prod", "file": "w", "path": "none",
    ]

    /// Every documented operation, called with sample parameters on a registry holding one published model,
    /// answers with a status the document lists for it, and JSON errors have the documented shape.
    @Test func everyOperationAnswersWithADocumentedStatus() async throws {
        try await TestRegistry.with { registry, client in
            let weights = try await putBlob(client, registry.write, Array("weights".utf8))
            let manifest =
                #"{"schemaVersion":1,"format":"other","files":[{"path":"w","digest":"\#(weights)","size":7,"executable":false}]}"#
            for prefix in ["/v1/models/m", "/v1/models/org/m"] {
                let published = try await client.execute(
                    uri: "\(prefix)/versions/1.0/variants/fp16", method: .put, headers: auth(registry.write),
                    body: ByteBuffer(string: manifest)
                )
                #expect(published.status == .created)
                _ = try await client.execute(
                    uri: "\(prefix)/aliases/prod", method: .put, headers: auth(registry.write),
                    body: ByteBuffer(string: #"{"version":"1.0"}"#))
            }
            for (operation, details) in try Self.operations(Self.document()) {
                var uri = operation.path
                for (name, value) in Self.samples { uri = uri.replacingOccurrences(of: "{\(name)}", with: value) }
                if operation.path.hasPrefix("/v1/uploads/{id}") || operation.path == "/v1/uploads" {
                    let created = try await client.execute(
                        uri: "/v1/uploads", method: .post, headers: auth(registry.write))
                    if operation.path != "/v1/uploads" { uri = try #require(created.headers[.location]) }
                }
                if operation.method == "put", operation.path.hasSuffix("{id}") {
                    uri += "?digest=\(Self.samples["digest"]!)"
                }
                let body: ByteBuffer? =
                    ["put", "post", "patch"].contains(operation.method) ? ByteBuffer(string: "{}") : nil
                let response = try await client.execute(
                    uri: uri, method: HTTPRequest.Method(rawValue: operation.method.uppercased())!,
                    headers: auth(registry.admin, [HTTPField.Name("Upload-Offset")!: "0"]), body: body
                )
                let responses = try #require(details["responses"] as? [String: Any], "\(operation) has no responses")
                #expect(
                    responses[String(response.status.code)] != nil || responses["default"] != nil,
                    "\(operation) (as \(uri)) answered \(response.status.code), which is not documented: \(response.text)"
                )
                if operation.path.hasPrefix("/hf/"), response.status.code >= 400 {
                    // The Hub's own error form, which its clients read.
                    #expect(response.headers[HTTPField.Name("X-Error-Message")!] != nil, "\(operation) (as \(uri))")
                } else if operation.path.hasPrefix("/v2/"), response.status.code >= 400 {
                    // The OCI Distribution spec's error form.
                    if operation.method != "head" {
                        #expect(response.text.contains(#""errors":[{"code":"#), "\(operation) (as \(uri))")
                    }
                } else if response.status.code >= 400, operation.method != "head" {
                    #expect(response.errorCode != nil, "\(operation) error body: \(response.text)")
                }
            }
        }
    }
}

extension OpenAPITests {
    @Test func errorCodesAreDocumented() throws {
        let schemas = try #require(Self.document()["components"] as? [String: Any])["schemas"] as? [String: Any]
        let codes = try #require((schemas?["ErrorCode"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(codes) == Set(RegistryError.Code.allCases.map(\.rawValue)))
    }
}

extension OpenAPITests {
    /// The deprecation reason's pattern lists exactly the scalars of the Basic Multilingual Plane that the server
    /// refuses, so a reason the document allows is never refused (and the other way round).
    @Test func deprecationReasonPatternIsTheServersRule() throws {
        let schemas = try #require(Self.document()["components"] as? [String: Any])["schemas"] as? [String: Any]
        let request = try #require(schemas?["DeprecationRequest"] as? [String: Any])
        let reason = try #require((request["properties"] as? [String: Any])?["reason"] as? [String: Any])
        let pattern = try #require(reason["pattern"] as? String)
        #expect(pattern.hasPrefix("^[^") && pattern.hasSuffix("]*$"))
        // The members are `\uXXXX` or `\uXXXX-\uXXXX`, as the JSON text spells them.
        var members = Substring(pattern.dropFirst(3).dropLast(3))
        func scalar() throws -> UInt32 {
            #expect(members.hasPrefix("\\u"), "\(members)")
            let value = try #require(UInt32(members.dropFirst(2).prefix(4), radix: 16), "\(members)")
            members = members.dropFirst(6)
            return value
        }
        var listed = Set<UInt32>()
        while !members.isEmpty {
            let first = try scalar()
            if members.first == "-" {
                members = members.dropFirst()
                listed.formUnion(first...(try scalar()))
            } else {
                listed.insert(first)
            }
        }
        let refused = Set(
            (0...0xFFFF as ClosedRange<UInt32>).filter { Unicode.Scalar($0).map(DeprecationHeader.isRefused) ?? false })
        #expect(
            listed == refused,
            "pattern only: \(listed.subtracting(refused).sorted()), server only: \(refused.subtracting(listed).sorted())"
        )
    }
}
