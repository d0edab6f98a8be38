import Testing

@testable import OutboxRelay

@Suite struct WebhookSignatureTests {
    // The test vector published with the Standard Webhooks specification.
    static let vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let vectorID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    static let vectorTimestamp: Int64 = 1_614_265_330
    static let vectorBody = Array(#"{"test": 2432232314}"#.utf8)
    static let vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

    @Test func matchesTheStandardWebhooksTestVector() throws {
        let secret = try WebhookSecret(parsing: Self.vectorSecret)
        let header = WebhookSignature.header(
            id: Self.vectorID, timestamp: Self.vectorTimestamp, body: Self.vectorBody, secrets: [secret]
        )
        #expect(header == Self.vectorSignature)
    }

    @Test func signsWithEverySecretInOrder() throws {
        let first = try WebhookSecret(parsing: Self.vectorSecret)
        let second = WebhookSecret.generate()
        let both = WebhookSignature.header(
            id: Self.vectorID, timestamp: Self.vectorTimestamp, body: Self.vectorBody, secrets: [first, second]
        )
        let secondAlone = WebhookSignature.header(
            id: Self.vectorID, timestamp: Self.vectorTimestamp, body: Self.vectorBody, secrets: [second]
        )
        #expect(both == "\(Self.vectorSignature) \(secondAlone)")
        #expect(secondAlone.hasPrefix("v1,") && secondAlone.count == 47)
    }

    @Test func aSecretSignsAlikeEveryTime() throws {
        // Each secret keys one HMAC that every signature copies: signing must leave it as it was.
        let secret = try WebhookSecret(parsing: Self.vectorSecret)
        _ = WebhookSignature.header(id: "msg_other", timestamp: 1, body: Array(repeating: 7, count: 300), secrets: [secret])
        let twice = (0..<2).map { _ in
            WebhookSignature.header(id: Self.vectorID, timestamp: Self.vectorTimestamp, body: Self.vectorBody, secrets: [secret, secret])
        }
        #expect(twice[0] == "\(Self.vectorSignature) \(Self.vectorSignature)")
        #expect(twice[1] == twice[0])
    }

    @Test func noSecretsGivesAnEmptyHeader() {
        #expect(WebhookSignature.header(id: "msg_1", timestamp: 1, body: [], secrets: []) == "")
    }

    @Test func signatureDependsOnIdTimestampAndBody() throws {
        let secret = try WebhookSecret(parsing: Self.vectorSecret)
        let reference = WebhookSignature.header(id: "msg_1", timestamp: 10, body: [1, 2], secrets: [secret])
        #expect(WebhookSignature.header(id: "msg_2", timestamp: 10, body: [1, 2], secrets: [secret]) != reference)
        #expect(WebhookSignature.header(id: "msg_1", timestamp: 11, body: [1, 2], secrets: [secret]) != reference)
        #expect(WebhookSignature.header(id: "msg_1", timestamp: 10, body: [1, 3], secrets: [secret]) != reference)
    }

    @Test(arguments: [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  // no prefix
        "whsec_",  // no key
        "whsec_not base64!!",
        "whsec_c2hvcnQ=",  // 5 bytes: too short
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ])
    func refusesMalformedSecrets(text: String) {
        #expect {
            try WebhookSecret(parsing: text)
        } throws: { error in
            guard let error = error as? WebhookSecretError else { return false }
            let keyPart = text.hasPrefix("whsec_") ? String(text.dropFirst(6)) : text
            return !error.message.isEmpty && (keyPart.isEmpty || !error.message.contains(keyPart))
        }
    }

    @Test func generatedSecretsRoundTrip() throws {
        let secret = WebhookSecret.generate()
        #expect(secret.encoded.hasPrefix("whsec_"))
        // 32 bytes are 44 base64 characters.
        #expect(secret.encoded.count == 6 + 44)
        #expect(try WebhookSecret(parsing: secret.encoded) == secret)
        #expect(WebhookSecret.generate() != secret)
    }

    @Test func parsedSecretEncodesBackToItsText() throws {
        #expect(try WebhookSecret(parsing: Self.vectorSecret).encoded == Self.vectorSecret)
    }

    @Test func descriptionIsRedacted() throws {
        let secret = try WebhookSecret(parsing: Self.vectorSecret)
        #expect(secret.description == "whsec_…")
        #expect(!"\(secret)".contains("MfKQ"))
    }
}
