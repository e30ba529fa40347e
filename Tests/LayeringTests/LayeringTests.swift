import Foundation
import Testing

/// DESIGN.md's layer table as data: which Postern targets each target may
/// depend on. Dependencies point down; the proxy never sees Kubernetes code
/// and the controller never sees proxy code.
enum LayerRules {
    static let allowed: [String: Set<String>] = [
        "postern": ["Controller", "Proxy", "Kube", "Translate", "Routing", "RouteModel", "HTTP1", "HTTP2", "TLS", "Reactor", "Telemetry", "YAML", "Support"],
        "postern-echo": ["Reactor", "HTTP1"],
        "routing-bench": ["Routing", "Translate", "Kube", "RouteModel", "RegexEngine", "SeededRandom"],
        "http1-bench": ["HTTP1"],
        "Controller": ["Kube", "Translate", "Routing", "RouteModel", "Telemetry", "YAML", "Support"],
        "Proxy": ["Routing", "RouteModel", "HTTP1", "HTTP2", "TLS", "Reactor", "Telemetry"],
        "Kube": ["HTTP1", "TLS", "Reactor", "YAML", "Support"],
        "FakeKubeAPI": ["Reactor", "TLS"],
        "controller-bench": ["FakeKubeAPI", "Reactor"],
        "SeededRandom": [],
        "Translate": ["Kube", "RouteModel", "RegexEngine"],
        "Routing": ["RouteModel", "RegexEngine"],
        "RegexEngine": ["CRE2"],
        "RouteModel": [],
        "HTTP1": [],
        "HTTP2": ["CNGHTTP2"],
        "TLS": ["COpenSSL", "CPosternShim"],
        "Reactor": ["CPosternShim"],
        "Telemetry": [],
        "YAML": ["CYAML"],
        "Support": ["CPosternShim"],
        "CYAML": [],
        "CPosternShim": [],
        "CRE2": [],
        "COpenSSL": [],
        "CNGHTTP2": [],
    ]

    /// Targets on the per-request data path: no Foundation there.
    static let foundationFree: Set<String> = ["HTTP1", "HTTP2", "Routing", "RouteModel", "RegexEngine", "Reactor", "Proxy", "TLS"]

    /// The executable whose every linked target stays off Foundation proper:
    /// Foundation brings ICU, about 15 MB of idle RSS (issue 16).
    static let foundationFreeExecutable = "postern"

    /// Packages that import Foundation themselves, so the executable may not link them.
    static let foundationPackages: Set<String> = ["Yams"]

    /// Modules any target may import besides its declared dependencies.
    static let platformModules: Set<String> = ["Glibc", "Foundation", "Synchronization", "Dispatch", "Testing"]

    /// One target as `swift package describe` reports it, plus the modules its sources import.
    struct Target {
        var name: String
        var type: String
        var dependencies: [String]
        var imports: Set<String>
        /// Products of other packages it uses (`Yams`, `Logging`...).
        var products: [String] = []
    }

    /// Every edge that breaks the table, as readable lines.
    static func violations(_ targets: [Target]) -> [String] {
        let ours = Set(targets.map(\.name))
        var problems: [String] = []
        for target in targets where target.type != "test" {
            guard let permitted = allowed[target.name] else {
                problems.append("\(target.name): not in DESIGN.md's layer table; add it there and here")
                continue
            }
            for dependency in target.dependencies where ours.contains(dependency) && !permitted.contains(dependency) {
                problems.append("\(target.name) depends on \(dependency), which its layer may not use")
            }
            for module in target.imports where ours.contains(module) && !permitted.contains(module) {
                problems.append("\(target.name) imports \(module), which its layer may not use")
            }
            if foundationFree.contains(target.name), target.imports.contains("Foundation") {
                problems.append("\(target.name) imports Foundation on the data path")
            }
        }
        problems += foundationInExecutable(targets)
        return problems.sorted()
    }

    /// Targets linked into `postern` (its dependencies, transitively) that
    /// import Foundation or use a package that does.
    static func foundationInExecutable(_ targets: [Target]) -> [String] {
        let byName = Dictionary(targets.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var linked: Set<String> = []
        var pending = [foundationFreeExecutable]
        while let name = pending.popLast() {
            guard let target = byName[name], linked.insert(name).inserted else { continue }
            pending += target.dependencies
        }
        var problems: [String] = []
        for name in linked.sorted() {
            guard let target = byName[name] else { continue }
            if target.imports.contains("Foundation") {
                problems.append("\(name) imports Foundation and is linked into \(foundationFreeExecutable); use FoundationEssentials")
            }
            for product in target.products where foundationPackages.contains(product) {
                problems.append("\(name) uses \(product), which imports Foundation, and is linked into \(foundationFreeExecutable)")
            }
        }
        return problems
    }

    /// Reads the package with `swift package describe --type json` and scans imports.
    static func describePackage(root: URL) throws -> [Target] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // A scratch path of its own: `swift test` holds the lock on `.build`.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("postern-describe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        process.arguments = ["swift", "package", "--scratch-path", scratch.path, "describe", "--type", "json"]
        process.currentDirectoryURL = root
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let targets = json["targets"] as? [[String: Any]]
        else { throw DescribeError() }
        return targets.map { entry in
            let name = entry["name"] as? String ?? ""
            let path = root.appendingPathComponent(entry["path"] as? String ?? "")
            return Target(
                name: name, type: entry["type"] as? String ?? "",
                dependencies: entry["target_dependencies"] as? [String] ?? [],
                imports: importedModules(under: path),
                products: entry["product_dependencies"] as? [String] ?? [])
        }
    }

    struct DescribeError: Error {}

    /// Module names in `import` lines of the Swift files below `folder`.
    static func importedModules(under folder: URL) -> Set<String> {
        var modules: Set<String> = []
        guard let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return modules }
        for case let file as URL in files where file.pathExtension == "swift" {
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") {
                var words = line.split(separator: " ")
                while let first = words.first, first.hasPrefix("@") { words.removeFirst() }
                if ["public", "internal", "package"].contains(words.first ?? "") { words.removeFirst() }
                guard words.count >= 2, words[0] == "import" else { continue }
                let kinds: Set<Substring> = ["struct", "class", "enum", "func", "protocol", "typealias", "var", "let"]
                let module = kinds.contains(words[1]) && words.count >= 3 ? words[2] : words[1]
                modules.insert(String(module.split(separator: ".").first ?? module))
            }
        }
        return modules
    }
}

/// The line inside `Proxy` around TLS: the transport owns the session, the
/// want-read/want-write dance and the "OpenSSL holds bytes" rule; every
/// connection type (HTTP/1.1 and HTTP/2, client and upstream side) only
/// calls it. The request pipeline and the published secure policy name TLS
/// types for the certificate store (host contexts, client-certificate
/// settings): that is configuration, not a session, so they may import TLS
/// but not touch a session's I/O either.
enum TransportRules {
    /// `Sources/Proxy` files that may `import TLS`.
    static let tlsImporters: Set<String> = ["TransportSocket.swift", "RequestPipeline.swift", "SecurePolicy.swift"]
    /// The file of the transport, the only one that may use `sessionWords`.
    static let transport = "TransportSocket.swift"
    /// A TLS session and its I/O outcomes: named in the transport only.
    static let sessionWords = [
        "TLSConnection", "TLSIOResult", "TLSClientContext", ".wantRead", ".wantWrite", "hasPendingInput", "pendingBytes",
        "endReadAhead", "tuneForMultiplexing", "SSL_",
    ]

    /// A connection's byte I/O on its descriptor: the transport's too (the
    /// admin endpoint, plain HTTP outside the data path, keeps its own).
    static let socketWords = ["Socket.read(", "Socket.write(", "Socket.peek(", "Socket.receive(", "Socket.shutdownWrite(", "Socket.pendingError(", "Splice.move("]
    static let ownSocketIO: Set<String> = [transport, "AdminServer.swift"]

    /// Time arithmetic and clock reads: the transport owns the deadline (it
    /// stamps progress and says when the armed timeout passed), so a
    /// connection never keeps a timestamp or subtracts one.
    static let clockWords = ["loop.now", "now &-", "now -", "now +", "now &+", "now >", "now <"]
    /// Files that keep time themselves: the transport; the worker (drain
    /// deadline, accept pause, log rate), the admin endpoint (its own
    /// sockets) and the server (process drain), none of them a connection.
    static let clockOwners: Set<String> = [transport, "Worker.swift", "AdminServer.swift", "ProxyServer.swift"]

    /// Every crossing of the line, as readable lines; `files` are (name, text)
    /// of `Sources/Proxy`. Comment lines are skipped (they may explain the rule).
    static func violations(_ files: [(name: String, text: String)]) -> [String] {
        var problems: [String] = []
        for (name, text) in files {
            for line in text.split(separator: "\n") {
                let code = line.drop { $0 == " " }
                if code.hasPrefix("//") { continue }
                if code.hasPrefix("import TLS"), !tlsImporters.contains(name) {
                    problems.append("\(name) imports TLS; only the transport and the pipeline's certificate checks may")
                }
                if !ownSocketIO.contains(name) {
                    for word in socketWords where code.contains(word) {
                        problems.append("\(name) uses \(word), which belongs to the transport")
                    }
                }
                if !clockOwners.contains(name) {
                    for word in clockWords where code.contains(word) {
                        problems.append("\(name) computes time (\(word)); the transport owns the deadline")
                    }
                }
                guard name != transport else { continue }
                for word in sessionWords where code.contains(word) {
                    problems.append("\(name) uses \(word), which belongs to the transport")
                }
            }
        }
        return problems.sorted()
    }

    /// The Swift files of `Sources/Proxy` as (name, text).
    static func proxySources(root: URL) -> [(name: String, text: String)] {
        let folder = root.appendingPathComponent("Sources/Proxy")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { $0.hasSuffix(".swift") }.sorted().compactMap { name in
            guard let text = try? String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8) else { return nil }
            return (name, text)
        }
    }
}

@Suite struct LayeringTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func packageDependenciesPointDownTheLayerTable() throws {
        let targets = try LayerRules.describePackage(root: Self.packageRoot)
        #expect(targets.contains { $0.name == "Proxy" } && targets.contains { $0.name == "Controller" })
        #expect(LayerRules.violations(targets) == [])
    }

    @Test func anUpwardEdgeIsReported() {
        let targets = [
            LayerRules.Target(name: "Proxy", type: "library", dependencies: ["Routing", "Kube"], imports: ["Routing"]),
            LayerRules.Target(name: "Routing", type: "library", dependencies: ["RouteModel"], imports: ["Translate", "Foundation"]),
            LayerRules.Target(name: "Kube", type: "library", dependencies: [], imports: []),
            LayerRules.Target(name: "Translate", type: "library", dependencies: [], imports: []),
            LayerRules.Target(name: "RouteModel", type: "library", dependencies: [], imports: []),
        ]
        #expect(
            LayerRules.violations(targets) == [
                "Proxy depends on Kube, which its layer may not use",
                "Routing imports Foundation on the data path",
                "Routing imports Translate, which its layer may not use",
            ])
    }

    @Test func foundationLinkedIntoTheExecutableIsReported() {
        let targets = [
            LayerRules.Target(name: "postern", type: "executable", dependencies: ["Controller"], imports: ["Controller"]),
            LayerRules.Target(name: "Controller", type: "library", dependencies: ["Kube"], imports: ["FoundationEssentials"]),
            LayerRules.Target(name: "Kube", type: "library", dependencies: [], imports: ["Foundation"], products: ["Yams"]),
            LayerRules.Target(name: "FakeKubeAPI", type: "library", dependencies: [], imports: ["Foundation"]),
        ]
        #expect(
            LayerRules.foundationInExecutable(targets) == [
                "Kube imports Foundation and is linked into postern; use FoundationEssentials",
                "Kube uses Yams, which imports Foundation, and is linked into postern",
            ])
    }

    @Test func aTargetMissingFromTheTableIsReported() {
        let targets = [LayerRules.Target(name: "Shortcut", type: "library", dependencies: [], imports: [])]
        #expect(LayerRules.violations(targets).first?.hasPrefix("Shortcut: not in DESIGN.md") == true)
    }

    @Test func onlyTheTransportHandlesTLSSessionsInTheProxy() {
        let files = TransportRules.proxySources(root: Self.packageRoot)
        #expect(files.contains { $0.name == TransportRules.transport })
        #expect(files.contains { $0.name == "HTTP1ClientConnection.swift" })
        #expect(TransportRules.violations(files) == [])
    }

    @Test func aConnectionThatKeepsItsOwnTimeIsReported() {
        let files: [(name: String, text: String)] = [
            ("HTTP1ClientConnection.swift", "        idleSince = worker.loop.now\n        if now &- idleSince >= keepAlive { close() }\n"),
            ("HTTP1UpstreamConnection.swift", "    // deadline = now + timeout is the transport's business\n        deadline = now + timeout\n"),
            ("TransportSocket.swift", "        guard now &- start(of: clock) >= limit else { return nil }\n"),
            ("Worker.swift", "            phase = .draining(deadline: loop.now + timeoutMilliseconds)\n"),
        ]
        #expect(
            TransportRules.violations(files) == [
                "HTTP1ClientConnection.swift computes time (loop.now); the transport owns the deadline",
                "HTTP1ClientConnection.swift computes time (now &-); the transport owns the deadline",
                "HTTP1UpstreamConnection.swift computes time (now +); the transport owns the deadline",
            ])
    }

    @Test func aConnectionThatReachesIntoTLSIsReported() {
        let files: [(name: String, text: String)] = [
            ("HTTP2ClientConnection.swift", "import Glibc\nimport TLS\n    // OpenSSL's wantRead is explained here\n    if tls.hasPendingInput { read() }\n"),
            ("HTTP1UpstreamConnection.swift", "    switch Socket.read(fd, into: readBuffer) {\n"),
            ("AdminServer.swift", "    switch Socket.read(fd, into: input) {\n"),
            ("RequestPipeline.swift", "import TLS\nlet context: TLSServerContext? = nil\n"),
            ("TransportSocket.swift", "import TLS\ncase .wantWrite: readWantsWrite = true\n"),
        ]
        #expect(
            TransportRules.violations(files) == [
                "HTTP1UpstreamConnection.swift uses Socket.read(, which belongs to the transport",
                "HTTP2ClientConnection.swift imports TLS; only the transport and the pipeline's certificate checks may",
                "HTTP2ClientConnection.swift uses hasPendingInput, which belongs to the transport",
            ])
    }
}
