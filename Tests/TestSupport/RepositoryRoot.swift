import Foundation

/// The repository's root directory (where Package.swift is), found from this
/// file's place in it: Tests/TestSupport/RepositoryRoot.swift. Tests use it to
/// reach scripts/, sql/ and openapi.yaml.
public let repositoryRoot = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // TestSupport
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()
