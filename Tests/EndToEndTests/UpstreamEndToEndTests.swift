import Foundation
import Testing

extension EndToEndTests {
    @Suite struct Upstream {
        @Test func reusesUpstreamConnectionsAcrossRequests() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            for index in 0..<60 {
                try connection.send("GET /req/\(index) HTTP/1.1\r\nHost: a.example.com\r\n\r\n")
                #expect(try connection.readResponse().status == 200)
            }
            for _ in 0..<20 {
                #expect(try fixture.get("/", host: "a.example.com").status == 200)
            }
            let stats = try fixture.backendA.stats()
            #expect(stats.requests >= 80)
            // Two workers, each with its own pool: a handful of connections, not 80.
            #expect(stats.connections <= 6, "backend saw \(stats.connections) connections for \(stats.requests) requests")
            #expect(try fixture.postern.metric("postern_upstream_connection_reuses_total") ?? 0 >= 70)
        }

        @Test func servesPipelinedRequestsInOrder() throws {
            let fixture = try ProxyFixture()
            let connection = try RawConnection(port: fixture.postern.port)
            var batch = ""
            for index in 0..<10 { batch += "GET /p/\(index) HTTP/1.1\r\nHost: a.example.com\r\n\r\n" }
            try connection.send(batch)
            for index in 0..<10 {
                let response = try connection.readResponse()
                #expect(try response.json()["path"] as? String == "/p/\(index)")
            }
        }

        @Test func serviceWithoutReadyEndpointsAnswers503() throws {
            let fixture = try ProxyFixture()
            let response = try fixture.get("/", host: "empty.example.com")
            #expect(response.status == 503)
            #expect(response.bodyText.contains("no ready endpoints"))
        }

        @Test func refusedConnectAnswers502() throws {
            let fixture = try ProxyFixture()
            let response = try fixture.get("/", host: "refused.example.com")
            #expect(response.status == 502)
            #expect(response.bodyText.contains("upstream connection failed"))
            #expect(try fixture.postern.metric("postern_upstream_errors_total{kind=\"connect_refused\"}") ?? 0 >= 1)
        }

        @Test func malformedUpstreamResponseAnswers502() throws {
            let fixture = try ProxyFixture()
            let response = try fixture.get("/malformed", host: "a.example.com")
            #expect(response.status == 502)
            #expect(response.bodyText.contains("malformed response"))
        }

        @Test func upstreamResetBeforeAnsweringGives502() throws {
            let fixture = try ProxyFixture()
            #expect(try fixture.get("/reset", host: "a.example.com").status == 502)
            // The proxy keeps serving afterwards.
            #expect(try fixture.get("/", host: "a.example.com").status == 200)
        }

        @Test func slowUpstreamAnswers504AfterReadTimeout() throws {
            let fixture = try ProxyFixture(settings: "proxy-read-timeout: 1\n")
            let started = Date()
            let response = try fixture.get("/sleep/4000", host: "a.example.com")
            #expect(response.status == 504)
            #expect(response.bodyText.contains("did not answer in time"))
            #expect(Date().timeIntervalSince(started) < 3.5)
            #expect(try fixture.postern.metric("postern_upstream_errors_total{kind=\"read_timeout\"}") == 1)
        }

        @Test func roundRobinKeepsRotatingAcrossConfigurationChanges() throws {
            let one = try EchoBackend(name: "one")
            let two = try EchoBackend(name: "two")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "pair.yaml",
                Manifests.service("pair", ports: [one.port, two.port])
                    + Manifests.ingress("pair", rules: [("pair.example.com", "/", "Prefix", "pair")]))
            let postern = try PosternProcess(manifests: manifests, workers: 1)
            // One request per configuration change, each change adding a
            // cluster: the pair's endpoints must still alternate.
            var answered: [String] = []
            for round in 0..<6 {
                let before = try postern.metric("postern_routing_table_generation") ?? 0
                try manifests.write(
                    "extra-\(round).yaml",
                    Manifests.service("extra-\(round)", ports: [one.port])
                        + Manifests.ingress("extra-\(round)", rules: [("extra-\(round).example.com", "/", "Prefix", "extra-\(round)")]))
                let deadline = Date().addingTimeInterval(10)
                while try (postern.metric("postern_routing_table_generation") ?? 0) <= before, Date() < deadline {
                    usleep(20_000)
                }
                let response = try HTTPClient.request(port: postern.port, path: "/", host: "pair.example.com")
                answered.append(try response.json()["name"] as? String ?? "?")
            }
            #expect(answered.filter { $0 == "one" }.count == 3, "\(answered)")
            #expect(answered.filter { $0 == "two" }.count == 3, "\(answered)")
        }

        @Test func failedConnectIsRetriedOnAnotherEndpoint() throws {
            let backend = try EchoBackend(name: "only")
            let refused = try ProxyFixture.closedPort()
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write(
                "app.yaml",
                Manifests.service("mixed", ports: [refused, backend.port])
                    + Manifests.ingress("mixed", rules: [("mixed.example.com", "/", "Prefix", "mixed")]))
            let postern = try PosternProcess(manifests: manifests, workers: 1)
            for _ in 0..<6 {
                let response = try HTTPClient.request(port: postern.port, path: "/", host: "mixed.example.com")
                #expect(response.status == 200)
            }
            #expect(try postern.metric("postern_upstream_retries_total") ?? 0 >= 1)
        }
    }
}
