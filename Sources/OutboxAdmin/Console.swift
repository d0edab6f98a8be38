import Hummingbird

/// The operator console: one static page, its script and its stylesheet,
/// embedded in the binary (`Sources/OutboxRelay/Console/`) and served at
/// `/console` by the admin API's listener. The page holds no data: its script
/// calls the JSON API with the bearer token the operator typed in (kept in
/// `sessionStorage`), so every figure and button goes through the API's own
/// authorization. Nothing is inserted as HTML; the policy below forbids inline
/// script and style, and any other origin.
enum Console {
    static let contentSecurityPolicy = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self'",
        "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'",
    ].joined(separator: "; ")

    // HTTPTypes names no Referrer-Policy field; the literal is a valid field name.
    private static let referrerPolicy = HTTPFields.Element.Name("Referrer-Policy")!

    static func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in Response(status: .found, headers: [.location: "/console"]) }
        router.get("/console") { _, _ in asset(PackageResources.index_html, "text/html; charset=utf-8") }
        router.get("/console/console.js") { _, _ in asset(PackageResources.console_js, "text/javascript; charset=utf-8") }
        router.get("/console/console.css") { _, _ in asset(PackageResources.console_css, "text/css; charset=utf-8") }
    }

    private static func asset(_ bytes: [UInt8], _ contentType: String) -> Response {
        let headers: HTTPFields = [
            .contentType: contentType,
            .contentSecurityPolicy: contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            referrerPolicy: "no-referrer",
            .cacheControl: "no-store",
        ]
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
