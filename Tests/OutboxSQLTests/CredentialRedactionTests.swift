import OutboxSQL
import Testing

/// Connection errors and target descriptions never show the password.
@Suite struct CredentialRedactionTests {
    static let password = "s3cretpw"

    /// Everything a caller could print or log about an error.
    static func allText(of error: PostgresError) -> String {
        [error.description, String(reflecting: error), error.message, error.detail ?? "", error.hint ?? ""]
            .joined(separator: "\n")
    }

    @Test(arguments: [
        "postgresql://user:s3cretpw@127.0.0.1:1/db",
        "postgres://user:s3cretpw@127.0.0.1:1/db?connect_timeout=5",
        "host=127.0.0.1 port=1 user=user password=s3cretpw dbname=db",
    ])
    func failedConnectionDoesNotShowThePassword(conninfo: String) throws {
        let target = try ConnectionTarget(conninfo)
        #expect(!target.description.contains(Self.password))
        #expect(target.description.contains("127.0.0.1"))

        let error = try #require(throws: PostgresError.self) { try Connection(target) }
        #expect(error.code == .connectionFailed)
        let text = Self.allText(of: error)
        #expect(!text.contains(Self.password), "\(text)")
        // Still useful: it says where it tried to go.
        #expect(text.contains("127.0.0.1") && text.contains("port=1"), "\(text)")
    }

    @Test func descriptionShowsWhereButNotThePassword() throws {
        let target = try ConnectionTarget("postgresql://alice:s3cretpw@db.example.com:6543/orders")
        #expect(target.description == "host=db.example.com port=6543 dbname=orders user=alice")
    }

    @Test(arguments: [
        "postgresql://user:s3cretpw@[::1/db",  // unterminated IPv6 address
        "postgresql://user:s3cretpw@127.0.0.1/db?nosuchoption=s3cretpw",
        "host=127.0.0.1 password='s3cretpw",  // unterminated quote
        "host=127.0.0.1 password=s3cretpw nosuchoption=1",
        "host=127.0.0.1 s3cretpw",
    ])
    func malformedConnectionStringsAreRefusedWithoutEchoingThem(conninfo: String) {
        let error = #expect(throws: PostgresError.self) { try ConnectionTarget(conninfo) }
        #expect(error?.code == .connectionFailed)
        if let error {
            #expect(!Self.allText(of: error).contains(Self.password), "\(error)")
            #expect(error.message.hasPrefix("invalid database URL"))
        }
    }

    @Test func valuesRejectedAtConnectTimeAreNotEchoed() throws {
        // libpq accepts the syntax and refuses the value when connecting, quoting it.
        let target = try ConnectionTarget("postgresql://user:s3cretpw@127.0.0.1:1/db?sslmode=s3cretpw")
        let error = try #require(throws: PostgresError.self) { try Connection(target) }
        #expect(!Self.allText(of: error).contains(Self.password), "\(error)")
    }
}
