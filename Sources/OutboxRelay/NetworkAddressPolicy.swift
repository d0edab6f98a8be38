import Foundation

/// The SSRF guard of SPEC §6: which resolved addresses a webhook may connect to.
///
/// Checked by libcurl's open-socket callback on the address it is about to
/// connect to, i.e. after DNS resolution, so a name that re-resolves to an
/// internal address (DNS rebinding) is refused too.
public struct NetworkAddressPolicy: Sendable {
    /// `OUTBOX_ALLOW_PRIVATE_NETWORKS`: allow everything (local tests, internal endpoints).
    public var allowPrivateNetworks: Bool

    public init(allowPrivateNetworks: Bool) {
        self.allowPrivateNetworks = allowPrivateNetworks
    }

    /// Why connecting to `address` is refused, or nil when it is allowed.
    public func refusal(for address: NetworkAddress) -> String? {
        guard !allowPrivateNetworks, let kind = address.restrictedKind else { return nil }
        return "refused to connect to \(address) (\(kind)); set OUTBOX_ALLOW_PRIVATE_NETWORKS=true to allow private networks"
    }
}

/// An IPv4 or IPv6 address as raw bytes.
public enum NetworkAddress: Sendable, Equatable, CustomStringConvertible {
    case v4([UInt8])
    case v6([UInt8])

    /// Parses dotted IPv4 or IPv6 text.
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
        } else {
            return nil
        }
    }

    /// Reads a `sockaddr_in` / `sockaddr_in6`; nil for other families.
    init?(sockaddr pointer: UnsafeRawPointer, family: Int32) {
        switch family {
        case AF_INET:
            var address = pointer.loadUnaligned(as: sockaddr_in.self).sin_addr
            self = .v4(withUnsafeBytes(of: &address) { Array($0) })
        case AF_INET6:
            var address = pointer.loadUnaligned(as: sockaddr_in6.self).sin6_addr
            self = .v6(withUnsafeBytes(of: &address) { Array($0) })
        default:
            return nil
        }
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch self {
        case .v4(let bytes): _ = bytes.withUnsafeBytes { inet_ntop(AF_INET, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        case .v6(let bytes): _ = bytes.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// What makes the address internal, or nil for a public unicast address.
    var restrictedKind: String? {
        switch self {
        case .v4(let b):
            switch (b[0], b[1]) {
            case (0, _): return "\"this\" network"
            case (10, _), (172, 16...31), (192, 168): return "private network"
            case (100, 64...127): return "carrier-grade NAT"
            case (127, _): return "loopback"
            case (169, 254): return "link-local / cloud metadata"
            case (192, 0) where b[2] == 0: return "IETF protocol assignments"
            case (198, 18...19): return "benchmarking network"
            case (224...239, _): return "multicast"
            case (240...255, _): return "reserved"
            default: return nil
            }
        case .v6(let b):
            if b[0..<15].allSatisfy({ $0 == 0 }) { return b[15] == 1 ? "loopback" : "unspecified" }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                return NetworkAddress.v4(Array(b[12..<16])).restrictedKind.map { "IPv4-mapped \($0)" }
            }
            if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy({ $0 == 0 }) {
                return NetworkAddress.v4(Array(b[12..<16])).restrictedKind.map { "NAT64 \($0)" }
            }
            if b[0] & 0xFE == 0xFC { return "unique-local" }
            if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "link-local" }
            if b[0] == 0xFF { return "multicast" }
            if b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0D && b[3] == 0xB8 { return "documentation" }
            return nil
        }
    }
}
