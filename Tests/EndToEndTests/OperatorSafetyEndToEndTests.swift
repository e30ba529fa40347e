import FakeKubeAPI
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// What a new operator runs into first: how fast the process stops, how a
    /// bad flag is reported, what the logs look like, and why Ingresses are
    /// not served.
    @Suite struct OperatorSafety {
        static func simpleProxy(settings: String = "", extraArguments: [String] = []) throws -> (PosternProcess, EchoBackend, ManifestFolder) {
            let backend = try EchoBackend(name: "a")
            let manifests = try ManifestFolder()
            try manifests.write("class.yaml", Manifests.ingressClass)
            try manifests.write("svc.yaml", Manifests.service("app", ports: [backend.port]))
            try manifests.write("ing.yaml", Manifests.ingress("app", rules: [("app.example.com", "/", "Prefix", "app")]))
            let postern = try PosternProcess(manifests: manifests, settings: settings, workers: 2, extraArguments: extraArguments)
            return (postern, backend, manifests)
        }

        /// Seconds until the server closes `connection` (recv returns 0), or nil after `timeout`.
        static func secondsUntilClosed(_ connection: RawConnection, timeout: Double) -> Double? {
            let start = Date()
            var poller = pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)
            while Date().timeIntervalSince(start) < timeout {
                if poll(&poller, 1, 10) > 0 {
                    var byte: UInt8 = 0
                    if recv(connection.fd, &byte, 1, Int32(MSG_PEEK)) <= 0 { return Date().timeIntervalSince(start) }
                }
            }
            return nil
        }

        /// SIGTERM with an idle keep-alive connection open and nothing in
        /// flight: the connection is closed and the process exits at once.
        static func expectPromptExit(_ child: ChildProcess, port: UInt16, host: String) throws -> (closed: Double?, exited: Double) {
            let idle = try RawConnection(port: port)
            try idle.send("GET / HTTP/1.1\r\nHost: \(host)\r\n\r\n")
            #expect(try idle.readResponse().status == 200)
            let signalled = Date()
            child.signal(SIGTERM)
            let closed = secondsUntilClosed(idle, timeout: 5)
            #expect(child.waitForExit(timeout: 10) == 0)
            return (closed, Date().timeIntervalSince(signalled))
        }

        @Test func sigtermWithNothingInFlightClosesIdleConnectionsAndExitsAtOnce() throws {
            let (postern, backend, manifests) = try Self.simpleProxy()
            defer { withExtendedLifetime((backend, manifests)) {} }
            let (closed, exited) = try Self.expectPromptExit(postern.child, port: postern.port, host: "app.example.com")
            print("manifest source: idle connection closed after \(closed ?? -1) s, exit after \(exited) s")
            // The drain timeout is 30 s: anything near a second means idle connections were waited for.
            #expect(closed.map { $0 < 0.5 } == true, "idle keep-alive connection closed after \(closed ?? -1) s")
            #expect(exited < 1, "exit \(exited) s after SIGTERM")
        }

        @Test func sigtermInClusterModeWithNothingInFlightExitsAtOnce() throws {
            let cluster = try Kubernetes.Cluster(startPostern: false)
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig, extraArguments: ["--leader-election-timing", "3,2,0.5"])
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
            // Leading: stopping also releases the Lease.
            #expect(secondsUntil(timeout: 10) { cluster.api.object(resource: "leases", namespace: "ingress-system", name: "postern-leader") != nil } != nil)
            let (closed, exited) = try Self.expectPromptExit(postern.child, port: postern.port, host: "a.example.com")
            print("API source: idle connection closed after \(closed ?? -1) s, exit after \(exited) s")
            #expect(closed.map { $0 < 0.5 } == true, "idle keep-alive connection closed after \(closed ?? -1) s")
            #expect(exited < 1, "exit \(exited) s after SIGTERM")
        }

        /// Bad values of every kind of flag: exit 2 and one line that names the flag.
        @Test(arguments: [
            (["--http-listen", "bogus"], "--http-listen"),
            (["--https-listen", "bogus"], "--https-listen"),
            (["--admin-listen", "bogus"], "--admin-listen"),
            (["--workers", "-1"], "--workers"),
            (["--workers", "abc"], "--workers"),
            (["--workers", "100000"], "--workers"),
            (["--drain-timeout", "1e9"], "--drain-timeout"),
            (["--shutdown-grace-period", "99999"], "--shutdown-grace-period"),
            (["--http-redirect-code", "200"], "--http-redirect-code"),
            (["--log-format", "xml"], "--log-format"),
            (["--default-backend-service", "fallback"], "--default-backend-service"),
            (["--default-ssl-certificate", "wildcard"], "--default-ssl-certificate"),
            (["--controller-class", "nginx"], "--controller-class"),
            (["--ingress-class", "Nginx Class"], "--ingress-class"),
            (["--no-such-flag"], "--no-such-flag"),
            (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig"),
            (["--in-cluster", "--watch-namespace", "Apps_1"], "--watch-namespace"),
            (["--in-cluster", "--election-id", "Leader!"], "--election-id"),
            (["--in-cluster", "--watch-timeout", "0"], "--watch-timeout"),
            (["--in-cluster", "--publish-service", "edge"], "--publish-service"),
        ])
        func badFlagValueExitsTwoWithOneLineNamingTheFlag(arguments: [String], flag: String) throws {
            let manifests = try ManifestFolder()
            let source = arguments.contains("--in-cluster") || arguments.contains("--kubeconfig") ? [] : ["--manifests", manifests.path]
            let result = try runCommand(Paths.product("postern"), ["run"] + source + arguments, timeout: 10)
            let lines = result.stderr.split(separator: "\n")
            #expect(result.status == 2, "exit \(result.status): \(result.stderr)")
            #expect(lines.count == 1, "\(result.stderr)")
            #expect(lines.first?.contains(flag) == true, "\(result.stderr)")
            #expect(lines.first?.hasPrefix("postern: ") == true, "\(result.stderr)")
        }

        @Test func checkRefusesBadClassFlagsToo() throws {
            let manifests = try ManifestFolder()
            let result = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path, "--controller-class", "nginx"])
            #expect(result.status == 2)
            #expect(result.stderr.contains("--controller-class nginx: expected a domain-prefixed path"))
        }

        @Test func jsonLogLinesHaveNumbersAsNumbersAndUnescapedSlashes() throws {
            let (postern, backend, manifests) = try Self.simpleProxy(extraArguments: ["--log-format", "json"])
            defer { withExtendedLifetime((backend, manifests)) {} }
            postern.child.signal(SIGTERM)
            #expect(postern.child.waitForExit(timeout: 10) == 0)
            let lines = postern.child.stderrText.split(separator: "\n").map(String.init)
            let serving = try #require(lines.first { $0.contains("\"msg\":\"serving\"") })
            let object = try #require(try JSONSerialization.jsonObject(with: Data(serving.utf8)) as? [String: Any])
            #expect(object["workers"] as? Int == 2, "\(serving)")
            #expect(object["routes"] as? Int == 1, "\(serving)")
            #expect(serving.contains("\"workers\":2"), "\(serving)")
            #expect(!serving.contains("\\/"), "escaped slash in \(serving)")
            #expect((object["manifests"] as? String)?.hasPrefix("/") == true)
            let draining = try #require(lines.first { $0.contains("\"msg\":\"draining\"") })
            #expect(draining.contains("\"timeout_seconds\":30"), "\(draining)")
        }

        @Test func configurationPublishedIsLoggedAfterTheErrorsOfTheSameChange() throws {
            let (postern, backend, manifests) = try Self.simpleProxy()
            defer { withExtendedLifetime((backend, manifests)) {} }
            // One change: a new host and an Ingress with an invalid path.
            try manifests.write(
                "more.yaml",
                Manifests.ingress("more", rules: [("more.example.com", "/", "Prefix", "app")])
                    + Manifests.ingress("broken", rules: [("broken.example.com", "nope", "Prefix", "app")]))
            #expect(secondsUntil(timeout: 10) { (try? HTTPClient.request(port: postern.port, path: "/", host: "more.example.com").status) == 200 } != nil)
            Thread.sleep(forTimeInterval: 0.5)
            let lines = postern.child.stderrText.split(separator: "\n").map(String.init)
            let error = try #require(lines.firstIndex { $0.contains("ERROR") && $0.contains("broken") }, "\(lines)")
            let published = try #require(lines.lastIndex { $0.contains("configuration published") }, "\(lines)")
            #expect(error < published, "published logged before the error of the same change: \(lines)")
        }

        @Test func missingDefaultCertificateSaysWhatToDo() throws {
            let (postern, backend, manifests) = try Self.simpleProxy(extraArguments: ["--default-ssl-certificate", "ingress/wildcard-tls"])
            defer { withExtendedLifetime((backend, manifests)) {} }
            #expect(secondsUntil(timeout: 5) { postern.child.stderrText.contains("kubectl create secret tls wildcard-tls") } != nil, "\(postern.child.stderrText)")
            #expect(postern.child.stderrText.contains("-n ingress"))
            #expect(!postern.child.stderrText.contains("no usable"))
        }

        @Test func ingressesOfAnotherClassAreCountedWithTheFlagThatWouldServeThem() throws {
            let (postern, backend, manifests) = try Self.simpleProxy()
            defer { withExtendedLifetime((backend, manifests)) {} }
            // The migration case: Ingresses still say nginx.
            let nginx = Manifests.ingress("legacy", rules: [("legacy.example.com", "/", "Prefix", "app")])
                .replacingOccurrences(of: "ingressClassName: postern", with: "ingressClassName: nginx")
            let unclassified = Manifests.ingress("plain", rules: [("plain.example.com", "/", "Prefix", "app")])
                .replacingOccurrences(of: "  ingressClassName: postern\n", with: "")
            try manifests.write("other.yaml", nginx + nginx.replacingOccurrences(of: "name: legacy", with: "name: legacy-2") + unclassified)
            let logged = secondsUntil(timeout: 10) { postern.child.stderrText.contains("3 Ingresses skipped for their class") }
            #expect(logged != nil, "\(postern.child.stderrText.suffix(2000))")
            #expect(postern.child.stderrText.contains("2 with ingressClassName \"nginx\" (to serve them: --ingress-class nginx"))
            #expect(postern.child.stderrText.contains("1 with no class (to serve them: --watch-ingress-without-class"))
            // check says the same, and its summary counts them.
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path])
            #expect(check.status == 0)
            #expect(check.stdout.contains("2 with ingressClassName \"nginx\" (to serve them: --ingress-class nginx"), "\(check.stdout)")
            #expect(check.stdout.contains("1 hosts"), "\(check.stdout)")
            #expect(check.stdout.contains("3 Ingresses skipped for their class"), "\(check.stdout)")
            // With the flag it names, they are served.
            let served = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path, "--ingress-class", "nginx"])
            #expect(served.stdout.contains("2 hosts"), "\(served.stdout)")
        }

        @Test func clusterIngressesOfAnotherClassAreReportedOnceListed() throws {
            let cluster = try Kubernetes.Cluster(startPostern: false)
            let nginx = KubeObjects.ingress("legacy", rules: [("legacy.example.com", "/", "svc-a")])
                .replacingOccurrences(of: #""ingressClassName":"postern""#, with: #""ingressClassName":"nginx""#)
            try cluster.api.apply(nginx)
            let postern = try KubePosternProcess(kubeconfig: cluster.kubeconfig)
            let logged = secondsUntil(timeout: 10) {
                postern.child.stderrText.contains("1 Ingress skipped for their class: 1 with ingressClassName \"nginx\" (to serve them: --ingress-class nginx")
            }
            #expect(logged != nil, "\(postern.child.stderrText.suffix(2000))")
            #expect(secondsUntil(timeout: 10) { postern.probe(host: "a.example.com").backend == "a" } != nil)
        }

        static let misspeltIngress = """
            apiVersion: networking.k8s.io/v1
            kind: Ingress
            metadata:
              name: typos
              namespace: default
              anotations:
                nginx.ingress.kubernetes.io/ssl-redirect: "false"
            spec:
              ingressClassName: postern
              rule:
                - host: lost.example.com
              rules:
                - host: typos.example.com
                  http:
                    paths:
                      - path: /
                        pathType: Prefix
                        backend:
                          service:
                            name: app
                            port: {number: 80, nmae: http}

            """

        @Test func unknownManifestFieldsAreWarningsWithTheirPath() throws {
            let (postern, backend, manifests) = try Self.simpleProxy()
            defer { withExtendedLifetime((backend, manifests)) {} }
            // The fixtures themselves are clean: no false alarms.
            let clean = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path])
            #expect(!clean.stdout.contains("unknown field"), "\(clean.stdout)")
            #expect(clean.stdout.contains("0 warnings"), "\(clean.stdout)")

            try manifests.write("typos.yaml", Self.misspeltIngress)
            let check = try runCommand(Paths.product("postern"), ["check", "--manifests", manifests.path])
            #expect(check.status == 0, "unknown fields are warnings, not errors: \(check.stdout)")
            for (path, line) in [("metadata.anotations", 6), ("spec.rule", 10), ("spec.rules[0].http.paths[0].backend.service.port.nmae", 21)] {
                #expect(check.stdout.contains("typos.yaml:\(line): Ingress default/typos: unknown field \"\(path)\""), "\(path): \(check.stdout)")
            }
            #expect(check.stdout.contains("3 warnings"), "\(check.stdout)")
            // run reports them too, with file, line and field path.
            let logged = secondsUntil(timeout: 10) { postern.child.stderrText.contains("unknown field \"spec.rule\" in Ingress default/typos") }
            #expect(logged != nil, "\(postern.child.stderrText.suffix(2000))")
            #expect(postern.child.stderrText.contains("field=metadata.anotations"))
            // The rest of the Ingress is served as written.
            #expect(secondsUntil(timeout: 5) { (try? HTTPClient.request(port: postern.port, path: "/", host: "typos.example.com").status) == 200 } != nil)
        }
    }
}
