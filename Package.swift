// swift-tools-version:6.0
import PackageDescription

/// This manifest's directory (linker flags need absolute paths).
let packageDirectory = String(#filePath.dropLast("/Package.swift".count))

/// Hot-path targets skip dynamic exclusivity checks: measured to halve the
/// instructions per proxied request. `-Ounchecked` is never used (it would
/// drop `precondition` checks).
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"]),
]

/// Release links of `postern` use the toolchain's lld with packed relative
/// relocations (DT_RELR, glibc 2.36+: Debian bookworm and the image): the
/// position-independent binary's 44,000 relocations shrink from 1 MB of
/// `.rela.dyn`, which the loader reads whole at every start, to 9 KB;
/// measured 0.7 MB less idle RSS (bench/RESULTS.md). The functions that run
/// from start until idle go first in `.text` (Sources/postern/startup-order.txt,
/// made by bench/startup-order): idle RSS is mostly the binary's text, mapped in
/// 64 KB fault-around windows wherever start-up code runs, and together that
/// code fills fewer of them (2.9 MB less idle RSS). Debug links keep the default linker.
let releaseLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-Xlinker", "--symbol-ordering-file=\(packageDirectory)/Sources/postern/startup-order.txt",
            "-Xlinker", "--no-warn-symbol-ordering",
        ], .when(configuration: .release)),
]

let package = Package(
    name: "Postern",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "postern", targets: ["postern"]),
        .executable(name: "postern-echo", targets: ["postern-echo"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // C: macros and symbols Swift cannot import (epoll, accept4, eventfd, memmem).
        .target(name: "CPosternShim"),
        // C++: RE2 (linear-time regular expressions) behind a C interface; libre2-dev.
        .target(name: "CRE2", linkerSettings: [.linkedLibrary("re2")]),
        .target(name: "RegexEngine", dependencies: ["CRE2"], swiftSettings: hotPathSettings),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CNGHTTP2", pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]),
        .systemLibrary(
            name: "CYAML", pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]),

        // Bottom layer: no dependencies on other Postern targets.
        .target(name: "RouteModel"),
        // YAML over libyaml: node trees with marks and a Codable decoder, without
        // Foundation (Yams needs it, and Foundation's ICU costs ~15 MB of idle RSS).
        .target(name: "YAML", dependencies: ["CYAML"]),
        // Threads, locks, conditions, JSON objects and text helpers for the
        // control-plane targets: what they took from Foundation proper.
        .target(name: "Support", dependencies: ["CPosternShim"]),
        .target(name: "HTTP1", swiftSettings: hotPathSettings),
        .target(name: "HTTP2", dependencies: ["CNGHTTP2"], swiftSettings: hotPathSettings),
        .target(
            name: "Reactor", dependencies: ["CPosternShim"],
            swiftSettings: hotPathSettings),
        .target(
            name: "TLS", dependencies: ["COpenSSL"],
            swiftSettings: hotPathSettings),
        .target(
            name: "Telemetry",
            dependencies: [.product(name: "Logging", package: "swift-log")]),

        .target(name: "Routing", dependencies: ["RouteModel", "RegexEngine"], swiftSettings: hotPathSettings),
        .target(
            name: "Kube",
            dependencies: ["HTTP1", "TLS", "Reactor", "YAML", "Support"]),
        .target(name: "Translate", dependencies: ["Kube", "RouteModel", "RegexEngine"]),
        .target(
            name: "Controller",
            dependencies: [
                "Kube", "Translate", "Routing", "RouteModel", "Telemetry", "YAML", "Support",
            ]),
        .target(
            name: "Proxy",
            dependencies: ["Routing", "RouteModel", "HTTP1", "HTTP2", "TLS", "Reactor", "Telemetry"],
            swiftSettings: hotPathSettings),

        .executableTarget(
            name: "postern",
            dependencies: [
                "Controller", "Kube", "Proxy", "Telemetry", "Reactor", "Routing", "TLS", "YAML", "Support",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["startup-order.txt"],
            linkerSettings: releaseLinkerSettings),
        .executableTarget(
            name: "postern-echo",
            dependencies: [
                "Reactor", "HTTP1",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hotPathSettings),

        // Test support: a strict fake Kubernetes API server on loopback.
        .target(name: "FakeKubeAPI", dependencies: ["Reactor", "TLS"]),

        .executableTarget(
            name: "controller-bench", dependencies: ["FakeKubeAPI", "Reactor"], path: "bench/controller"),

        // Test support: seeded pseudo-random numbers for tests and benchmarks.
        .target(name: "SeededRandom"),

        .executableTarget(
            name: "routing-bench", dependencies: ["Routing", "Translate", "Kube", "RouteModel", "SeededRandom"], path: "bench/routing",
            swiftSettings: hotPathSettings),

        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"]),
        .testTarget(name: "HTTP2Tests", dependencies: ["HTTP2", "SeededRandom"]),
        .testTarget(name: "RoutingTests", dependencies: ["Routing", "RouteModel", "SeededRandom", .product(name: "PropertyBased", package: "swift-property-based")]),
        .testTarget(name: "TranslateTests", dependencies: ["Translate", "Kube", "RouteModel", "Controller", "Routing", "SeededRandom"]),
        .testTarget(name: "ReactorTests", dependencies: ["Reactor"]),
        .testTarget(name: "TelemetryTests", dependencies: ["Telemetry"]),
        .testTarget(name: "SystemLibraryTests", dependencies: ["COpenSSL", "CNGHTTP2"]),
        .testTarget(name: "TLSTests", dependencies: ["TLS"]),
        .testTarget(name: "ProxyTests", dependencies: ["Proxy", "Routing", "RouteModel", "TLS", "Telemetry", "SeededRandom"]),
        .testTarget(name: "EndToEndTests", dependencies: ["postern", "postern-echo", "FakeKubeAPI"]),
        .testTarget(name: "KubeTests", dependencies: ["Kube", "FakeKubeAPI"]),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "Kube", "FakeKubeAPI", "Routing", "RouteModel", "Translate"]),
        .testTarget(name: "LayeringTests", dependencies: []),
        .testTarget(name: "YAMLTests", dependencies: ["YAML"]),
        .testTarget(
            name: "DeploymentTests",
            dependencies: ["postern", "FakeKubeAPI", .product(name: "Yams", package: "Yams")]),
    ],
    swiftLanguageModes: [.v5]
)
