import Foundation

/// Turns a claimed delivery into the HTTP request of SPEC §4: the JSON envelope,
/// the Standard Webhooks headers signed with every active secret, then the
/// event's and the subscription's extra headers.
public struct WebhookRequestBuilder: Sendable {
    public var defaultTimeout: Duration

    public init(defaultTimeout: Duration) {
        self.defaultTimeout = defaultTimeout
    }

    /// The requests for one claimed batch, attempted at `now`, in order. A request that
    /// cannot be built (a stored secret or headers that cannot be used) is a failure,
    /// recorded as a failed attempt. The rows of one subscription carry the same secret
    /// and header texts, so each text is parsed once per batch, not once per delivery.
    public func requests(for deliveries: [ClaimedDelivery], now: Date) -> [Result<WebhookRequest, any Error>] {
        var secrets: [String: WebhookSecret] = [:]
        var headerLists: [String: [HTTPHeader]] = [:]
        func secret(_ text: String) throws -> WebhookSecret {
            if let parsed = secrets[text] { return parsed }
            let parsed = try WebhookSecret(parsing: text)
            secrets[text] = parsed
            return parsed
        }
        func headers(_ json: String?) throws -> [HTTPHeader] {
            guard let json, json != "{}" else { return [] }
            if let parsed = headerLists[json] { return parsed }
            let parsed = try Self.extraHeaders(json)
            headerLists[json] = parsed
            return parsed
        }
        let timestamp = Int64(now.timeIntervalSince1970)
        return deliveries.map { delivery in
            Result {
                try request(for: delivery, timestamp: timestamp, secrets: delivery.secrets.map(secret),
                            eventHeaders: headers(delivery.eventHeaders),
                            subscriptionHeaders: headers(delivery.subscriptionHeaders))
            }
        }
    }

    private func request(
        for delivery: ClaimedDelivery, timestamp: Int64, secrets: [WebhookSecret],
        eventHeaders: [HTTPHeader], subscriptionHeaders: [HTTPHeader]
    ) -> WebhookRequest {
        let body = Self.body(for: delivery)
        var headers = [
            HTTPHeader(name: "content-type", value: "application/json"),
            HTTPHeader(name: "webhook-id", value: delivery.eventID),
            HTTPHeader(name: "webhook-timestamp", value: String(timestamp)),
            HTTPHeader(name: "webhook-signature",
                       value: WebhookSignature.header(id: delivery.eventID, timestamp: timestamp, body: body, secrets: secrets)),
        ]
        headers += eventHeaders
        headers += subscriptionHeaders
        return WebhookRequest(
            tag: delivery.deliveryID, url: delivery.url, headers: headers, body: body,
            timeout: delivery.timeout ?? defaultTimeout)
    }

    /// `{"type":…,"timestamp":…,"data":<payload>}`; the payload is the stored JSON text as is.
    static func body(for delivery: ClaimedDelivery) -> [UInt8] {
        var body: [UInt8] = []
        body.reserveCapacity(delivery.payload.utf8.count + delivery.eventType.utf8.count + 64)
        body += #"{"type":"#.utf8
        appendJSONString(delivery.eventType, to: &body)
        body += #","timestamp":"#.utf8
        appendJSONString(delivery.eventTimestamp, to: &body)
        body += #","data":"#.utf8
        body += delivery.payload.utf8
        body += "}".utf8
        return body
    }

    private static func appendJSONString(_ text: String, to body: inout [UInt8]) {
        body.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                body += [UInt8(ascii: "\\"), byte]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                body += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default:
                body.append(byte)
            }
        }
        body.append(UInt8(ascii: "\""))
    }

    /// A stored headers object (validated at INSERT) as HTTP headers.
    private static func extraHeaders(_ json: String) throws -> [HTTPHeader] {
        let object = try JSONDecoder().decode([String: String].self, from: Data(json.utf8))
        return object.keys.sorted().map { HTTPHeader(name: $0, value: object[$0]!) }
    }
}
