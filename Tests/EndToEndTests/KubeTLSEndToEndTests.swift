import FakeKubeAPI
import Foundation
import Testing

extension EndToEndTests {
    /// Postern against an HTTPS API server that checks client certificates,
    /// configured by a kubeconfig with certificate files, as kubeadm writes them.
    @Suite struct KubernetesTLS {
        @Test func watchesAnHTTPSAPIServerWithAClientCertificateAndServesTLSSecretsFromIt() throws {
            let pki = try TestPKI()
            let server = try pki.leaf(["localhost"])
            let client = try pki.leaf(["postern-client"])
            try server.certificate.write(toFile: pki.folder + "/apiserver.crt", atomically: true, encoding: .utf8)
            try client.certificate.write(toFile: pki.folder + "/client.crt", atomically: true, encoding: .utf8)
            try client.key.write(toFile: pki.folder + "/client.key", atomically: true, encoding: .utf8)
            let api = FakeKubeAPIServer()
            try api.enableTLS(
                certificateChainPEM: Array(server.certificate.utf8), privateKeyPEM: Array(server.key.utf8),
                clientCertificateAuthorityPEM: Array((try String(contentsOfFile: pki.caPath, encoding: .utf8)).utf8))
            try api.start()
            defer { api.stop() }
            let backend = try EchoBackend(name: "a")
            try api.apply(KubeObjects.ingressClass())
            try api.apply(KubeObjects.service("svc-a"))
            try api.apply(KubeObjects.endpointSlice("svc-a", port: backend.port))
            let ingress = KubeObjects.ingress("secure", rules: [("s.example.com", "/", "svc-a")])
                .replacingOccurrences(of: #""rules":"#, with: #""tls":[{"hosts":["s.example.com"],"secretName":"s-tls"}],"rules":"#)
            try api.apply(ingress)
            let kubeconfig = pki.folder + "/kubeconfig"
            try """
                apiVersion: v1
                kind: Config
                current-context: kubeadm
                clusters:
                - name: c
                  cluster: {server: "https://localhost:\(api.port)", certificate-authority: ca.crt}
                contexts:
                - name: kubeadm
                  context: {cluster: c, user: admin}
                users:
                - name: admin
                  user: {client-certificate: client.crt, client-key: client.key}
                """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            let postern = try KubePosternProcess(kubeconfigPath: kubeconfig, https: true)
            #expect(secondsUntil(timeout: 10) { postern.readiness() == 200 } != nil)
            #expect(api.requests.count >= 5)
            func servedSubject() -> String {
                let script = "openssl s_client -connect 127.0.0.1:\(postern.httpsPort) -servername s.example.com </dev/null 2>/dev/null"
                    + " | openssl x509 -noout -subject"
                return (try? runCommand("/bin/sh", ["-c", script]).stdout) ?? ""
            }
            // No Secret yet: the default certificate.
            #expect(!servedSubject().contains("s.example.com"))
            let secret = try pki.leaf(["s.example.com"])
            let data = #"{"tls.crt":"\#(Data(secret.certificate.utf8).base64EncodedString())","tls.key":"\#(Data(secret.key.utf8).base64EncodedString())"}"#
            try api.apply(#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s-tls","namespace":"default"},"type":"kubernetes.io/tls","data":\#(data)}"#)
            let seconds = secondsUntil(timeout: 3) { servedSubject().contains("s.example.com") }
            #expect(seconds != nil)
            #expect((seconds ?? 99) < 1.5)
            // Deleting the Secret falls back to the default certificate.
            api.delete(resource: "secrets", namespace: "default", name: "s-tls")
            #expect(secondsUntil(timeout: 3) { !servedSubject().contains("s.example.com") } != nil)
        }
    }
}
