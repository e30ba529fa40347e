import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEndTests {
    /// HTTP/2 frames that cost the proxy work without carrying a request
    /// (CVE-2019-9512, -9515, -9518 style floods) are counted; a flooding
    /// client gets GOAWAY ENHANCE_YOUR_CALM and is closed while others are
    /// served, and a busy but honest client is never cut.
    @Suite struct Flood {
        final class Fixture: @unchecked Sendable {
            let backend: EchoBackend
            let manifests: ManifestFolder
            let postern: PosternProcess

            init() throws {
                backend = try EchoBackend(name: "flood")
                manifests = try ManifestFolder()
                try manifests.write("class.yaml", Manifests.ingressClass)
                try manifests.write(
                    "app.yaml", Manifests.service("app", ports: [backend.port]) + Manifests.ingress("any", rules: [(nil, "/", "Prefix", "app")]))
                // One worker: the flood and the honest client share its loop.
                postern = try PosternProcess(manifests: manifests, workers: 1)
            }

            /// An ordinary HTTP/2 request through the proxy: its status code.
            func honestRequestStatus() throws -> String {
                try runCommand(
                    "/usr/bin/curl", ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(postern.port)/ok"],
                    timeout: 20
                ).stdout
            }
        }

        /// One kind of flood frame, and what to send before it.
        enum Kind: String, CaseIterable, CustomTestStringConvertible {
            case windowUpdateOnConnection, windowUpdateOnOpenStream, priority, unknownFrameType, emptyData
            var testDescription: String { rawValue }

            /// Opens stream 1 with a download larger than the stream window, so
            /// it stays open while the flood runs.
            var opening: [UInt8] {
                switch self {
                case .windowUpdateOnOpenStream, .emptyData:
                    return H2Wire.frame(H2Wire.headers, flags: H2Wire.endHeaders | (self == .emptyData ? 0 : H2Wire.endStream), stream: 1,
                        H2Wire.get(self == .emptyData ? "/sink" : "/bytes/10000000"))
                default:
                    return []
                }
            }

            var frame: [UInt8] {
                switch self {
                case .windowUpdateOnConnection: return H2Wire.windowUpdate(stream: 0, increment: 1)
                case .windowUpdateOnOpenStream: return H2Wire.windowUpdate(stream: 1, increment: 1)
                // Stream 3 depends on stream 0, weight 16 (RFC 9113 §6.3; deprecated, still legal).
                case .priority: return H2Wire.frame(H2Wire.priority, stream: 3, [0, 0, 0, 0, 15])
                // RFC 9113 §5.5: unknown types are ignored, which is work without a response.
                case .unknownFrameType: return H2Wire.frame(0xfa, stream: 0, [1, 2, 3, 4, 5, 6, 7, 8])
                case .emptyData: return H2Wire.frame(H2Wire.data, stream: 1)
                }
            }
        }

        @Test(arguments: Kind.allCases)
        func floodGetsGoAwayEnhanceYourCalmAndIsClosedWhileOthersAreServed(kind: Kind) throws {
            let fixture = try Fixture()
            let client = try RawHTTP2Client(port: fixture.postern.port)
            #expect(client.send(H2Wire.start + H2Wire.frame(H2Wire.settings, flags: H2Wire.ack) + kind.opening))
            client.poll(milliseconds: 200)
            let batch = Array([[UInt8]](repeating: kind.frame, count: 100).joined())
            let started = Date()
            var sent = 0
            // Bounded: at most 50,000 frames or 10 seconds, whichever comes first.
            while sent < 50_000, Date().timeIntervalSince(started) < 10, client.goAwayCode == nil, !client.closedByPeer {
                guard client.send(batch) else { break }
                sent += 100
                client.poll()
            }
            client.poll(milliseconds: 100)
            #expect(client.goAwayCode == enhanceYourCalm, "\(kind): \(sent) frames sent, no GOAWAY ENHANCE_YOUR_CALM")
            #expect(client.waitForClose(seconds: 3), "\(kind): the flooding connection stayed open")
            // The budget is per second: the cut comes within the first one or two.
            #expect(Date().timeIntervalSince(started) < 5, "\(kind): cut only after \(Date().timeIntervalSince(started)) s")
            #expect(try fixture.honestRequestStatus() == "200")
            #expect(try fixture.postern.metric("postern_http2_flood_closes_total{reason=\"control_frames\"}") == 1)
        }

        @Test func clientAcknowledgingEveryDataFrameTwiceIsNeverCut() throws {
            // Like Go's early HTTP/2 client: a WINDOW_UPDATE for the stream and
            // one for the connection after every DATA frame, far more than
            // 200 per second while downloading fast.
            let fixture = try Fixture()
            let client = try RawHTTP2Client(port: fixture.postern.port)
            let size = 24 * 1024 * 1024
            #expect(client.send(
                H2Wire.start + H2Wire.frame(H2Wire.settings, flags: H2Wire.ack)
                    + H2Wire.frame(H2Wire.headers, flags: H2Wire.endHeaders | H2Wire.endStream, stream: 1, H2Wire.get("/bytes/\(size)"))))
            var received = 0
            var dataFrames = 0
            var ended = false
            let started = Date()
            while !ended, !client.closedByPeer, Date().timeIntervalSince(started) < 60 {
                client.poll(milliseconds: 100)
                var acknowledgements: [UInt8] = []
                for frame in client.takeFrames() {
                    if frame.type == H2Wire.goAway { Issue.record("GOAWAY \(frame.goAwayCode ?? 0) after \(received) bytes") }
                    guard frame.type == H2Wire.data, frame.stream == 1 else { continue }
                    received += frame.payload.count
                    dataFrames += 1
                    if frame.flags & H2Wire.endStream != 0 { ended = true }
                    if !frame.payload.isEmpty {
                        acknowledgements += H2Wire.windowUpdate(stream: 1, increment: UInt32(frame.payload.count))
                        acknowledgements += H2Wire.windowUpdate(stream: 0, increment: UInt32(frame.payload.count))
                    }
                }
                if !acknowledgements.isEmpty { client.send(acknowledgements) }
            }
            #expect(ended && received == size, "received \(received) of \(size) bytes in \(dataFrames) DATA frames")
            #expect(dataFrames > 1_000, "the test must send more WINDOW_UPDATEs than the control-frame budget")
            #expect(try fixture.postern.metric("postern_http2_flood_closes_total{reason=\"control_frames\"}") == 0)
        }
    }
}
