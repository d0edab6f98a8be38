import CLibCurl
import Foundation

/// `curl_global_init` must run once per process, before any other libcurl call.
enum CurlGlobal {
    static let initialization: CURLcode = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
}

/// One libcurl easy handle, its error buffer and the state of the transfer running on it.
///
/// Only the engine thread uses it. The engine keeps idle handles in a small pool and
/// reuses them; the connections themselves live in the multi handle's cache.
final class CurlEasyHandle {
    let raw: UnsafeMutableRawPointer
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let excerptLimit: Int
    private let addressPolicy: NetworkAddressPolicy
    private var headerList: CurlHeaderList?
    /// Set by the open-socket callback when the SSRF guard refused the address.
    private var refusedConnection: String?

    private(set) var tag: Int64 = 0
    private var timeout: Duration = .zero
    private var startedAt = Date(timeIntervalSince1970: 0)
    private var startInstant = ContinuousClock.now
    private var excerpt: [UInt8] = []

    /// Creates a handle with the options every delivery shares: TLS verification on,
    /// redirects off, only http and https, no signals.
    init(configuration: HTTPDeliveryEngine.Configuration) throws(HTTPDeliveryEngineError) {
        guard let raw = curl_easy_init() else {
            throw HTTPDeliveryEngineError(message: "libcurl could not create a transfer handle (curl_easy_init failed)")
        }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        self.raw = raw
        self.errorBuffer = errorBuffer
        self.excerptLimit = max(0, configuration.responseExcerptBytes)
        self.addressPolicy = NetworkAddressPolicy(allowPrivateNetworks: configuration.allowPrivateNetworks)

        // From here on a throw still runs deinit, which frees the handle and buffer.
        try check(ccurl_setopt_long(raw, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
        try check(ccurl_setopt_long(raw, CURLOPT_FOLLOWLOCATION, 0), "CURLOPT_FOLLOWLOCATION")
        // Only the first bytes of a response are kept (the excerpt): a 4 KiB receive buffer
        // instead of 16 KiB per handle (W1 at 1,000 in flight: peak RSS 63–68 → 57–60 MiB).
        try check(ccurl_setopt_long(raw, CURLOPT_BUFFERSIZE, 4096), "CURLOPT_BUFFERSIZE")
        try check(ccurl_setopt_long(raw, CURLOPT_SSL_VERIFYPEER, 1), "CURLOPT_SSL_VERIFYPEER")
        try check(ccurl_setopt_long(raw, CURLOPT_SSL_VERIFYHOST, 2), "CURLOPT_SSL_VERIFYHOST")
        try check(ccurl_setopt_long(raw, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS)), "CURLOPT_HTTP_VERSION")
        try check(ccurl_setopt_str(raw, CURLOPT_PROTOCOLS_STR, "http,https"), "CURLOPT_PROTOCOLS_STR")
        // Ambient proxy variables (http_proxy, HTTPS_PROXY, ALL_PROXY, no_proxy) are ignored: a proxy
        // the operator did not choose would hide the target from the SSRF guard. An empty proxy also
        // spares libcurl its environment lookups on every request.
        try check(ccurl_setopt_str(raw, CURLOPT_PROXY, ""), "CURLOPT_PROXY")
        try check(ccurl_setopt_str(raw, CURLOPT_NOPROXY, ""), "CURLOPT_NOPROXY")
        try check(ccurl_setopt_str(raw, CURLOPT_USERAGENT, configuration.userAgent), "CURLOPT_USERAGENT")
        try check(ccurl_setopt_ptr(raw, CURLOPT_ERRORBUFFER, errorBuffer), "CURLOPT_ERRORBUFFER")
        if let caBundlePath = configuration.caBundlePath {
            try check(ccurl_setopt_str(raw, CURLOPT_CAINFO, caBundlePath), "CURLOPT_CAINFO")
        }
        try check(
            ccurl_setopt_write_callback(raw, CURLOPT_WRITEFUNCTION) { data, size, count, userdata in
                let total = size * count
                guard let data, let userdata else { return total }
                let handle = Unmanaged<CurlEasyHandle>.fromOpaque(userdata).takeUnretainedValue()
                handle.keepExcerpt(UnsafeRawBufferPointer(start: data, count: total))
                // Claiming every byte lets the transfer finish while only the excerpt is kept.
                return total
            },
            "CURLOPT_WRITEFUNCTION"
        )
        // The SSRF guard sees the address libcurl is about to connect to, after DNS.
        try check(
            ccurl_setopt_opensocket_callback(raw) { userdata, _, address in
                guard let userdata, let address else { return CURL_SOCKET_BAD }
                return Unmanaged<CurlEasyHandle>.fromOpaque(userdata).takeUnretainedValue().openSocket(address)
            },
            "CURLOPT_OPENSOCKETFUNCTION"
        )
        // Unretained: the handle owns `raw`, so it outlives every callback libcurl makes on it.
        let unretainedSelf = Unmanaged.passUnretained(self).toOpaque()
        try check(ccurl_setopt_ptr(raw, CURLOPT_WRITEDATA, unretainedSelf), "CURLOPT_WRITEDATA")
        try check(ccurl_setopt_ptr(raw, CURLOPT_OPENSOCKETDATA, unretainedSelf), "CURLOPT_OPENSOCKETDATA")
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }

    /// Sets up the transfer for `request`. Returns why it cannot be sent, or nil when it is ready.
    func prepare(_ request: WebhookRequest) -> String? {
        tag = request.tag
        timeout = request.timeout
        startedAt = Date()
        startInstant = .now
        excerpt = []
        refusedConnection = nil
        errorBuffer[0] = 0

        if request.url.utf8.contains(0) { return "URL contains a NUL byte" }
        var lines = ["Expect:"]  // no 100-continue round trip before the body
        lines.reserveCapacity(request.headers.count + 1)
        for header in request.headers {
            if let problem = Self.problem(with: header) { return problem }
            // The engine's configured user agent always wins.
            if header.name.utf8.count == 10 && header.name.lowercased() == "user-agent" { continue }
            // "Name;" is curl's spelling of a header with an empty value; "Name:" would remove it.
            lines.append(header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)")
        }
        guard let headerList = CurlHeaderList(lines: lines) else { return "out of memory building request headers" }
        self.headerList = headerList

        // A timeout of 0 means "never" to libcurl, so the shortest is one millisecond.
        let timeoutMilliseconds = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let results: [(CURLcode, String)] = [
            (ccurl_setopt_str(raw, CURLOPT_URL, request.url), "CURLOPT_URL"),
            (ccurl_setopt_slist(raw, CURLOPT_HTTPHEADER, headerList.raw), "CURLOPT_HTTPHEADER"),
            (ccurl_setopt_long(raw, CURLOPT_TIMEOUT_MS, Int(clamping: timeoutMilliseconds)), "CURLOPT_TIMEOUT_MS"),
            // The size must be set before COPYPOSTFIELDS so binary bodies are copied whole.
            (ccurl_setopt_off(raw, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)), "CURLOPT_POSTFIELDSIZE_LARGE"),
            (copyBody(request.body), "CURLOPT_COPYPOSTFIELDS"),
        ]
        for (code, option) in results where code != CURLE_OK {
            return CurlErrorText.setup(code, option: option)
        }
        return nil
    }

    /// What the finished transfer produced.
    func response(result: CURLcode) -> WebhookResponse {
        var responseCode = 0
        _ = ccurl_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &responseCode)
        var error: String?
        if result != CURLE_OK {
            var osErrno = 0
            _ = ccurl_getinfo_long(raw, CURLINFO_OS_ERRNO, &osErrno)
            let detail = String(cString: errorBuffer)
            error = refusedConnection ?? CurlErrorText.transfer(result, detail: detail, osErrno: osErrno, timeout: timeout)
        }
        return WebhookResponse(
            tag: tag,
            startedAt: startedAt,
            duration: .now - startInstant,
            statusCode: responseCode > 0 ? responseCode : nil,
            error: error,
            // Only 429 and 503 are honoured (SPEC §4): no header lookup for the others.
            retryAfter: responseCode == 429 || responseCode == 503 ? retryAfter() : nil,
            bodyExcerpt: excerpt
        )
    }

    /// A response for a request that never reached libcurl.
    func refused(because reason: String) -> WebhookResponse {
        WebhookResponse(
            tag: tag, startedAt: startedAt, duration: .now - startInstant,
            statusCode: nil, error: reason, retryAfter: nil, bodyExcerpt: []
        )
    }

    /// Drops what the last transfer held, before the handle goes back to the pool.
    func clearTransfer() {
        _ = ccurl_setopt_slist(raw, CURLOPT_HTTPHEADER, nil)
        headerList = nil
        excerpt = []
    }

    /// Opens the socket for `address` unless the SSRF guard refuses it.
    private func openSocket(_ address: UnsafeMutablePointer<curl_sockaddr>) -> curl_socket_t {
        let family = address.pointee.family
        let socketAddress = UnsafeRawPointer(address) + MemoryLayout<curl_sockaddr>.offset(of: \curl_sockaddr.addr)!
        if let parsed = NetworkAddress(sockaddr: socketAddress, family: family) {
            if let reason = addressPolicy.refusal(for: parsed) {
                refusedConnection = reason
                return CURL_SOCKET_BAD
            }
        } else if !addressPolicy.allowPrivateNetworks {
            refusedConnection = "refused to connect to an address of family \(family): only IPv4 and IPv6 are allowed"
            return CURL_SOCKET_BAD
        }
        return socket(family, address.pointee.socktype, address.pointee.protocol)
    }

    private func keepExcerpt(_ bytes: UnsafeRawBufferPointer) {
        let room = excerptLimit - excerpt.count
        guard room > 0 else { return }
        excerpt.append(contentsOf: bytes.prefix(room))
    }

    private func retryAfter() -> String? {
        var header: UnsafeMutablePointer<curl_header>?
        guard curl_easy_header(raw, "Retry-After", 0, UInt32(CURLH_HEADER), -1, &header) == CURLHE_OK,
            let value = header?.pointee.value
        else { return nil }
        return String(cString: value)
    }

    private func copyBody(_ body: [UInt8]) -> CURLcode {
        if body.isEmpty { return ccurl_setopt_str(raw, CURLOPT_COPYPOSTFIELDS, "") }
        return body.withUnsafeBytes { bytes in
            ccurl_setopt_ptr(raw, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress))
        }
    }

    /// Header names must be RFC 9110 tokens and values must not break the line, so a
    /// subscription's static headers cannot inject other headers.
    private static func problem(with header: HTTPHeader) -> String? {
        let nameIsToken = !header.name.isEmpty && header.name.utf8.allSatisfy(isTokenByte)
        guard nameIsToken else { return "header name \"\(header.name)\" is not a valid HTTP token" }
        if header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
            return "header \"\(header.name)\" has a line break or NUL in its value"
        }
        return nil
    }

    /// A letter, a digit or one of the symbols RFC 9110 allows in a token.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    private func check(_ code: CURLcode, _ option: String) throws(HTTPDeliveryEngineError) {
        if code != CURLE_OK { throw HTTPDeliveryEngineError(message: CurlErrorText.setup(code, option: option)) }
    }
}

/// Owns a `curl_slist` of request header lines.
final class CurlHeaderList {
    let raw: UnsafeMutablePointer<curl_slist>?

    /// Nil when libcurl could not allocate the list.
    init?(lines: [String]) {
        var list: UnsafeMutablePointer<curl_slist>?
        for line in lines {
            guard let extended = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                return nil
            }
            list = extended
        }
        raw = list
    }

    deinit {
        curl_slist_free_all(raw)
    }
}
