import HTTPTypes
import Hummingbird

/// One route of the API. Each group of routes is a list of these, so the application registers exactly
/// what the tests compare against the OpenAPI document.
struct Route: Sendable {
    typealias Handler = @Sendable (Request, RegistryRequestContext) async throws -> Response

    let method: HTTPRequest.Method
    let path: String
    let handler: Handler

    init(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
        self.method = method
        self.path = path
        self.handler = handler
    }
}
