import Crypto
import Foundation

/// Why a webhook secret was refused. The message never contains the secret.
public struct WebhookSecretError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// A Standard Webhooks signing secret, written `whsec_<base64 key>`.
public struct WebhookSecret: Sendable, Equatable, CustomStringConvertible {
    /// The Standard Webhooks specification asks for keys of 24 to 64 bytes.
    static let keyLengths = 24...64
    static let prefix = "whsec_"

    let key: SigningKey

    /// Parses `whsec_<base64>`; anything else is refused with a message that does not echo the text.
    public init(parsing text: String) throws {
        guard text.hasPrefix(Self.prefix) else {
            throw WebhookSecretError(message: "webhook secret must start with \"whsec_\" followed by a base64 key")
        }
        let encodedKey = text.dropFirst(Self.prefix.count)
        guard let keyBytes = Data(base64Encoded: String(encodedKey)) else {
            throw WebhookSecretError(message: "webhook secret after \"whsec_\" is not valid base64")
        }
        guard Self.keyLengths.contains(keyBytes.count) else {
            throw WebhookSecretError(
                message: "webhook secret key is \(keyBytes.count) bytes; it must be \(Self.keyLengths.lowerBound) to \(Self.keyLengths.upperBound) bytes"
            )
        }
        self.key = SigningKey(SymmetricKey(data: keyBytes))
    }

    init(keyBytes: [UInt8]) {
        self.key = SigningKey(SymmetricKey(data: keyBytes))
    }

    /// A new secret of 32 random bytes.
    public static func generate() -> WebhookSecret {
        var generator = SystemRandomNumberGenerator()
        let keyBytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return WebhookSecret(keyBytes: keyBytes)
    }

    /// `whsec_<base64 key>`, for storing or handing to the receiver. Never log it.
    public var encoded: String {
        Self.prefix + key.symmetric.withUnsafeBytes { Data($0).base64EncodedString() }
    }

    /// Redacted, so a secret printed by accident shows nothing of the key.
    public var description: String { "whsec_…" }

    public static func == (lhs: WebhookSecret, rhs: WebhookSecret) -> Bool {
        // SymmetricKey's own equality compares in constant time.
        lhs.key.symmetric == rhs.key.symmetric
    }
}

/// A key as swift-crypto holds it, and an HMAC already keyed with it: keying hashes two
/// blocks and costs as much as signing a small request, so it is done once per secret.
///
/// `@unchecked Sendable`: `SymmetricKey` and `HMAC` are not marked Sendable on every platform,
/// but both are values never written after creation; a signer copies `keyed` (copy on write),
/// so sharing them is safe.
struct SigningKey: @unchecked Sendable {
    let symmetric: SymmetricKey
    let keyed: HMAC<SHA256>

    init(_ symmetric: SymmetricKey) {
        self.symmetric = symmetric
        self.keyed = HMAC<SHA256>(key: symmetric)
    }
}

/// Signs deliveries as the Standard Webhooks specification (and Svix) define it.
public enum WebhookSignature {
    /// The value of the `webhook-signature` header: `v1,<base64>` per secret, space-separated, in the given order.
    /// The signed content is `<id>.<timestamp>.<body>`.
    public static func header(id: String, timestamp: Int64, body: [UInt8], secrets: [WebhookSecret]) -> String {
        // One contiguous message: each update of swift-crypto's generic HMAC has a fixed cost.
        var content = [UInt8]()
        content.reserveCapacity(id.utf8.count + 22 + body.count)
        content += id.utf8
        content.append(UInt8(ascii: "."))
        appendDecimalDigits(of: timestamp, to: &content)
        content.append(UInt8(ascii: "."))
        content += body
        // "v1," + 44 base64 characters per secret, plus the separating spaces.
        var header = [UInt8]()
        header.reserveCapacity(secrets.count * 48)
        for (position, secret) in secrets.enumerated() {
            if position > 0 { header.append(UInt8(ascii: " ")) }
            var mac = secret.key.keyed
            content.withUnsafeBytes { mac.update(data: $0) }
            header.append(contentsOf: versionPrefix)
            appendBase64(of: mac.finalize(), to: &header)
        }
        return String(decoding: header, as: UTF8.self)
    }

    private static let versionPrefix: [UInt8] = Array("v1,".utf8)
    private static let base64Alphabet: [UInt8] = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8
    )

    /// Appends the decimal text of `value`.
    private static func appendDecimalDigits(of value: Int64, to output: inout [UInt8]) {
        if value < 0 { output.append(UInt8(ascii: "-")) }
        let start = output.count
        var magnitude = value.magnitude
        repeat {
            output.append(UInt8(ascii: "0") + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        output[start...].reverse()
    }

    /// Standard base64 with padding, appended in place.
    private static func appendBase64(of bytes: some ContiguousBytes, to output: inout [UInt8]) {
        bytes.withUnsafeBytes { input in
            var index = 0
            while index + 3 <= input.count {
                let chunk = UInt32(input[index]) << 16 | UInt32(input[index + 1]) << 8 | UInt32(input[index + 2])
                output.append(base64Alphabet[Int(chunk >> 18 & 0x3F)])
                output.append(base64Alphabet[Int(chunk >> 12 & 0x3F)])
                output.append(base64Alphabet[Int(chunk >> 6 & 0x3F)])
                output.append(base64Alphabet[Int(chunk & 0x3F)])
                index += 3
            }
            let remaining = input.count - index
            if remaining > 0 {
                let first = UInt32(input[index]) << 16
                let second = remaining == 2 ? UInt32(input[index + 1]) << 8 : 0
                let chunk = first | second
                output.append(base64Alphabet[Int(chunk >> 18 & 0x3F)])
                output.append(base64Alphabet[Int(chunk >> 12 & 0x3F)])
                output.append(remaining == 2 ? base64Alphabet[Int(chunk >> 6 & 0x3F)] : UInt8(ascii: "="))
                output.append(UInt8(ascii: "="))
            }
        }
    }
}
