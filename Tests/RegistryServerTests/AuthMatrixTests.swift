import Foundation
import HTTPTypes
import HummingbirdTesting
import ModelRegistryCore
import NIOCore
import Testing

@testable import RegistryServer

/// Every operation of the API (taken from the OpenAPI document, which `OpenAPITests` holds equal to the
/// router, so a new route cannot escape) called with no token, a revoked one, and each scope: below the
/// scope the document names the answer is 401 or 403, at or above it the request gets past authorization.
@Suite struct AuthMatrixTests {
    enum Caller: String, CaseIterable {
        case none, revoked, wrong, read, write, admin

        var scope: TokenScope? {
            switch self {
            case .none, .revoked, .wrong: nil
            case .read: .read
            case .write: .write
            case .admin: .admin
            }
        }
    }

    /// What the caller must get: nil when authorization must let the request through.
    static func expectedRefusal(_ caller: Caller, required: TokenScope?, anonymousRead: Bool) -> Int? {
        guard let required else { return nil }
        switch caller {
        case .revoked, .wrong: return 401
        case .none: return anonymousRead && required == .read ? nil : 401
        case .read, .write, .admin: return caller.scope! >= required ? nil : 403
        }
    }

    @Test(arguments: [false, true]) func everyOperationChecksItsScope(anonymousRead: Bool) async throws {
        try await TestRegistry.with(anonymousRead: anonymousRead) { registry, client in
            let revoked = TokenSecret.generate()
            _ = try await registry.registry.metadata.createToken(
                name: TokenLabel("gone"), scope: .admin, secret: revoked, actor: "test")
            _ = try await registry.registry.metadata.revokeToken(name: TokenLabel("gone"), actor: "test")
            let tokens: [Caller: String] = [
                .revoked: revoked.value, .wrong: TokenSecret.generate().value,
                .read: registry.read, .write: registry.write, .admin: registry.admin,
            ]
            let operations = try OpenAPITests.operations(OpenAPITests.document())
            #expect(operations.count > 50)
            var checked = 0
            // The OCI token service authenticates the credentials it is given and is the way to a token, so it
            // has no scope of its own: OCIProtocolTests check its answers to every kind of credential.
            let tokenService = operations.keys.filter { $0.path == "/v2/token" }
            #expect(tokenService.count == 3)
            for (operation, details) in operations.sorted(by: { $0.key.description < $1.key.description })
            where operation.path != "/v2/token" {
                let isPublic = (details["security"] as? [Any])?.isEmpty == true
                let scopeText = details["x-required-scope"] as? String
                #expect(isPublic || scopeText != nil, "\(operation) names neither security: [] nor x-required-scope")
                let required = try scopeText.map { text throws(RegistryError) in try TokenScope(parsing: text) }
                var uri = operation.path
                for (name, value) in OpenAPITests.samples {
                    uri = uri.replacingOccurrences(of: "{\(name)}", with: value)
                }
                if operation.method == "put", operation.path.hasSuffix("{id}") {
                    uri += "?digest=\(OpenAPITests.samples["digest"]!)"
                }
                for caller in Caller.allCases {
                    var headers: HTTPFields = [HTTPField.Name("Upload-Offset")!: "0"]
                    if let token = tokens[caller] { headers[.authorization] = "Bearer \(token)" }
                    let body: ByteBuffer? =
                        ["put", "post", "patch"].contains(operation.method) ? ByteBuffer(string: "{}") : nil
                    let response = try await client.execute(
                        uri: uri, method: HTTPRequest.Method(rawValue: operation.method.uppercased())!,
                        headers: headers, body: body
                    )
                    let status = Int(response.status.code)
                    if let refusal = Self.expectedRefusal(caller, required: required, anonymousRead: anonymousRead) {
                        #expect(status == refusal, "\(operation) as \(caller): \(status) \(response.text)")
                        if refusal == 401 {
                            #expect(response.headers[.wwwAuthenticate] != nil, "\(operation) as \(caller)")
                        }
                    } else {
                        #expect(status != 401 && status != 403, "\(operation) as \(caller): \(status) \(response.text)")
                    }
                    checked += 1
                }
            }
            #expect(checked == (operations.count - tokenService.count) * Caller.allCases.count)
        }
    }
}
