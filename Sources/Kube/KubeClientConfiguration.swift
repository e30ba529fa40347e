import FoundationEssentials
import Support
import YAML

/// A start-up configuration problem (unreadable kubeconfig, missing
/// context...), one line naming the setting.
public struct KubeConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// How the client reaches and authenticates to the API server.
public struct KubeClientConfiguration: Sendable {
    /// `https` or `http`.
    public var scheme: String
    /// Host name or numeric address (IPv6 without brackets).
    public var host: String
    public var port: UInt16
    /// Trusted CAs (PEM); nil with verification means the system trust store.
    public var certificateAuthorityPEM: [UInt8]?
    /// Client certificate chain and key (PEM) for mutual TLS.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?
    /// `insecure-skip-tls-verify`.
    public var insecureSkipTLSVerify: Bool
    /// A fixed bearer token.
    public var token: String?
    /// A bearer token file, re-read when it changes (service-account tokens rotate).
    public var tokenFile: String?
    /// The namespace of the current context or the service account (for the Lease and Events).
    public var namespace: String

    /// Creates a configuration directly (tests, tools).
    public init(
        scheme: String, host: String, port: UInt16, certificateAuthorityPEM: [UInt8]? = nil,
        clientCertificatePEM: [UInt8]? = nil, clientKeyPEM: [UInt8]? = nil, insecureSkipTLSVerify: Bool = false,
        token: String? = nil, tokenFile: String? = nil, namespace: String = "default"
    ) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.clientCertificatePEM = clientCertificatePEM
        self.clientKeyPEM = clientKeyPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.token = token
        self.tokenFile = tokenFile
        self.namespace = namespace
    }

    /// `scheme://host:port`, for logs.
    public var serverDescription: String {
        "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    /// Parses `https://host:port` (port defaults to 443 / 80).
    static func parseServer(_ text: String) throws -> (scheme: String, host: String, port: UInt16) {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = url.host, !host.isEmpty
        else { throw KubeConfigurationError("server \"\(text)\": expected https://HOST[:PORT]") }
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        guard (1...65535).contains(port) else { throw KubeConfigurationError("server \"\(text)\": port out of range") }
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        return (scheme, bare, UInt16(port))
    }

    // MARK: In-cluster

    /// The service-account directory mounted into every Pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In-cluster configuration: `KUBERNETES_SERVICE_HOST`/`_PORT`, the
    /// service-account token (re-read as it rotates), CA and namespace.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory: String = serviceAccountDirectory
    ) throws -> KubeClientConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let portText = environment["KUBERNETES_SERVICE_PORT"], let port = UInt16(portText)
        else {
            throw KubeConfigurationError(
                "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a Pod? use --kubeconfig)")
        }
        let tokenFile = serviceAccountDirectory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenFile) else {
            throw KubeConfigurationError("in-cluster: cannot read the service-account token \(tokenFile)")
        }
        guard let ca = FileManager.default.contents(atPath: serviceAccountDirectory + "/ca.crt") else {
            throw KubeConfigurationError("in-cluster: cannot read the service-account CA \(serviceAccountDirectory)/ca.crt")
        }
        let namespace = (try? String(contentsOfFile: serviceAccountDirectory + "/namespace", encoding: .utf8))?
            .trimmingWhitespace()
        return KubeClientConfiguration(
            scheme: "https", host: host, port: port, certificateAuthorityPEM: Array(ca), tokenFile: tokenFile,
            namespace: namespace.flatMap { $0.isEmpty ? nil : $0 } ?? "default")
    }

    // MARK: kubeconfig

    /// Reads a kubeconfig file: the current context (or `context`), its
    /// cluster and user. Relative file paths are relative to the file.
    public static func kubeconfig(path: String, context requestedContext: String? = nil) throws -> KubeClientConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeConfigurationError("--kubeconfig \(path): cannot read the file")
        }
        let root: Any?
        do {
            root = try YAMLParser().document(String(decoding: data, as: UTF8.self)).map(untyped)
        } catch {
            throw KubeConfigurationError("--kubeconfig \(path): not YAML: \(error)")
        }
        guard let document = root as? [String: Any] else { throw KubeConfigurationError("--kubeconfig \(path): not a mapping") }
        let base = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        func named(_ list: String, _ name: String, _ field: String) throws -> [String: Any] {
            let entries = document[list] as? [[String: Any]] ?? []
            guard let entry = entries.first(where: { $0["name"] as? String == name }) else {
                throw KubeConfigurationError("--kubeconfig \(path): no \(list) entry named \"\(name)\"")
            }
            return entry[field] as? [String: Any] ?? [:]
        }
        guard let contextName = requestedContext ?? (document["current-context"] as? String), !contextName.isEmpty else {
            throw KubeConfigurationError("--kubeconfig \(path): no current-context (use --context)")
        }
        let context = try named("contexts", contextName, "context")
        guard let clusterName = context["cluster"] as? String else {
            throw KubeConfigurationError("--kubeconfig \(path): context \"\(contextName)\" names no cluster")
        }
        let cluster = try named("clusters", clusterName, "cluster")
        let user = try (context["user"] as? String).map { try named("users", $0, "user") } ?? [:]
        guard let server = cluster["server"] as? String else {
            throw KubeConfigurationError("--kubeconfig \(path): cluster \"\(clusterName)\" has no server")
        }
        let (scheme, host, port) = try parseServer(server)

        func pem(_ fileKey: String, _ dataKey: String, in section: [String: Any]) throws -> [UInt8]? {
            if let encoded = section[dataKey] as? String {
                guard let decoded = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) else {
                    throw KubeConfigurationError("--kubeconfig \(path): \(dataKey) is not base64")
                }
                return Array(decoded)
            }
            if let file = section[fileKey] as? String {
                let resolved = file.hasPrefix("/") ? file : base + file
                guard let contents = FileManager.default.contents(atPath: resolved) else {
                    throw KubeConfigurationError("--kubeconfig \(path): \(fileKey) \(resolved): cannot read the file")
                }
                return Array(contents)
            }
            return nil
        }
        var configuration = KubeClientConfiguration(scheme: scheme, host: host, port: port)
        configuration.certificateAuthorityPEM = try pem("certificate-authority", "certificate-authority-data", in: cluster)
        configuration.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"] as? Bool ?? false
        configuration.clientCertificatePEM = try pem("client-certificate", "client-certificate-data", in: user)
        configuration.clientKeyPEM = try pem("client-key", "client-key-data", in: user)
        if (configuration.clientCertificatePEM == nil) != (configuration.clientKeyPEM == nil) {
            throw KubeConfigurationError("--kubeconfig \(path): client-certificate and client-key must be given together")
        }
        configuration.token = user["token"] as? String
        if let file = user["tokenFile"] as? String {
            configuration.tokenFile = file.hasPrefix("/") ? file : base + file
        }
        if user["exec"] != nil || user["auth-provider"] != nil {
            throw KubeConfigurationError(
                "--kubeconfig \(path): user uses exec or auth-provider credentials, which Postern does not run; use a token, tokenFile or client certificate")
        }
        if let namespace = context["namespace"] as? String, !namespace.isEmpty { configuration.namespace = namespace }
        return configuration
    }

    /// A kubeconfig node as the dictionaries, arrays, strings and booleans the
    /// reader above expects (plain `true`/`false` are booleans; null values
    /// are left out, so they read as absent).
    private static func untyped(_ node: YAMLNode) -> Any {
        switch node {
        case let .scalar(scalar):
            if scalar.isTypable, let value = YAMLScalarText.boolean(scalar.string) { return value }
            return scalar.string
        case let .sequence(sequence):
            return sequence.map(untyped)
        case let .mapping(mapping):
            var result: [String: Any] = [:]
            for (key, value) in mapping where !value.isNull {
                if let key = key.string { result[key] = untyped(value) }
            }
            return result
        }
    }
}
