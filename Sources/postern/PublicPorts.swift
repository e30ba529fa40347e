import FoundationEssentials
import Controller
import Kube
import Logging

/// The ports clients use (for the HTTPS redirect's `Location` and
/// `X-Forwarded-Port`) and where each came from. Precedence, per port: an
/// explicit setting (a flag, `postern.yaml` or the `--configmap` ConfigMap)
/// wins, then the port of the `--publish-service` Service whose
/// `targetPort` is that listener, then 80 / 443.
struct PublicPorts: Equatable {
    var http: Int
    var https: Int
    /// A flag, `FILE: key`, `ConfigMap NS/NAME: key`, `Service NS/NAME port P -> targetPort T`, or `default`.
    var httpSource: String
    var httpsSource: String

    /// The line `run` and `check` print after the ports themselves.
    var sourceLine: String { "public ports source: http \(httpSource), https \(httpsSource)" }

    /// The container port names the chart gives the listeners: a Service
    /// `targetPort` with one of these names targets that listener.
    static let httpPortName = "http"
    static let httpsPortName = "https"

    /// The public ports for `settings`. `publishService` is `--publish-service`
    /// (nil: the settings and defaults only); `readService` reads it (nil: it
    /// does not exist) and is called only when a port is not set explicitly.
    /// A Service that cannot be read, or has no port targeting a listener
    /// whose public port is needed, gives a warning naming it; that port
    /// keeps its default.
    static func resolve(
        settings: Settings, publishService: (namespace: String, name: String)?, readService: () throws -> Service?
    ) -> (ports: PublicPorts, warnings: [String]) {
        var ports = PublicPorts(
            http: settings.publicHTTPPort, https: settings.publicHTTPSPort,
            httpSource: settings.publicHTTPPortSource ?? "default", httpsSource: settings.publicHTTPSPortSource ?? "default")
        let httpsListening = settings.httpsListen != "off"
        let needsHTTP = settings.publicHTTPPortSource == nil
        let needsHTTPS = settings.publicHTTPSPortSource == nil && httpsListening
        guard let publishService, needsHTTP || needsHTTPS else { return (ports, []) }
        let reference = "\(publishService.namespace)/\(publishService.name)"
        let service: Service
        do {
            guard let found = try readService() else {
                return (ports, ["--publish-service \(reference): no such Service; public ports stay http \(ports.http), https \(ports.https)"])
            }
            service = found
        } catch {
            return (ports, ["--publish-service \(reference): cannot read the Service (\(error)); public ports stay http \(ports.http), https \(ports.https)"])
        }
        var warnings: [String] = []
        // (needed, listen address, port name, listener label, port, source) for HTTP then HTTPS.
        let listeners: [(Bool, String, String, String, WritableKeyPath<PublicPorts, Int>, WritableKeyPath<PublicPorts, String>)] = [
            (needsHTTP, settings.httpListen, httpPortName, "HTTP", \.http, \.httpSource),
            (needsHTTPS, settings.httpsListen, httpsPortName, "HTTPS", \.https, \.httpsSource),
        ]
        for (needed, address, name, label, port, source) in listeners where needed {
            let listener = listenPort(address)
            if let match = servicePort(in: service, targetingListenerPort: listener, named: name) {
                ports[keyPath: port] = match.port
                ports[keyPath: source] = sourceDescription(reference, match)
            } else {
                warnings.append(
                    "--publish-service \(reference): no port of the Service targets the \(label) listener (\(targetDescription(listener, name))); public \(name) port stays \(ports[keyPath: port])")
            }
        }
        return (ports, warnings)
    }

    /// The first TCP port of `service` whose `targetPort` is `listenerPort`
    /// (a number; an absent `targetPort` means the port itself) or `name`.
    /// A listener on port 0 (picked at bind) matches by name only.
    static func servicePort(in service: Service, targetingListenerPort listenerPort: Int?, named name: String) -> ServicePort? {
        service.spec.ports.first { candidate in
            guard (candidate.protocol ?? "TCP") == "TCP", (1...65535).contains(candidate.port) else { return false }
            switch candidate.targetPort {
            case let .int(target)?: return listenerPort.map { $0 != 0 && $0 == target } ?? false
            case let .string(target)?: return target == name
            case nil: return listenerPort.map { $0 != 0 && $0 == candidate.port } ?? false
            }
        }
    }

    /// The port of a `HOST:PORT` listen address.
    static func listenPort(_ address: String) -> Int? {
        address.split(separator: ":").last.flatMap { Int($0) }
    }

    /// "Service NS/NAME port 443 -> targetPort https".
    private static func sourceDescription(_ reference: String, _ port: ServicePort) -> String {
        "Service \(reference) port \(port.port) -> targetPort \(port.targetPort.map { "\($0)" } ?? String(port.port))"
    }

    private static func targetDescription(_ listener: Int?, _ name: String) -> String {
        if let listener, listener != 0 { return "targetPort \(listener) or \(name)" }
        return "targetPort \(name)"
    }
}

extension KubeAPIClient {
    /// Reads one Service (`GET /api/v1/namespaces/NS/services/NAME`) for
    /// the public ports; nil when it does not exist (404).
    func publishedService(namespace: String, name: String) throws -> Service? {
        let response = try send(method: "GET", path: WatchedKind.service.collectionPath(namespace: namespace) + "/" + name)
        if response.status == 404 { return nil }
        guard (200..<300).contains(response.status) else {
            throw KubeAPIError.status(code: response.status, reason: "", message: String(decoding: response.body.prefix(200), as: UTF8.self))
        }
        do {
            return try JSONDecoder().decode(Service.self, from: Data(response.body))
        } catch {
            throw KubeAPIError.malformed("Service \(namespace)/\(name): \(error)")
        }
    }
}

/// The Service named `namespace/name` among manifest objects (`--manifests` with `--publish-service`).
func manifestService(namespace: String, name: String, in objects: [KubeObject]) -> Service? {
    for object in objects {
        if case let .service(candidate) = object, candidate.metadata.namespace == namespace, candidate.metadata.name == name {
            return candidate
        }
    }
    return nil
}

extension Run {
    /// The public ports in effect (see `PublicPorts`), logged with their
    /// source; `--publish-service` is read once, from the API server or,
    /// with `--manifests`, from the directory.
    func resolvePublicPorts(settings: Settings, client: KubeAPIClient?, logger: Logger) -> PublicPorts {
        let reference = kubernetes.publishServiceReference
        let (ports, warnings) = PublicPorts.resolve(settings: settings, publishService: reference) {
            guard let reference else { return nil }
            if let client { return try client.publishedService(namespace: reference.namespace, name: reference.name) }
            guard let directory = settings.manifests else { return nil }
            return manifestService(namespace: reference.namespace, name: reference.name, in: ManifestDirectory(path: directory).load().objects)
        }
        for warning in warnings { logger.warning("\(warning)") }
        logger.info(
            "public ports",
            metadata: [
                "http": .stringConvertible(ports.http), "http_source": "\(ports.httpSource)",
                "https": .stringConvertible(ports.https), "https_source": "\(ports.httpsSource)",
            ])
        return ports
    }
}
