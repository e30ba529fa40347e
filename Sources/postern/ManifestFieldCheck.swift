import FoundationEssentials
import YAML

/// Unknown fields in manifest files (`metadata.anotations`, `spec.rule`),
/// reported with their path as `kubectl apply --validate=strict` would: the
/// decoder ignores them, so a misspelt field would otherwise silently do
/// nothing. Only the kinds Postern reads are checked, against the fields of
/// their Kubernetes v1 schema.
enum ManifestFieldCheck {
    /// The known fields of one level.
    indirect enum Schema {
        /// A scalar, or a value whose inside is not checked (status, free-form).
        case any
        /// A mapping with these fields.
        case object([String: Schema])
        /// A list of elements of this schema.
        case list(Schema)
    }

    /// One unknown field: where and which.
    struct UnknownField: Hashable, CustomStringConvertible {
        var file: String
        var line: Int
        var object: String
        var path: String
        var description: String { "\(file):\(line): \(object): unknown field \"\(path)\" (ignored)" }
    }

    static let metadata = Schema.object([
        "name": .any, "namespace": .any, "labels": .any, "annotations": .any, "generateName": .any, "uid": .any,
        "resourceVersion": .any, "generation": .any, "creationTimestamp": .any, "deletionTimestamp": .any,
        "deletionGracePeriodSeconds": .any, "finalizers": .any, "ownerReferences": .any, "managedFields": .any, "selfLink": .any,
    ])

    static let ingressBackend = Schema.object([
        "service": .object(["name": .any, "port": .object(["name": .any, "number": .any])]),
        "resource": .object(["apiGroup": .any, "kind": .any, "name": .any]),
    ])

    static let portEntry = Schema.object(["name": .any, "port": .any, "protocol": .any, "appProtocol": .any])

    /// Top-level fields by kind.
    static let kinds: [String: [String: Schema]] = [
        "Ingress": [
            "spec": .object([
                "ingressClassName": .any, "defaultBackend": ingressBackend,
                "tls": .list(.object(["hosts": .any, "secretName": .any])),
                "rules": .list(.object([
                    "host": .any,
                    "http": .object(["paths": .list(.object(["path": .any, "pathType": .any, "backend": ingressBackend]))]),
                ])),
            ]),
            "status": .any,
        ],
        "IngressClass": [
            "spec": .object([
                "controller": .any,
                "parameters": .object(["apiGroup": .any, "kind": .any, "name": .any, "namespace": .any, "scope": .any]),
            ]),
        ],
        "Service": [
            "spec": .object([
                "allocateLoadBalancerNodePorts": .any, "clusterIP": .any, "clusterIPs": .any, "externalIPs": .any,
                "externalName": .any, "externalTrafficPolicy": .any, "healthCheckNodePort": .any, "internalTrafficPolicy": .any,
                "ipFamilies": .any, "ipFamilyPolicy": .any, "loadBalancerClass": .any, "loadBalancerIP": .any,
                "loadBalancerSourceRanges": .any, "publishNotReadyAddresses": .any, "selector": .any, "sessionAffinity": .any,
                "sessionAffinityConfig": .any, "trafficDistribution": .any, "type": .any,
                "ports": .list(.object([
                    "name": .any, "port": .any, "targetPort": .any, "nodePort": .any, "protocol": .any, "appProtocol": .any,
                ])),
            ]),
            "status": .any,
        ],
        "EndpointSlice": [
            "addressType": .any,
            "endpoints": .list(.object([
                "addresses": .any, "conditions": .object(["ready": .any, "serving": .any, "terminating": .any]),
                "deprecatedTopology": .any, "hints": .any, "hostname": .any, "nodeName": .any, "targetRef": .any, "zone": .any,
            ])),
            "ports": .list(portEntry),
        ],
        "Endpoints": [
            "subsets": .list(.object([
                "addresses": .list(.object(["ip": .any, "hostname": .any, "nodeName": .any, "targetRef": .any])),
                "notReadyAddresses": .list(.object(["ip": .any, "hostname": .any, "nodeName": .any, "targetRef": .any])),
                "ports": .list(portEntry),
            ])),
        ],
        "Secret": ["data": .any, "stringData": .any, "type": .any, "immutable": .any],
    ]

    /// The unknown fields of every `*.yaml`/`*.yml` file in `directory`
    /// (the files `run` and `check` load). Files that are not YAML are left
    /// to the loader, which reports them.
    static func check(directory: String) -> [UnknownField] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) }
            .sorted()
        var result: [UnknownField] = []
        for name in names {
            let path = directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            result += check(yaml: String(decoding: data, as: UTF8.self), file: path)
        }
        return result
    }

    /// The unknown fields of one multi-document YAML text.
    static func check(yaml: String, file: String) -> [UnknownField] {
        var result: [UnknownField] = []
        // A file that is not YAML is the manifest parser's to report.
        do {
            try YAMLParser().forEachDocument(yaml) { checkObject($0, file: file, into: &result) }
        } catch {
            return []
        }
        return result
    }

    private static func checkObject(_ node: YAMLNode, file: String, into result: inout [UnknownField]) {
        guard case .mapping = node, let kind = node["kind"]?.string else { return }
        if kind == "List", case let .sequence(items)? = node["items"] {
            for item in items { checkObject(item, file: file, into: &result) }
            return
        }
        guard let fields = kinds[kind] else { return }
        let name = node["metadata"]?["name"]?.string ?? "?"
        let namespace = node["metadata"]?["namespace"]?.string
        let object = "\(kind) \(namespace.map { $0 + "/" } ?? "")\(name)"
        var top = fields
        top["apiVersion"] = .any
        top["kind"] = .any
        top["metadata"] = metadata
        walk(node, .object(top), path: "", file: file, object: object, into: &result)
    }

    private static func walk(_ node: YAMLNode, _ schema: Schema, path: String, file: String, object: String, into result: inout [UnknownField]) {
        switch (schema, node) {
        case let (.object(fields), .mapping(mapping)):
            for (key, value) in mapping {
                let name = key.string ?? "?"
                let fieldPath = path.isEmpty ? name : path + "." + name
                if let inner = fields[name] {
                    walk(value, inner, path: fieldPath, file: file, object: object, into: &result)
                } else {
                    result.append(UnknownField(file: file, line: key.mark.line, object: object, path: fieldPath))
                }
            }
        case let (.list(element), .sequence(sequence)):
            for (index, item) in sequence.enumerated() {
                walk(item, element, path: "\(path)[\(index)]", file: file, object: object, into: &result)
            }
        default:
            // A wrong type is the decoder's to report (with its own diagnostic).
            return
        }
    }
}
