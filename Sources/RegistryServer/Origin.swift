import HTTPTypes
import Hummingbird

extension Registry {
    /// The scheme and authority clients reach this server at, for the absolute URLs it hands out (a next
    /// page, a token service): a proxy's `X-Forwarded-Proto`, else whether it serves TLS; the request's host.
    func origin(of request: Request) -> String {
        let scheme = request.headers[.forwardedProto] ?? (servesTLS ? "https" : "http")
        return "\(scheme)://\(request.head.authority ?? "localhost")"
    }
}

extension HTTPField.Name {
    static let link = Self("Link")!
    static let forwardedProto = Self("X-Forwarded-Proto")!
}
