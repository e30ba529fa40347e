import Foundation
import Testing

/// The image is defined twice: the Containerfile (for container builders)
/// and scripts/build-image (offline, what `make image` and `make
/// image-test` build and test). Both must build the same thing, and the
/// chart must run it as the user it was made for. Building the image itself
/// is `make image-test` (a static release build: too slow for every test run).
@Suite struct ImageDefinitionTests {
    static func text(_ relative: String) throws -> String {
        try String(contentsOf: ChartTests.root.appendingPathComponent(relative), encoding: .utf8)
    }

    @Test func containerfileAndBuildImageBuildTheSameBinaryAndRootFileSystem() throws {
        let containerfile = try Self.text("Containerfile")
        let script = try Self.text("scripts/build-image")
        let build = "build -c release --static-swift-stdlib --product postern --build-path .build-image"
        #expect(containerfile.contains("swift " + build))
        #expect(script.contains("${SWIFT:-swift} " + build))
        #expect(containerfile.contains("scripts/image-rootfs .build-image/release/postern /rootfs"))
        #expect(script.contains("scripts/image-rootfs \"$binary\""))
        // The runtime stage adds nothing but that root file system.
        let runtime = try #require(containerfile.components(separatedBy: "FROM scratch").last)
        let instructions = runtime.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(instructions.filter { $0.hasPrefix("COPY") } == ["COPY --from=build /rootfs/ /"])
        #expect(!runtime.contains("RUN "), "the runtime stage has no shell to run anything")
    }

    @Test func imageUserEntrypointAndPortsAgreeWithTheChart() throws {
        let containerfile = try Self.text("Containerfile")
        let script = try Self.text("scripts/build-image")
        let rootfs = try Self.text("scripts/image-rootfs")
        #expect(containerfile.contains("USER 65532:65532"))
        #expect(script.contains("--user 65532:65532"))
        #expect(rootfs.contains("nonroot:x:65532:65532:"))
        #expect(containerfile.contains(#"ENTRYPOINT ["/usr/local/bin/postern"]"#))
        #expect(script.contains("--entrypoint /usr/local/bin/postern"))
        // The chart runs the image as that user, with its arguments after the entrypoint.
        let rendered = try Helm.render("{}")
        #expect(rendered.podSpec[path: "securityContext", "runAsUser"] as? Int == 65532)
        #expect(rendered.podSpec[path: "securityContext", "runAsGroup"] as? Int == 65532)
        #expect(rendered.container["command"] == nil)
        #expect(rendered.arguments.first == "run")
        let ports = (rendered.container["ports"] as? [[String: Any]] ?? []).compactMap { $0["containerPort"] as? Int }
        for port in ports {
            #expect(containerfile.contains("EXPOSE") && containerfile.contains("\(port)"), "Containerfile does not expose \(port)")
            #expect(script.contains("--port \(port)/tcp"), "build-image does not expose \(port)")
        }
    }
}
