import Foundation

/// One request header.
public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// One webhook POST to make.
public struct WebhookRequest: Sendable {
    /// The caller's id (the delivery id), handed back in the response.
    public var tag: Int64
    public var url: String
    /// Every header to send. The engine adds `user-agent` (a caller's one is ignored) and
    /// suppresses `Expect: 100-continue`; a caller should send `content-type`, or libcurl sends
    /// `application/x-www-form-urlencoded`.
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    /// The whole attempt: connect, send and response.
    public var timeout: Duration

    public init(tag: Int64, url: String, headers: [HTTPHeader], body: [UInt8], timeout: Duration) {
        self.tag = tag
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
    }
}

/// What came back from one attempt.
public struct WebhookResponse: Sendable {
    public var tag: Int64
    /// Wall clock when the attempt started.
    public var startedAt: Date
    /// Measured on a monotonic clock.
    public var duration: Duration
    /// Nil when no HTTP response was received.
    public var statusCode: Int?
    /// Nil when the response arrived whole; otherwise what went wrong ("timed out after 2s",
    /// "connection refused", "TLS: …"). Both this and `statusCode` are set when the transfer
    /// failed after the status line arrived, e.g. a timeout while reading the body.
    public var error: String?
    /// The raw `Retry-After` response header, if any.
    public var retryAfter: String?
    /// The first bytes of the response body, at most `Configuration.responseExcerptBytes`.
    public var bodyExcerpt: [UInt8]

    public init(
        tag: Int64, startedAt: Date, duration: Duration, statusCode: Int?, error: String?,
        retryAfter: String?, bodyExcerpt: [UInt8]
    ) {
        self.tag = tag
        self.startedAt = startedAt
        self.duration = duration
        self.statusCode = statusCode
        self.error = error
        self.retryAfter = retryAfter
        self.bodyExcerpt = bodyExcerpt
    }
}
