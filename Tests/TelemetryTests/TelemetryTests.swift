import Telemetry
import Testing

@Suite struct MetricsRegistryTests {
    @Test func scrapeSumsTheCountersOfEveryWorker() {
        let registry = MetricsRegistry(workerCount: 3)
        registry.workers[0].countResponse(status: 200)
        registry.workers[1].countResponse(status: 204)
        registry.workers[2].countResponse(status: 502)
        registry.workers[2].count(.readTimeout)
        registry.workers[0].count(.noRoute)
        registry.workers[0].count(.noRoute)
        let text = registry.renderPrometheus()
        #expect(text.contains("postern_http_responses_total{class=\"2xx\"} 2\n"))
        #expect(text.contains("postern_http_responses_total{class=\"5xx\"} 1\n"))
        #expect(text.contains("postern_upstream_errors_total{kind=\"read_timeout\"} 1\n"))
        #expect(text.contains("postern_downstream_errors_total{reason=\"no_route\"} 2\n"))
    }

    @Test func everyMetricHasHelpAndTypeLines() {
        let text = MetricsRegistry(workerCount: 1).renderPrometheus()
        let names = Set(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }
                .map { String($0.prefix { $0 != "{" && $0 != " " }) })
        #expect(names.count >= 15)
        for name in names {
            #expect(text.contains("# HELP \(name) "), "\(name)")
            #expect(text.contains("# TYPE \(name) "), "\(name)")
        }
    }

    @Test func activeConnectionsGaugeIsAcceptedMinusClosed() {
        let registry = MetricsRegistry(workerCount: 2)
        registry.workers[0].downstreamConnectionsAccepted.add(5)
        registry.workers[1].downstreamConnectionsAccepted.add(2)
        registry.workers[0].downstreamConnectionsClosed.add(3)
        #expect(registry.renderPrometheus().contains("postern_downstream_connections_active 4\n"))
    }
}

@Suite struct MetricsCollectorTests {
    @Test func collectorsAreRenderedAfterTheBuiltInMetricsAtEveryScrape() {
        let registry = MetricsRegistry(workerCount: 1)
        let value = Counter()
        registry.addCollector { "# HELP extra_total An extra.\n# TYPE extra_total counter\nextra_total \(value.current)\n" }
        #expect(registry.renderPrometheus().hasSuffix("extra_total 0\n"))
        value.add(3)
        #expect(registry.renderPrometheus().hasSuffix("extra_total 3\n"))
    }
}
