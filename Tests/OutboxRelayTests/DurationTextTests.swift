import Testing

@testable import OutboxRelay

/// Durations as operators write them (`250ms`, `5s`, `5m`, `2h`, `7d`) and as they are printed.
@Suite struct DurationTextTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)), ("5s", .seconds(5)), ("5m", .seconds(300)), ("2h", .seconds(7_200)),
        ("7d", .seconds(604_800)), ("1.5s", .milliseconds(1_500)), ("0.5m", .seconds(30)), ("0s", .zero),
        ("5", .seconds(5)), ("0.25", .milliseconds(250)), (" 5s\t", .seconds(5)), ("0ms", .zero),
    ])
    func parses(_ text: String, _ expected: Duration) throws {
        #expect(try DurationText.parse(text) == expected)
    }

    @Test(arguments: ["", " ", "s", "ms", "5x", "5 s", "five seconds", "5sec", "nan", "infs", "1e400s", "5s5"])
    func refusesWhatIsNotADuration(_ text: String) {
        #expect(throws: DurationText.ParseError.self) { try DurationText.parse(text) }
    }

    @Test(arguments: ["-5s", "-1", "-0.5ms"])
    func refusesNegativeDurationsSayingSo(_ text: String) throws {
        let error = try #require(throws: DurationText.ParseError.self) { try DurationText.parse(text) }
        #expect(error.description.contains("negative"))
    }

    @Test func listsAreCommaSeparatedAndAnEmptyItemIsAnError() throws {
        #expect(try DurationText.parseList("5s, 1m,30m") == [.seconds(5), .seconds(60), .seconds(1_800)])
        #expect(try DurationText.parseList("  ") == [])
        #expect(throws: DurationText.ParseError.self) { try DurationText.parseList("5s,,1m") }
        #expect(throws: DurationText.ParseError.self) { try DurationText.parseList("5s,") }
    }

    @Test(arguments: [
        (Duration.milliseconds(250), "250ms"), (.seconds(5), "5s"), (.seconds(90), "90s"), (.seconds(300), "5m"),
        (.seconds(7_200), "2h"), (.seconds(604_800), "7d"), (.milliseconds(1_500), "1500ms"), (.zero, "0ms"),
    ])
    func formatsInTheShortestExactUnit(_ duration: Duration, _ expected: String) throws {
        #expect(DurationText.format(duration) == expected)
        #expect(try DurationText.parse(expected) == duration, "what is printed parses back")
    }
}
