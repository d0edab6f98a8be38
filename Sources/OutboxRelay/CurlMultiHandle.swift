import CLibCurl

/// Owns the libcurl multi handle, whose connection cache every transfer shares.
///
/// `@unchecked Sendable`: only the engine thread drives it; other threads only call
/// `curl_multi_wakeup`, which libcurl documents as safe from any thread, and the handle lives
/// as long as the engine, so a wake-up never meets a freed handle.
final class CurlMultiHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer

    init(maxConnectionsPerHost: Int) throws(HTTPDeliveryEngineError) {
        guard let raw = curl_multi_init() else {
            throw HTTPDeliveryEngineError(message: "libcurl could not create a multi handle (curl_multi_init failed)")
        }
        self.raw = raw
        try check(ccurl_multi_setopt_long(raw, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX)), "CURLMOPT_PIPELINING")
        if maxConnectionsPerHost > 0 {
            try check(ccurl_multi_setopt_long(raw, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost), "CURLMOPT_MAX_HOST_CONNECTIONS")
        }
    }

    deinit {
        curl_multi_cleanup(raw)
    }

    func wakeup() {
        _ = curl_multi_wakeup(raw)
    }

    private func check(_ code: CURLMcode, _ option: String) throws(HTTPDeliveryEngineError) {
        if code != CURLM_OK { throw HTTPDeliveryEngineError(message: CurlErrorText.multi(code, call: "setting \(option)")) }
    }
}
