import Mustache

/// Renders the pages from the templates compiled into the binary. `{{name}}` escapes what it prints (`<`, `>`,
/// `&`, both quotes); the templates use `{{{…}}}` only for a model card's HTML, which `SafeMarkdown` made.
public struct PageRenderer: Sendable {
    private let library: MustacheLibrary

    /// The templates are part of the binary; WebUITests render every one, so one that does not parse never ships.
    public init() {
        var library = MustacheLibrary()
        for (name, bytes) in [
            ("layout", PackageResources.layout_mustache), ("catalogue", PackageResources.catalogue_mustache),
            ("model", PackageResources.model_mustache), ("variant", PackageResources.variant_mustache),
            ("audit", PackageResources.audit_mustache), ("signin", PackageResources.signin_mustache),
            ("error", PackageResources.error_mustache),
        ] {
            do {
                try library.register(String(decoding: bytes, as: UTF8.self), named: name)
            } catch {
                preconditionFailure("the \(name) template does not parse: \(error)")
            }
        }
        self.library = library
    }

    public func render(_ page: CataloguePage) -> String { render(page, "catalogue") }
    public func render(_ page: ModelPage) -> String { render(page, "model") }
    public func render(_ page: VariantPage) -> String { render(page, "variant") }
    public func render(_ page: AuditPage) -> String { render(page, "audit") }
    public func render(_ page: SignInPage) -> String { render(page, "signin") }
    public func render(_ page: ErrorPage) -> String { render(page, "error") }

    private func render(_ page: Any, _ template: String) -> String {
        // Every name is registered above.
        library.render(page, withTemplate: template)!
    }

    /// The stylesheet and the script the layout links, by file name.
    public static let staticFiles: [String: (contentType: String, bytes: [UInt8])] = [
        "style.css": ("text/css; charset=utf-8", PackageResources.style_css),
        "app.js": ("text/javascript; charset=utf-8", PackageResources.app_js),
    ]
}
