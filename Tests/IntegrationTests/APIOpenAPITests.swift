import Foundation
import Testing
import TestSupport

/// `openapi.yaml` is a valid OpenAPI 3.1 document, and the running server answers
/// as it says (schemathesis, bounded: a few examples per operation).
@Suite("Admin API: OpenAPI document")
struct APIOpenAPITests {
    static let document = RelayBinary.packageRoot.appendingPathComponent("openapi.yaml").path

    @Test("openapi.yaml is a valid OpenAPI 3.1 document describing every endpoint")
    func validDocument() async throws {
        let result = try await ToolRun.run(["python3",
            "-c",
            """
            import sys
            from openapi_spec_validator import validate
            from openapi_spec_validator.readers import read_from_filename
            spec, _ = read_from_filename(sys.argv[1])
            validate(spec)
            assert spec["openapi"].startswith("3.1"), spec["openapi"]
            for path in sorted(spec["paths"]):
                for method in sorted(spec["paths"][path]):
                    if method != "parameters":
                        print(method.upper(), path)
            """,
            Self.document,
        ], timeout: .seconds(60))
        #expect(result.status == 0, "\(result.output)")
        let operations = Set(result.output.split(separator: "\n").map(String.init))
        #expect(operations == [
            "GET /api/v1/subscriptions", "POST /api/v1/subscriptions",
            "GET /api/v1/subscriptions/{name}", "PATCH /api/v1/subscriptions/{name}", "DELETE /api/v1/subscriptions/{name}",
            "POST /api/v1/subscriptions/{name}/rotate-secret",
            "GET /api/v1/deliveries", "GET /api/v1/deliveries/{id}", "POST /api/v1/deliveries/{id}/replay",
            "POST /api/v1/dead-letters/replay", "POST /api/v1/dead-letters/purge", "POST /api/v1/events", "GET /api/v1/stats",
            "GET /api/v1/token",
        ])
    }

    @Test("the server's answers conform to openapi.yaml (schemathesis)", .timeLimit(.minutes(5)))
    func conformance() async throws {
        try await APITestServer.running { server in
            try APIStatsTests.seed(server)
            let result = try await ToolRun.run(["st",
                "run", Self.document,
                "--url", "http://127.0.0.1:\(server.port)",
                "--header", "Authorization: Bearer \(server.adminToken)",
                "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases", "examples,coverage,fuzzing",
                "--max-examples", "20",
                "--max-time", "60",
                "--workers", "1",
                "--seed", "1",
                "--no-color",
            ], in: FileManager.default.temporaryDirectory,  // schemathesis keeps a cache (.schemathesis/) there, not in the tree
               environment: ["NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"], timeout: .seconds(240))
            #expect(result.status == 0, "schemathesis found problems:\n\(result.output.suffix(8000))")
        }
    }
}
