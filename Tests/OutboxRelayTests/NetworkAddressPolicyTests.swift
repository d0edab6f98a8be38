import Testing

@testable import OutboxRelay

/// The SSRF guard's address classes (SPEC §6).
@Suite struct NetworkAddressPolicyTests {
    static let guarded = NetworkAddressPolicy(allowPrivateNetworks: false)

    @Test(arguments: [
        "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.170",
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe", "2001:db8::1",
    ])
    func internalAddressesAreRefused(_ text: String) throws {
        let address = try #require(NetworkAddress(text))
        let refusal = try #require(Self.guarded.refusal(for: address))
        #expect(refusal.contains("OUTBOX_ALLOW_PRIVATE_NETWORKS"))
    }

    @Test(arguments: ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::6810:85e5", "::ffff:8.8.8.8"])
    func publicAddressesAreAllowed(_ text: String) throws {
        #expect(Self.guarded.refusal(for: try #require(NetworkAddress(text))) == nil)
    }

    @Test func allowingPrivateNetworksAllowsEverything() throws {
        let open = NetworkAddressPolicy(allowPrivateNetworks: true)
        #expect(open.refusal(for: try #require(NetworkAddress("127.0.0.1"))) == nil)
        #expect(open.refusal(for: try #require(NetworkAddress("169.254.169.254"))) == nil)
    }

    @Test func addressesPrintAsText() throws {
        #expect(try #require(NetworkAddress("10.0.0.1")).description == "10.0.0.1")
        #expect(try #require(NetworkAddress("fe80::1")).description == "fe80::1")
        #expect(NetworkAddress("not an address") == nil)
    }
}
