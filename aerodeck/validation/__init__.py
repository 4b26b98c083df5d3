"""Performance validation: evidence about a cluster's latency, throughput and errors (a probe workload,
Prometheus, or the nodes' own ``latencies:``), judged against the tenant's SLOs and a pre-change baseline."""
