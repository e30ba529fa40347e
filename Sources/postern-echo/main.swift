import ArgumentParser
import Glibc
import Reactor

/// `postern-echo`: a small, fast HTTP/1.1 backend for tests, benchmarks and
/// the example configuration. See `EchoConnection` for the endpoints.
struct EchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "postern-echo",
        abstract: "HTTP/1.1 echo backend for Postern's tests and benchmarks.",
        discussion: """
            Endpoints: any path echoes the request as JSON; GET /bytes/N and /chunked/N send N bytes; \
            /status/CODE, /sleep/MS, /close, /reset, /malformed, /stats, POST /sink.
            Prints `listening on HOST:PORT` once ready (port 0 picks a free port).
            """)

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free port).")
    var listen: String = "127.0.0.1:9001"

    @Option(help: "Name reported in every echo response (tells backends apart).")
    var name: String = "echo"

    @Option(help: "Number of event-loop threads (each with its own SO_REUSEPORT listener).")
    var workers: Int = 1

    func validate() throws {
        guard SocketAddress(parsing: listen) != nil else {
            throw ValidationError("--listen: '\(listen)' is not HOST:PORT with a numeric IP address")
        }
        guard workers >= 1 && workers <= 256 else {
            throw ValidationError("--workers: must be between 1 and 256, got \(workers)")
        }
    }

    func run() throws {
        guard let requested = SocketAddress(parsing: listen) else {
            throw ValidationError("--listen: '\(listen)' is not HOST:PORT")
        }
        Socket.ignoreSIGPIPE()
        // Blocked before any thread starts so that only the main thread's sigwait sees them.
        WorkerThread.blockTerminationSignals()

        // The first listener fixes the port (port 0 resolves here); the others
        // join it through SO_REUSEPORT.
        let firstFD: CInt
        do {
            firstFD = try Socket.listen(at: requested, reusePort: true)
        } catch {
            throw ValidationError("--listen: cannot listen on \(requested): \(error)")
        }
        let bound = Socket.localAddress(firstFD) ?? requested
        var listenFDs = [firstFD]
        for _ in 1..<workers {
            listenFDs.append(try Socket.listen(at: bound, reusePort: true))
        }

        let counters = EchoCounters(workers: workers)
        var threads: [pthread_t] = []
        for (index, fd) in listenFDs.enumerated() {
            let worker = try EchoWorker(
                index: index, listenFD: fd, serverName: name, counters: counters)
            threads.append(try WorkerThread.start(name: "echo-\(index)") { worker.run() })
        }

        print("listening on \(bound)")
        fflush(stdout)
        _ = WorkerThread.waitForSignal()
        // Test backend: no draining, the process simply ends.
        Glibc.exit(0)
    }
}

EchoCommand.main()
