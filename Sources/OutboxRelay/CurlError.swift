import CLibCurl
import Foundation

/// The HTTP delivery engine could not be set up or started.
public struct HTTPDeliveryEngineError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The one place where libcurl's result codes become text.
enum CurlErrorText {
    /// Text for a transfer that ended without a usable response.
    /// - Parameters:
    ///   - detail: curl's error buffer for the transfer (may be empty).
    ///   - osErrno: `CURLINFO_OS_ERRNO`, which tells "refused" from "unreachable".
    static func transfer(_ code: CURLcode, detail: String, osErrno: Int, timeout: Duration) -> String {
        switch code {
        case CURLE_OPERATION_TIMEDOUT:
            return "timed out after \(describe(timeout))"
        case CURLE_COULDNT_CONNECT:
            let reason = osErrno == Int(ECONNREFUSED) ? "connection refused" : "could not connect"
            return withDetail(reason, detail)
        case CURLE_COULDNT_RESOLVE_HOST:
            return withDetail("could not resolve host", detail)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
            CURLE_SSL_CIPHER, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            CURLE_SSL_INVALIDCERTSTATUS, CURLE_SSL_CRL_BADFILE, CURLE_SSL_ENGINE_INITFAILED,
            CURLE_SSL_SHUTDOWN_FAILED, CURLE_USE_SSL_FAILED:
            return "TLS: " + (detail.isEmpty ? libcurlText(code) : detail)
        case CURLE_GOT_NOTHING:
            return withDetail("server closed the connection without a response", detail)
        case CURLE_UNSUPPORTED_PROTOCOL:
            return withDetail("unsupported URL scheme (only http and https are allowed)", detail)
        case CURLE_URL_MALFORMAT:
            return withDetail("malformed URL", detail)
        default:
            return withDetail(libcurlText(code), detail)
        }
    }

    /// Text for an option libcurl refused while preparing a transfer or the engine.
    static func setup(_ code: CURLcode, option: String) -> String {
        "libcurl refused \(option): \(libcurlText(code))"
    }

    /// Text for a failed `curl_multi_*` call.
    static func multi(_ code: CURLMcode, call: String) -> String {
        let text = curl_multi_strerror(code).map { String(cString: $0) } ?? "code \(code.rawValue)"
        return "\(call) failed: \(text)"
    }

    /// "2s", "1.5s", "250ms": how a configured timeout reads in an error.
    static func describe(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        if milliseconds < 1000 { return "\(milliseconds)ms" }
        return "\(Double(milliseconds) / 1000)s"
    }

    private static func libcurlText(_ code: CURLcode) -> String {
        curl_easy_strerror(code).map { String(cString: $0) } ?? "libcurl error \(code.rawValue)"
    }

    private static func withDetail(_ reason: String, _ detail: String) -> String {
        detail.isEmpty ? reason : "\(reason) (\(detail))"
    }
}
